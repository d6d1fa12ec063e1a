"""Where the time of `faceanim animate` goes, beyond the generator's own synthesis of the frames.

    python benchmarks/bench_animate.py [--bundle toonface] [--frames 16] [--repeats 5]

In-process stages (best of --repeats): bundle loading, prompt encoding + motion codes, synthesis, MP4
writing; plus the wall time of the whole command in a fresh process (imports included). Prints figures and the
overhead share; asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=None, help="bundle name or folder (default: the default bundle)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    t0 = time.perf_counter()
    import torch

    from faceanim.outputs import write_animation
    from faceanim.pipelines import AnimationPipeline
    from faceanim.utils.perf import allocator_setting, tune_allocator

    t_import = time.perf_counter() - t0
    tune_allocator()
    best = {"load": 1e9, "motion": 1e9, "synthesis": 1e9, "write": 1e9}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        for _ in range(args.repeats):
            t = time.perf_counter()
            pipe = AnimationPipeline.from_bundle(args.bundle)
            best["load"] = min(best["load"], time.perf_counter() - t)
            res = pipe("smiling", seed=0, num_frames=args.frames)
            best["motion"] = min(best["motion"], res.timings["motion"])
            best["synthesis"] = min(best["synthesis"], res.timings["synthesis"])
            t = time.perf_counter()
            write_animation(res.frames, out, fps=10)
            best["write"] = min(best["write"], time.perf_counter() - t)
        cmd = [sys.executable, "-m", "faceanim", "animate", "-p", "smiling", "-n", str(args.frames), "-o", str(out)]
        if args.bundle:
            cmd += ["--bundle", args.bundle]
        walls = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls.append(time.perf_counter() - t)
    total = sum(best.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, allocator: {allocator_setting()}")
    print(f"bundle {pipe.name}: {args.frames} frames of {res.frames.shape[-1]} px")
    for k, v in best.items():
        print(f"  {k:<10} {v * 1000:8.1f} ms  ({100 * v / total:4.1f}%)")
    print(f"  in-process total {total * 1000:.1f} ms; overhead beyond synthesis "
          f"{100 * (total - best['synthesis']) / total:.1f}%")
    print(f"  imports (torch, open_clip, faceanim) {t_import * 1000:.0f} ms in this process")
    print(f"  whole command in a fresh process: best {min(walls):.2f} s of 3 "
          f"(synthesis is {100 * best['synthesis'] / min(walls):.1f}% of it)")


if __name__ == "__main__":
    main()

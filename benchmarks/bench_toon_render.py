"""ToonFace renderer throughput on this machine: images/s at 128 px for several batch sizes.

    python benchmarks/bench_toon_render.py [--size 128] [--batches 16 64 256] [--seconds 3] [--threads 1]

Faces are random identities with random expressions and attributes (the generator-training mix).
Each figure is the best of several timing windows (robust to bursts of other load on the machine);
"per CPU-second" divides by the process's CPU time instead of wall time, i.e. what a core of its own
would give when other jobs share the machine.
Runs first with glibc's default allocator, then with ``faceanim.utils.perf.tune_allocator()`` (which
cannot be undone inside a process). Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from faceanim.toon import ToonParams, render
from faceanim.utils.perf import allocator_setting, tune_allocator


def images_per_second(params: ToonParams, size: int, threads: int | None, seconds: float,
                      windows: int = 5) -> tuple[float, float]:
    """Best (wall-clock images/s, images per CPU-second) over ``windows`` windows of ``seconds / windows``."""
    render(params, size, threads=threads)   # warm-up
    best_wall = best_cpu = 0.0
    for _ in range(windows):
        count, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            render(params, size, threads=threads)
            count += len(params)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds / windows:
                break
        best_wall = max(best_wall, count / elapsed)
        best_cpu = max(best_cpu, count / max(time.process_time() - c0, 1e-9))
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128, help="image size in pixels")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256], help="batch sizes")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing budget per figure")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads while rendering (0 = torch's setting)")
    ap.add_argument("--no-tune", action="store_true", help="skip the tuned-allocator pass")
    args = ap.parse_args()
    threads = args.threads or None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, render threads {threads or torch.get_num_threads()}, size {args.size}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    params = {b: ToonParams.sample(b, seed=0, expressions=True, attributes=True) for b in args.batches}
    passes = [False] if args.no_tune else [False, True]
    for tuned in passes:
        if tuned:
            tune_allocator()
        print(f"allocator: {allocator_setting()}")
        for b, p in params.items():
            wall, cpu = images_per_second(p, args.size, threads, args.seconds)
            print(f"  batch {b:4d}: {wall:7.0f} images/s   ({cpu:5.0f} per CPU-second)")


if __name__ == "__main__":
    main()

"""A warm demo request against the in-process time `faceanim animate` reports, for the same animation.

    python benchmarks/bench_demo.py [--bundle toonface] [--frames 16] [--repeats 5]

`faceanim animate` (run in this process, after one warm-up) prints motion, synthesis and writing times; their
sum is its in-process time (model loading excluded; each run loads a fresh pipeline, so its first-call costs
count). The same pipeline called repeatedly in this process (warm, MP4 only) is printed as a second reference. The demo is served in this process on 127.0.0.1 and called
through gradio_client: the wall time of a request includes the queue, MP4 + GIF + latents writing and the client
downloading the three files. Medians over --repeats; prints both and the ratio (the issue's target: ≤ 1.5).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import tempfile
import time
from pathlib import Path


def animate_seconds(bundle: str | None, frames: int, out: Path) -> float:
    from faceanim.cli.main import main

    args = ["animate", "-p", "smiling", "-n", str(frames), "-o", str(out), "--seed", "3"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args + (["-b", bundle] if bundle else []))
    text = buf.getvalue()
    if code != 0:
        raise SystemExit(f"faceanim animate failed:\n{text}")
    found = dict(re.findall(r"(motion|synthesis|writing) ([0-9.]+) s", text))
    return sum(float(found[k]) for k in ("motion", "synthesis", "writing"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=None, help="bundle name or folder (default: the default bundle)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    from faceanim.web.server import offline_environment

    offline_environment()
    from gradio_client import Client

    from faceanim.utils.perf import allocator_setting, tune_allocator
    from faceanim.web.demo import DemoConfig, DemoEngine, build_app
    from faceanim.web.server import ServerConfig, WebServer

    tune_allocator()
    with tempfile.TemporaryDirectory() as tmp:
        cli = [animate_seconds(args.bundle, args.frames, Path(tmp) / f"a{i}.mp4") for i in range(args.repeats + 1)][1:]
        engine = DemoEngine(DemoConfig(bundles=[args.bundle or "toonface"], device="cpu"))
        server = WebServer(ServerConfig(port=None), device=engine.device)
        try:
            pipe = engine.pipe(None)
            warm = []
            for i in range(args.repeats + 1):
                from faceanim.outputs import write_animation

                t0 = time.perf_counter()
                write_animation(pipe("smiling", seed=3, num_frames=args.frames).frames, Path(tmp) / "w.mp4")
                warm.append(time.perf_counter() - t0)
            url = server.launch(build_app(engine, server))
            client = Client(url, verbose=False)
            request = [engine.names[0], "seed", 3, None, False, "smiling", "", "", "", 1.0, args.frames,
                       engine.defaults()["fps"], False, False]
            demo, inside = [], []
            for i in range(args.repeats + 1):
                t0 = time.perf_counter()
                *_, timings = client.predict(*request, api_name="/animate")
                if i:  # the first request is a warm-up
                    demo.append(time.perf_counter() - t0)
                    inside.append(float(re.search(r"total ([0-9.]+) s", timings).group(1)))
        finally:
            server.close()
    a, d, e = statistics.median(cli), statistics.median(demo), statistics.median(inside)
    w = statistics.median(warm[1:])
    import torch

    print(f"bundle {engine.names[0]}, {args.frames} frames, {args.repeats} repeats (medians), {allocator_setting()}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'faceanim animate (motion + synthesis + writing MP4)':<58} {a:7.3f} s")
    print(f"{'the same pipeline kept warm (motion + synthesis + MP4)':<58} {w:7.3f} s   {w / a:5.2f}x")
    print(f"{'demo: engine (motion + synthesis + MP4 + GIF + latents)':<58} {e:7.3f} s   {e / a:5.2f}x")
    print(f"{'demo: warm request through gradio_client (wall)':<58} {d:7.3f} s   {d / a:5.2f}x  (target <= 1.5x)")
    print(f"{'  … against the warm pipeline':<58} {'':9}   {d / w:5.2f}x")


if __name__ == "__main__":
    main()

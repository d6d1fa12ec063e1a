"""Generator throughput on this machine: images/s and achieved GFLOP/s vs the sustained matmul rate.

    python benchmarks/bench_generator.py [--resolutions 256 1024] [--batches 1 8] [--no-tune]

Random weights in the StyleGAN2 config-f layout. Compares faceanim's generator with a straightforward
reference implementation (rosinality-style per-sample fused kernels through grouped convolution,
``tests/rosinality_reference.py``). Prints figures and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from faceanim.convert.rosinality import rosinality_to_native  # noqa: E402
from faceanim.models.stylegan2 import Generator  # noqa: E402
from faceanim.utils.perf import allocator_setting, tune_allocator  # noqa: E402


def matmul_gflops(n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - t0) / 1e9


def timed(fn, min_seconds: float, min_runs: int = 2) -> float:
    fn()  # warm-up
    runs, t0 = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - t0 < min_seconds:
        fn()
        runs += 1
    return (time.perf_counter() - t0) / runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--seconds", type=float, default=4.0, help="minimum timing window per measurement")
    p.add_argument("--no-tune", action="store_true", help="keep the default memory allocator")
    p.add_argument("--no-reference", action="store_true", help="skip the reference implementation")
    args = p.parse_args()
    if not args.no_tune:
        tune_allocator()
    import rosinality_reference as ref

    torch.set_grad_enabled(False)
    peak = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, allocator: {allocator_setting()}")
    print(f"sustained fp32 matmul (2048², same run): {peak:.1f} GFLOP/s\n")
    header = f"{'config':<22}{'batch':>6}{'GFLOP/img':>11}{'ours img/s':>12}{'ours GFLOP/s':>14}{'% matmul':>10}"
    header += "" if args.no_reference else f"{'ref img/s':>11}{'speed-up':>10}"
    print(header)
    for res in args.resolutions:
        log = int(math.log2(res))
        chans = {2 ** i: min(32768 // 2 ** i, 512) for i in range(2, log + 1)}  # config-f channels
        sd = ref.make_state(res, 512, 8, chans)
        config, state = rosinality_to_native(sd, torch.zeros(512))
        G = Generator(config).eval().requires_grad_(False)
        G.load_state_dict_checked(state, "bench")
        for batch in args.batches:
            ws = torch.randn(batch, G.num_ws, 512)
            with FlopCounterMode(display=False) as fc:
                G.synthesis(ws)
            gflop = fc.get_total_flops() / batch / 1e9
            t = timed(lambda: G.synthesis(ws), args.seconds)
            ips = batch / t
            row = f"{f'config-f {res}px':<22}{batch:>6}{gflop:>11.1f}{ips:>12.3f}{gflop * ips:>14.1f}{100 * gflop * ips / peak:>9.0f}%"
            if not args.no_reference:
                tr = timed(lambda: ref.synthesize(sd, ws), args.seconds)
                row += f"{batch / tr:>11.3f}{tr / t:>9.2f}x"
            print(row, flush=True)


if __name__ == "__main__":
    main()

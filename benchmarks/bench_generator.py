"""Generator throughput on this machine: images/s and achieved GFLOP/s vs the sustained matmul rate.

    python benchmarks/bench_generator.py [--resolutions 256 1024] [--batches 1 8] [--no-tune] [--rosinality DIR]

Random weights in the StyleGAN2 config-f layout. Compares faceanim's generator with a reference on the same
weights, timed in alternation in this process (same allocator settings):
- by default a straightforward re-implementation (rosinality-style per-sample fused kernels through grouped
  convolution, ``tests/rosinality_reference.py``);
- with ``--rosinality DIR``, rosinality's own code: ``model.Generator`` of a checkout of
  https://github.com/rosinality/stylegan2-pytorch (kept outside this repository), running its CPU fallbacks of the
  fused ops (``upfirdn2d_native``, the plain leaky ReLU). Its ``op`` package compiles CUDA kernels when imported;
  the compiler call is replaced by a stub during that import (the CPU path never uses the kernels).
The outputs of both are compared (max abs difference printed). Prints figures and ratios; asserts nothing about time.
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


def matmul_gflops(n: int = 2048, windows: int = 6, seconds: float = 0.5) -> float:
    """Sustained fp32 matmul rate: the best of several short windows (robust to other load on the machine)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(windows):
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            count += 1
        best = max(best, 2 * n ** 3 * count / (time.perf_counter() - t0) / 1e9)
    return best


def interleaved_best(fns: dict, min_seconds: float, min_runs: int = 3) -> dict[str, float]:
    """Best (minimum) seconds per call of each function, timing them in alternation so that a burst of
    other load on the machine hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up
    best = {k: float("inf") for k in fns}
    runs, t0 = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - t0 < min_seconds * len(fns):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
        runs += 1
    return best


def load_rosinality(folder: str):
    """rosinality's ``model`` module from a checkout, its CUDA extension builds stubbed out (CPU fallbacks only)."""
    import importlib
    import torch.utils.cpp_extension as cpp_extension

    if not os.path.isfile(os.path.join(folder, "model.py")) or not os.path.isdir(os.path.join(folder, "op")):
        sys.exit(f"{folder} is not a checkout of rosinality/stylegan2-pytorch (no model.py and op/)")

    class _NoKernels:
        def __getattr__(self, name):
            raise RuntimeError("rosinality's CUDA kernels are not built here: CPU tensors only")

    build, sys.path[:0] = cpp_extension.load, [folder]
    cpp_extension.load = lambda *args, **kwargs: _NoKernels()
    try:
        return importlib.import_module("model")
    finally:
        cpp_extension.load = build
        sys.path.remove(folder)


def rosinality_generator(module, sd: dict, resolution: int):
    """rosinality's Generator (config-f channels) holding the state dict ``sd``; called on W+ like ours."""
    G = module.Generator(resolution, 512, 8, channel_multiplier=2).eval().requires_grad_(False)
    G.load_state_dict(sd, strict=True)
    return lambda ws: G([ws], input_is_latent=True, randomize_noise=False)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--seconds", type=float, default=4.0, help="minimum timing window per measurement")
    p.add_argument("--no-tune", action="store_true", help="keep the default memory allocator")
    p.add_argument("--no-reference", action="store_true", help="skip the reference implementation")
    p.add_argument("--rosinality", metavar="DIR", default=None,
                   help="checkout of rosinality/stylegan2-pytorch: compare with its own Generator")
    args = p.parse_args()
    rosinality = load_rosinality(os.path.abspath(args.rosinality)) if args.rosinality else None
    if not args.no_tune:
        tune_allocator()
    import rosinality_reference as ref

    torch.set_grad_enabled(False)
    peak = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, allocator: {allocator_setting()}")
    print(f"sustained fp32 matmul (2048², best of 6 windows, same run): {peak:.1f} GFLOP/s")
    label = f"rosinality's model.py ({args.rosinality})" if rosinality else "tests/rosinality_reference.py"
    print(f"reference: {label}")
    print("times: best of interleaved runs (ours and the reference alternate)\n")
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
        reference = (rosinality_generator(rosinality, sd, res) if rosinality
                     else (lambda ws, sd=sd: ref.synthesize(sd, ws)))
        for batch in args.batches:
            ws = torch.randn(batch, G.num_ws, 512)
            with FlopCounterMode(display=False) as fc:
                G.synthesis(ws)
            gflop = fc.get_total_flops() / batch / 1e9
            fns = {"ours": lambda: G.synthesis(ws)}
            if not args.no_reference:
                fns["ref"] = lambda: reference(ws)
                a, b = G.synthesis(ws), reference(ws)
                diff = f"  (outputs differ by ≤ {(a - b).abs().max().item():.1e}, images of std {b.std().item():.2f})"
            best = interleaved_best(fns, args.seconds)
            ips = batch / best["ours"]
            row = f"{f'config-f {res}px':<22}{batch:>6}{gflop:>11.1f}{ips:>12.3f}{gflop * ips:>14.1f}{100 * gflop * ips / peak:>9.0f}%"
            if not args.no_reference:
                row += f"{batch / best['ref']:>11.3f}{best['ref'] / best['ours']:>9.2f}x{diff}"
            print(row, flush=True)


if __name__ == "__main__":
    main()

"""How close the generator's 3×3 convolutions run to this CPU's matrix-multiply rate (issue 18, point 7).

    python benchmarks/bench_conv_limits.py [--threads N] [--seconds 2]

For each 3×3 layer shape of StyleGAN2 config-f up to 256 px (batch 1, channels-last, as faceanim runs them), times
in alternation, in this process: oneDNN's direct convolution (``F.conv2d``, what faceanim and rosinality both use),
the same convolution as nine shifted matrix products accumulated with ``addmm`` (no im2col copy), and a square
fp32 matmul of the same number of multiply-adds. Prints GFLOP/s of each and the ratios. A formulation with the same
multiply-adds can only beat oneDNN where oneDNN runs clearly below the matmul rate. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_generator import interleaved_best  # noqa: E402  (best of calls timed in alternation)

LAYERS = ((512, 8), (512, 16), (512, 32), (512, 64), (256, 128), (128, 256))  # (channels, resolution), 3×3


def nine_gemm_conv(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """3×3 convolution (padding 1) of channels-last ``x`` ``[1, C, H, W]`` as nine matrix products on row-shifted
    views of the zero-padded image flattened to ``[(H+2)(W+2), C]`` (two junk columns per row, dropped at the
    end); ``taps`` ``[9, C, O]``."""
    _, c, h, w = x.shape
    flat = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(-1, c)
    flat = torch.cat([flat, flat.new_zeros(2, c)])
    m = h * (w + 2)
    out = flat[:m] @ taps[0]
    for t in range(1, 9):
        dy, dx = divmod(t, 3)
        off = dy * (w + 2) + dx
        out.addmm_(flat[off:off + m], taps[t])
    return out.reshape(h, w + 2, -1)[:, :w].permute(2, 0, 1)[None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seconds", type=float, default=2.0, help="minimum timing window per function and layer")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of interleaved calls\n")
    print(f"{'layer':<16}{'GFLOP':>7}{'oneDNN GF/s':>13}{'9-GEMM GF/s':>13}{'matmul GF/s':>13}"
          f"{'oneDNN/matmul':>15}{'9-GEMM/oneDNN':>15}{'max |diff|':>12}")
    for c, r in LAYERS:
        g = torch.Generator().manual_seed(r)
        x = torch.randn(1, c, r, r, generator=g).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 3, 3, generator=g) / (3 * c ** 0.5)
        w_cl = w.contiguous(memory_format=torch.channels_last)
        taps = w.permute(2, 3, 1, 0).reshape(9, c, c).contiguous()
        macs = 9 * c * c * r * r
        n = round(macs ** (1 / 3))  # a square matmul of about the same multiply-adds
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        diff = (F.conv2d(x, w_cl, padding=1) - nine_gemm_conv(x, taps)).abs().max().item()
        best = interleaved_best({"onednn": lambda: F.conv2d(x, w_cl, padding=1),
                                 "gemm9": lambda: nine_gemm_conv(x, taps), "mm": lambda: a @ b}, args.seconds)
        gf = {"onednn": 2 * macs / best["onednn"] / 1e9, "gemm9": 2 * macs / best["gemm9"] / 1e9,
              "mm": 2 * n ** 3 / best["mm"] / 1e9}
        print(f"{f'{c} ch, {r}²':<16}{2 * macs / 1e9:>7.2f}{gf['onednn']:>13.1f}{gf['gemm9']:>13.1f}{gf['mm']:>13.1f}"
              f"{gf['onednn'] / gf['mm']:>14.2f}x{gf['gemm9'] / gf['onednn']:>14.2f}x{diff:>12.1e}", flush=True)


if __name__ == "__main__":
    main()

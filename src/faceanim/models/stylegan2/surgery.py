"""Function-preserving widening of a StyleGAN2 synthesis network (more feature maps at chosen resolutions).

A trained generator keeps computing exactly the same images; the new feature maps start with random weights of
their own but zero weights into every layer that reads them, so they contribute nothing until training moves
those zeros. Demodulation makes this exact: a modulated convolution normalizes each output channel over its input
weights, and zero input weights add nothing to that norm. The toRGB layers have no demodulation but an equalized-LR
gain 1/√(fan-in); their kept weights are scaled by √(new/old fan-in) to compensate.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from faceanim.models.stylegan2.generator import Generator


@torch.no_grad()
def widen(G: Generator, channels: dict[int | str, int], seed: int = 0) -> Generator:
    """A copy of ``G`` with ``channels[res]`` feature maps at the given resolutions (never fewer than now)."""
    cfg = G.config
    new = {str(r): cfg.channels_at(int(r)) for r in G.synthesis.block_resolutions}
    for res, c in channels.items():
        if str(res) not in new:
            raise ValueError(f"the generator has no {res} px block (blocks: {', '.join(new)})")
        if int(c) < new[str(res)]:
            raise ValueError(f"widening cannot shrink {res} px from {new[str(res)]} to {c} feature maps")
        new[str(res)] = int(c)
    torch.manual_seed(seed)
    H = Generator(dataclasses.replace(cfg, channels=new))
    old_state = G.state_dict()
    for name, dst in H.state_dict().items():
        src = old_state[name]
        if src.shape == dst.shape:
            dst.copy_(src)
            continue
        if name.endswith((".conv0.weight", ".conv1.weight", ".torgb.weight")):
            o, i = src.shape[:2]
            dst[:, i:] = 0                     # new inputs: read by nothing yet
            gain = math.sqrt(dst.shape[1] / i) if ".torgb." in name else 1.0
            dst[:o, :i] = src * gain           # new outputs (rows ≥ o) keep their random init
        elif name.endswith((".affine.weight", ".affine.bias", ".bias", ".const")):
            dst[: src.shape[0]] = src          # new styles / biases / constant maps keep their init
        else:
            raise ValueError(f"cannot widen parameter {name} {tuple(src.shape)} → {tuple(dst.shape)}")
    return H

"""The data recipes of the ToonFace bundle: what each network is trained on, as pure functions of a seed."""

from __future__ import annotations

import torch

from faceanim.toon.factors import EXPRESSION, ToonParams
from faceanim.toon.latent import encode
from faceanim.toon.renderer import render

GEN_RESOLUTION = 128


def training_params(n: int, g: torch.Generator) -> ToonParams:
    """Random identities with 0–2 expressions and occasional attributes; expression intensities spread over
    the whole [0, 1] range (not only the renderer sampler's [0.3, 1]) so that the generator learns every
    intermediate frame an animation passes through."""
    p = ToonParams.sample(n, generator=g, expressions=True, attributes=True)
    v = p.vector.clone()
    scale = torch.where(torch.rand(n, 1, generator=g) < 0.5, torch.rand(n, 1, generator=g), torch.ones(n, 1))
    v[:, EXPRESSION] = v[:, EXPRESSION] * scale
    return ToonParams(v)


def generator_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(z ``[n, Z_DIM]``, target renders ``[n, 3, 128, 128]`` in [-1, 1])."""
    p = training_params(n, g)
    return encode(p), render(p, size=GEN_RESOLUTION)

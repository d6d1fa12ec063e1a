"""Samplers of the generator's input z, by name. StyleGAN2 checkpoints use z ~ N(0, I) ("gaussian"); a domain
plugin may register its own (ToonFace's "toonface" draws an encoded parameter vector of its renderer: a random
identity with a neutral expression). Bundles name theirs in ``bundle.json``."""

from __future__ import annotations

from typing import Callable

import torch

from faceanim.plugins import NamedRegistry

ZSampler = Callable[[int, int, torch.Generator], torch.Tensor]  # (n, z_dim, rng) -> z [n, z_dim]

Z_SAMPLERS = NamedRegistry("latent sampler")


def register_z_sampler(name: str) -> Callable[[ZSampler], ZSampler]:
    """Decorator: ``@register_z_sampler("toonface")`` on ``fn(n, z_dim, rng) -> z [n, z_dim]``."""
    return Z_SAMPLERS.register(name)


@register_z_sampler("gaussian")
def gaussian(n: int, z_dim: int, rng: torch.Generator) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=rng)


def get_z_sampler(name: str) -> ZSampler:
    return Z_SAMPLERS.lookup(name)

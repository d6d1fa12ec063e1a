"""Samplers of the generator's input z, by name. StyleGAN2 checkpoints use z ~ N(0, I) ("gaussian"); the
ToonFace generator reads an encoded parameter vector of the renderer ("toonface": a random identity with a
neutral expression). Bundles name theirs in ``bundle.json``."""

from __future__ import annotations

from typing import Callable

import torch

ZSampler = Callable[[int, int, torch.Generator], torch.Tensor]  # (n, z_dim, generator) -> z [n, z_dim]


def gaussian(n: int, z_dim: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=generator)


def get_z_sampler(name: str) -> ZSampler:
    if name == "gaussian":
        return gaussian
    if name == "toonface":
        from faceanim.toon.latent import sample_identity_z

        return sample_identity_z
    raise ValueError(f"unknown latent sampler {name!r} (known: gaussian, toonface)")

"""Samplers of the generator's input z, by name. StyleGAN2 checkpoints use z ~ N(0, I) ("gaussian"); a domain
plugin may register its own (ToonFace's "toonface" draws an encoded parameter vector of its renderer: a random
identity with a neutral expression). Bundles name theirs in ``bundle.json``."""

from __future__ import annotations

from typing import Callable

import torch

ZSampler = Callable[[int, int, torch.Generator], torch.Tensor]  # (n, z_dim, rng) -> z [n, z_dim]

Z_SAMPLERS: dict[str, ZSampler] = {}


def register_z_sampler(name: str) -> Callable[[ZSampler], ZSampler]:
    """Decorator: ``@register_z_sampler("toonface")`` on ``fn(n, z_dim, rng) -> z [n, z_dim]``."""

    def wrap(fn: ZSampler) -> ZSampler:
        if Z_SAMPLERS.get(name, fn) is not fn:
            raise ValueError(f"z sampler {name!r} is already registered")
        Z_SAMPLERS[name] = fn
        return fn

    return wrap


@register_z_sampler("gaussian")
def gaussian(n: int, z_dim: int, rng: torch.Generator) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=rng)


def get_z_sampler(name: str) -> ZSampler:
    if name not in Z_SAMPLERS:
        from faceanim.plugins import load_plugins

        load_plugins()
    if name not in Z_SAMPLERS:
        raise ValueError(f"unknown latent sampler {name!r} (known: {', '.join(sorted(Z_SAMPLERS))}; "
                         "domain plugins register more, see faceanim.plugins)")
    return Z_SAMPLERS[name]

"""Region masks by name: where a prompt may change a face. A domain plugin that knows where each of its prompts
draws registers a function (ToonFace's "toonface": the pixels its renderer changes when it draws the prompt's
expression on that face); the trainer's ``loss.outside`` term penalizes change outside the mask."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

# (z [n, z_dim] of the source faces, prompts [n] (each prompt's first wording), size) -> masks [n, 1, size, size]
# in [0, 1] (1: the prompt may change this pixel). A prompt the function does not know gets a mask of ones.
RegionMasks = Callable[[torch.Tensor, Sequence[str], int], torch.Tensor]

REGION_MASKS: dict[str, RegionMasks] = {}


def register_region_masks(name: str) -> Callable[[RegionMasks], RegionMasks]:
    """Decorator: ``@register_region_masks("toonface")`` on ``fn(z, prompts, size) -> masks [n, 1, size, size]``."""

    def wrap(fn: RegionMasks) -> RegionMasks:
        if REGION_MASKS.get(name, fn) is not fn:
            raise ValueError(f"region masks {name!r} are already registered")
        REGION_MASKS[name] = fn
        return fn

    return wrap


def get_region_masks(name: str) -> RegionMasks:
    if name not in REGION_MASKS:
        from faceanim.plugins import load_plugins

        load_plugins()
    if name not in REGION_MASKS:
        known = ", ".join(sorted(REGION_MASKS)) or "none"
        raise ValueError(f"unknown region masks {name!r} (known: {known}; domain plugins register them, see "
                         "faceanim.plugins)")
    return REGION_MASKS[name]

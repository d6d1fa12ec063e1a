"""Region masks by name: where a prompt may change a face. A domain plugin that knows where each of its prompts
draws registers a function (ToonFace's "toonface": the pixels its renderer changes when it draws the prompt's
expression on that face); the trainer's ``loss.outside`` term penalizes change outside the mask."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from faceanim.plugins import NamedRegistry

# (z [n, z_dim] of the source faces, prompts [n] (each prompt's first wording), size) -> masks [n, 1, size, size]
# in [0, 1] (1: the prompt may change this pixel). A prompt the function does not know gets a mask of ones.
RegionMasks = Callable[[torch.Tensor, Sequence[str], int], torch.Tensor]

REGION_MASKS = NamedRegistry("region masks")


def register_region_masks(name: str) -> Callable[[RegionMasks], RegionMasks]:
    """Decorator: ``@register_region_masks("toonface")`` on ``fn(z, prompts, size) -> masks [n, 1, size, size]``."""
    return REGION_MASKS.register(name)


def get_region_masks(name: str) -> RegionMasks:
    return REGION_MASKS.lookup(name)

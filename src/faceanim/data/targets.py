"""Target latents by name: where a prompt should take a face, for domains whose latent code is readable. A domain
plugin that can write the prompt's change into a face's generator input registers a function (ToonFace's
"toonface": the face's renderer parameters with the prompt's factor at its target); the trainer's ``loss.target``
term then pulls the last frame's code towards the generator's code of that input. Real photo domains have no such
function: the term is for synthetic domains only (beyond the paper)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from faceanim.plugins import NamedRegistry

# (z [n, z_dim] of the source faces, prompts [n] (each prompt's first wording)) -> (z_target [n, z_dim],
# known [n] bool). Rows of prompts the function does not know are not read (known False).
TargetLatents = Callable[[torch.Tensor, Sequence[str]], "tuple[torch.Tensor, torch.Tensor]"]

TARGET_LATENTS = NamedRegistry("target latents")


def register_target_latents(name: str) -> Callable[[TargetLatents], TargetLatents]:
    """Decorator: ``@register_target_latents("toonface")`` on ``fn(z, prompts) -> (z_target, known)``."""
    return TARGET_LATENTS.register(name)


def get_target_latents(name: str) -> TargetLatents:
    return TARGET_LATENTS.lookup(name)

"""The data recipes of the ToonFace bundle: what each network is trained on, as pure functions of a seed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from faceanim.data.prompts import TEMPLATES
from faceanim.toon.factors import EXPRESSION, ToonParams
from faceanim.toon.latent import encode
from faceanim.toon.renderer import render

GEN_RESOLUTION = 128
TEMPLATE = TEMPLATES["cartoon"]


def training_params(n: int, g: torch.Generator) -> ToonParams:
    """Random identities with 0–2 expressions and occasional attributes; expression intensities spread over
    the whole [0, 1] range (not only the renderer sampler's [0.3, 1]) so that the generator learns every
    intermediate frame an animation passes through."""
    p = ToonParams.sample(n, rng=g, expressions=True, attributes=True)
    v = p.vector.clone()
    scale = torch.where(torch.rand(n, 1, generator=g) < 0.5, torch.rand(n, 1, generator=g), torch.ones(n, 1))
    v[:, EXPRESSION] = v[:, EXPRESSION] * scale
    return ToonParams(v)


def expression_mask(p: ToonParams, images: torch.Tensor, threshold: float = 0.04, grow: int = 5) -> torch.Tensor:
    """``[n, 1, R, R]`` in {0, 1}: the pixels where ``images`` differ from the same faces with every expression
    and attribute at 0 (the mouth of a smile, closed eyes, tears, grey hair), grown by ``grow // 2`` pixels."""
    neutral = render(p.neutral(), size=images.shape[-1])
    mask = ((images - neutral).abs().amax(1, keepdim=True) > threshold).float()
    return F.max_pool2d(mask, grow, stride=1, padding=grow // 2)


def generator_batch(n: int, g: torch.Generator, expression_weight: float = 0.0) -> tuple[torch.Tensor, ...]:
    """(z ``[n, Z_DIM]``, target renders ``[n, 3, 128, 128]`` in [-1, 1]) and, with ``expression_weight`` > 0,
    per-pixel loss weights ``1 + expression_weight · expression_mask`` ``[n, 1, 128, 128]``: the small regions
    that animate (a mouth is ≈1% of the image) count as much as the rest."""
    p = training_params(n, g)
    images = render(p, size=GEN_RESOLUTION)
    if not expression_weight:
        return encode(p), images
    return encode(p), images, 1.0 + expression_weight * expression_mask(p, images)


def motion_prompts(keys: list[str] | None = None) -> list[str]:
    """Training prompts of the ToonFace motion model: the canonical phrase of every expression/attribute key
    (or of the given keys; a phrase that is not a key is kept as it is).

    One phrase per key, so that two prompts of a batch never mean the same motion (synonyms would be pushed
    apart by the contrastive loss)."""
    from faceanim.toon.captions import EXPRESSION_PROMPTS

    if not keys:
        return list(dict.fromkeys(EXPRESSION_PROMPTS.values()))
    return list(dict.fromkeys(EXPRESSION_PROMPTS.get(k, k) for k in keys))


def motion_train_data(generator: str, clip: str, prompts: list[str], out_dir: str, steps: int, batch_size: int = 4,
                      template: str = TEMPLATE, z_sampler: str = "toonface", truncation_psi: float = 1.0,
                      loss_clip: str | None = None) -> dict:
    """The TrainConfig fields of a motion model trained in sampled-latent mode (IV-A-1) on a bundle-like set of
    networks: the paper's settings (batch 4, T = 4 training frames, frozen text encoder) with the ToonFace
    mapper width. Recipe changes go on top as dotted overrides (``training.config.apply_overrides``)."""
    return {"generator": generator, "cond_clip": clip, "loss_clip": loss_clip or clip, "mode": "latent",
            "z_sampler": z_sampler, "truncation_psi": truncation_psi, "prompts": list(prompts),
            "template": template, "batch_size": batch_size, "num_frames": 4, "steps": steps,
            "train_text_encoder": False, "motion": {"mapper_hidden": 512}, "loss": {"lpips": 0.0},
            "out_dir": out_dir, "name": "toonface-motion", "checkpoint_every": 100, "sample_every": 250}

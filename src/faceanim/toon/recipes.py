"""The data recipes of the ToonFace bundle: what each network is trained on, as pure functions of a seed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from faceanim.data.prompts import TEMPLATES
from faceanim.toon.factors import EXPRESSION, SLICES, ToonParams
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


def prompt_region_masks(z: torch.Tensor, prompts, size: int, threshold: float = 0.04, grow: int = 9) -> torch.Tensor:
    """Where each prompt may change its face (the "toonface" region masks of ``loss.outside``): ``[n, 1, size,
    size]`` in {0, 1}, the pixels the renderer changes when it draws the prompt's expression (its factor at the
    target of ``PROMPT_TARGETS``) on that face, grown by ``grow // 2`` pixels. ``prompts``: expression phrases
    (``EXPRESSION_PROMPTS``'s, e.g. "smiling") or keys; any other prompt may change every pixel (a mask of ones)."""
    from faceanim.toon.captions import EXPRESSION_PROMPTS, PROMPT_TARGETS
    from faceanim.toon.latent import decode

    key_of = {**{phrase: key for key, phrase in EXPRESSION_PROMPTS.items()}, **{k: k for k in EXPRESSION_PROMPTS}}
    masks = torch.ones(len(prompts), 1, size, size)
    rows = [i for i, prompt in enumerate(prompts) if prompt in key_of]
    if not rows:
        return masks
    source = decode(z[rows].cpu()).vector
    drawn = source.clone()
    for j, i in enumerate(rows):
        factor, target = PROMPT_TARGETS[key_of[prompts[i]]]
        drawn[j, SLICES[factor].start] = target
    change = (render(drawn, size=size) - render(source, size=size)).abs().amax(1, keepdim=True) > threshold
    masks[rows] = F.max_pool2d(change.float(), grow, stride=1, padding=grow // 2)
    return masks


def prompt_target_z(z: torch.Tensor, prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each prompt should take its face (the "toonface" target latents of ``loss.target``): the toonface latent
    of the face's renderer parameters with the prompt's factor at its target (``PROMPT_TARGETS``), ``[n, Z]``, and
    which rows have one (``[n]`` bool). ``prompts``: expression phrases or keys, as :func:`prompt_region_masks`; any
    other prompt gets its own z back and ``False``."""
    from faceanim.toon.captions import EXPRESSION_PROMPTS, PROMPT_TARGETS
    from faceanim.toon.latent import decode

    key_of = {**{phrase: key for key, phrase in EXPRESSION_PROMPTS.items()}, **{k: k for k in EXPRESSION_PROMPTS}}
    z = z.detach().float().cpu()
    known = torch.tensor([p in key_of for p in prompts], dtype=torch.bool)
    if not bool(known.any()):
        return z.clone(), known
    v = decode(z).vector.clone()
    for i, prompt in enumerate(prompts):
        if prompt in key_of:
            factor, target = PROMPT_TARGETS[key_of[prompt]]
            v[i, SLICES[factor].start] = target
    z_target = z.clone()
    z_target[known] = encode(ToonParams(v[known]))
    return z_target, known


def focus_params(n: int, g: torch.Generator, keys: tuple[str, ...]) -> ToonParams:
    """Random neutral identities, each showing one of the prompt ``keys`` (uniformly chosen; e.g. "wink",
    "gaze_left") alone, at a random share U(0.3, 1) of the key's target."""
    from faceanim.toon.captions import PROMPT_TARGETS

    p = ToonParams.sample(n, rng=g)
    pick = torch.randint(len(keys), (n,), generator=g)
    level = 0.3 + 0.7 * torch.rand(n, generator=g)
    v = p.vector.clone()
    for i, key in enumerate(keys):
        factor, target = PROMPT_TARGETS[key]
        rows = pick == i
        v[rows, SLICES[factor].start] = target * level[rows]
    return ToonParams(v)


def generator_batch(n: int, g: torch.Generator, expression_weight: float = 0.0, focus_keys: tuple[str, ...] = (),
                    focus_share: float = 0.0) -> tuple[torch.Tensor, ...]:
    """(z ``[n, Z_DIM]``, target renders ``[n, 3, 128, 128]`` in [-1, 1]) and, with ``expression_weight`` > 0,
    per-pixel loss weights ``1 + expression_weight · expression_mask`` ``[n, 1, 128, 128]``: the small regions
    that animate (a mouth is ≈1% of the image) count as much as the rest.

    With ``focus_keys``, the first ``round(n · focus_share)`` faces are :func:`focus_params` draws (one of these
    keys alone on a neutral face), the rest the usual :func:`training_params`."""
    k = round(n * focus_share) if focus_keys else 0
    parts = [training_params(n - k, g)] if k < n else []
    if k:
        parts.insert(0, focus_params(k, g, tuple(focus_keys)))
    p = ToonParams(torch.cat([q.vector for q in parts]))
    images = render(p, size=GEN_RESOLUTION)
    if not expression_weight:
        return encode(p), images
    return encode(p), images, 1.0 + expression_weight * expression_mask(p, images)


def motion_prompts(keys: list[str] | None = None, paraphrases: bool = False) -> list[str]:
    """Training prompts of the ToonFace motion model: the canonical phrase of every expression/attribute key
    (or of the given keys; a phrase that is not a key is kept as it is).

    One prompt per key, so that two prompts of a batch never mean the same motion (synonyms would be pushed
    apart by the contrastive loss). With ``paraphrases``, each key's prompt lists its training-vocabulary
    predicates as wordings of that one motion (``"smiling | grinning | happy"``, the canonical phrase first; the
    trainer draws one per use), never the held-out ones."""
    from faceanim.toon.captions import EXPRESSION_PROMPTS, VOCABULARY

    keys = list(EXPRESSION_PROMPTS) if not keys else keys
    prompts = []
    for k in keys:
        canonical = EXPRESSION_PROMPTS.get(k, k)
        if paraphrases and k in VOCABULARY:
            canonical = " | ".join(dict.fromkeys((canonical, *VOCABULARY[k]["train"].pred)))
        prompts.append(canonical)
    return list(dict.fromkeys(prompts))


def motion_train_data(generator: str, clip: str, prompts: list[str], out_dir: str, steps: int, batch_size: int = 4,
                      template: str = TEMPLATE, z_sampler: str = "toonface", truncation_psi: float = 1.0,
                      loss_clip: str | list[str] | None = None) -> dict:
    """The TrainConfig fields of a motion model trained in sampled-latent mode (IV-A-1) on a bundle-like set of
    networks: the paper's settings (batch 4, T = 4 training frames, frozen text encoder) with the ToonFace
    mapper width. Recipe changes go on top as dotted overrides (``training.config.apply_overrides``)."""
    return {"generator": generator, "cond_clip": clip, "loss_clip": loss_clip or clip, "mode": "latent",
            "z_sampler": z_sampler, "truncation_psi": truncation_psi, "prompts": list(prompts),
            "template": template, "batch_size": batch_size, "num_frames": 4, "steps": steps,
            "train_text_encoder": False, "motion": {"mapper_hidden": 512}, "loss": {"lpips": 0.0},
            "out_dir": out_dir, "name": "toonface-motion", "checkpoint_every": 100, "sample_every": 250}

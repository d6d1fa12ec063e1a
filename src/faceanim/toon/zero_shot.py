"""Zero-shot reading of expressions by a ToonFace CLIP: can it tell each prompt key from all the others?"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from faceanim.toon.captions import EXPRESSION_PROMPTS, HELDOUT_PROMPTS, PROMPT_TARGETS
from faceanim.toon.factors import ToonParams
from faceanim.toon.latent import encode
from faceanim.toon.recipes import TEMPLATE
from faceanim.toon.renderer import render
from faceanim.toon.seeds import ZERO_SHOT, ZERO_SHOT_SET_STRIDE

ZERO_SHOT_FRAMES = {
    # Sentence frames for zero-shot classification; the first two are held-out caption templates (never trained on).
    "heldout_template": ("{}: a person drawn in toon style", "an illustration showing a person, {}"),
    "motion_template": (TEMPLATE,),  # the motion model's prompt template (a training template)
}


def zero_shot_eval(clip, per_key: int = 24, keys: list[str] | None = None, generator=None, face_set: int = 0,
                   device: str | torch.device = "cpu") -> dict:
    """Top-1 accuracy of telling each expression key from all the others on held-out identities rendered with
    one factor at its target. Reported for held-out sentence frames around the training words (the target
    metric), for the motion model's template, and for held-out synonyms never seen in training. With a ToonFace
    ``generator`` (a StyleGAN2), the faces are that generator's drawings of the same parameters instead of the
    renderer's. ``face_set`` > 0 draws another set of held-out faces (set 0 is the one CLIP stages were compared
    on; a fresh set checks that a figure did not come from choosing stages on the same faces). ``clip`` (and
    ``generator``) run on ``device``."""
    keys = keys or list(PROMPT_TARGETS)
    variants = {name: [[f.format(EXPRESSION_PROMPTS[k]) for f in frames] for k in keys]
                for name, frames in ZERO_SHOT_FRAMES.items()}
    variants["heldout_synonyms"] = [[f"The cartoon person is {HELDOUT_PROMPTS[k]}."] for k in keys]
    with torch.no_grad():
        feats = []
        for i, k in enumerate(keys):
            seed = ZERO_SHOT + i + ZERO_SHOT_SET_STRIDE * face_set
            base = ToonParams.sample(per_key, rng=torch.Generator().manual_seed(seed))
            factor, value = PROMPT_TARGETS[k]
            params = base.replace(**{factor: value})
            if generator is not None:
                images = generator(encode(params).to(device)).clamp(-1, 1)
            else:
                images = render(params, size=clip.image_size).to(device)
            feats.append(clip.encode_image(images).float().cpu())
        out: dict = {}
        for name, texts in variants.items():
            # one class embedding per key: the normalized mean over its sentence frames (prompt ensembling)
            txt = torch.stack([F.normalize(clip.encode_text(t).float().cpu().mean(0), dim=0) for t in texts])
            per = {k: float(((f @ txt.t()).argmax(1) == i).float().mean()) for i, (k, f) in enumerate(zip(keys, feats))}
            out[name] = {"top1_mean": round(sum(per.values()) / len(per), 4), "top1_min": round(min(per.values()), 4),
                         "per_key": {k: round(v, 3) for k, v in per.items()}}
    return out


def evaluate_clip(clip_dir: str, generator_dir: str | None = None, faces_per_key: int = 64, face_set: int = 0,
                  device: str | torch.device = "cpu") -> dict:
    """``faceanim toon eval-clip``: zero-shot top-1 of the CLIP in ``clip_dir`` on held-out renders
    (``{"renderer": …}``) and, with ``generator_dir``, on that generator's drawings of the same faces
    (``"generator"``)."""
    from faceanim.encoders.clip import CLIPEncoder
    from faceanim.errors import FaceanimError

    if face_set < 0:
        raise FaceanimError(f"the face set is a number ≥ 0, got {face_set}")
    clip = CLIPEncoder.from_pretrained(clip_dir).eval().to(device)
    res = {"renderer": zero_shot_eval(clip, per_key=faces_per_key, face_set=face_set, device=device)}
    if generator_dir:
        from faceanim.models.stylegan2 import Generator

        G = Generator.from_pretrained(generator_dir, device=device)
        res["generator"] = zero_shot_eval(clip, per_key=faces_per_key, generator=G, face_set=face_set, device=device)
    return res

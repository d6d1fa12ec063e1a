"""What the ToonFace CLIP is trained on: renders (and optionally the generator's drawings) with captions.

:class:`ClipPairSampler` turns a batch size and a torch.Generator into ``(images [n, 3, S, S] in [-1, 1],
captions)``; every choice it makes is drawn from that torch.Generator (and from ``random.Random`` instances seeded
from it), so a batch is a pure function of the seed. The shares in :class:`ClipPairConfig` are the recipe knobs of
``faceanim toon train-clip``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from faceanim.errors import FaceanimError
from faceanim.toon.captions import (
    NOUNS,
    PROMPT_TARGETS,
    active_keys,
    add_filler,
    caption,
    prompt,
    shift_words,
)
from faceanim.toon.factors import SLICES, ToonParams
from faceanim.toon.latent import encode
from faceanim.toon.renderer import render
from faceanim.toon.seeds import CLIP_GENERATOR_POOL, CLIP_GROUP_POOL
from faceanim.utils.images import gaussian_blur

# Expression keys a CLIP confuses (mirror images, near neighbours): the pairs of the same-face groups.
CONFUSABLE = (("gaze_left", "gaze_right"), ("pout", "surprise"), ("angry", "sad"), ("smile", "laugh"),
              ("blush", "neutral"), ("eyes_closed", "wink"), ("tilt_left", "tilt_right"), ("grey_hair", "age"),
              ("cry", "sad"), ("gaze_left", "neutral"), ("gaze_right", "neutral"), ("pout", "smile"))

BLUR_RADIUS = 3  # the blurred share: a 7-tap kernel, σ ~ U(0.3, 1.2) px at the CLIP's input size


def same_face_groups(groups: int, g: torch.Generator, rng: random.Random) -> tuple[ToonParams, list[str]]:
    """Parameters of ``4 · groups`` faces + short captions: each group is one neutral identity four times, with
    the keys of two pairs from ``CONFUSABLE`` (looking left / looking right, pouting / surprised, …) at intensity
    U(0.7, 1). Within a group only the expression differs, so the contrastive loss can only tell the four apart
    by it: hard negatives for the keys a CLIP otherwise reads as noise. ``g`` draws the faces and keys, ``rng``
    the wording."""
    params, texts = ToonParams(ToonParams.sample(groups, rng=g).vector.repeat_interleave(4, 0)), []
    level = 0.7 + 0.3 * torch.rand(4 * groups, generator=g)
    for j in range(groups):
        order = torch.randperm(len(CONFUSABLE), generator=g).tolist()
        first = CONFUSABLE[order[0]]
        second = next(CONFUSABLE[i] for i in order[1:] if not set(CONFUSABLE[i]) & set(first))
        female = float(params["lashes"][4 * j]) >= 0.5
        for k, key in enumerate(first + second):  # four distinct keys
            row = 4 * j + k
            if key != "neutral":
                factor, value = PROMPT_TARGETS[key]
                params.vector[row, SLICES[factor].start] = value * float(level[row])
            noun = rng.choice(NOUNS["female" if female else "male"] + NOUNS["any"])
            texts.append(f"The cartoon {noun} is {prompt(key, rng, 'train')}")
    return params, texts


def _seed_from(g: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=g))


@dataclass
class ClipPairConfig:
    image_size: int = 64               # side of the CLIP's input images (px)
    context_length: int = 32           # text context: a longer caption is replaced by a short one
    short_captions: float = 0.0        # share of captions naming only the strongest expression
    blur: float = 0.0                  # share of images Gaussian-blurred (σ ~ U(0.3, 1.2) px)
    generator_mix: float = 0.0         # share of images drawn by the ToonFace generator (same parameters, captions)
    generator_dir: str | None = None   # that generator's folder (re-read when its weights change)
    generator_pool: int = 0            # > 0: draw this many generator faces once, pick the mixed share from them
    same_face: float = 0.0             # share of each batch made of same-identity groups of four (hard negatives)
    text_noise: float = 0.0            # share of captions with 1–4 filler words inserted
    word_shift: float = 0.0            # share of captions with their words rotated

    def __post_init__(self) -> None:
        for name in ("short_captions", "blur", "generator_mix", "same_face", "text_noise", "word_shift"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FaceanimError(f"{name.replace('_', '-')} is a share in [0, 1], got {getattr(self, name)}")
        if self.generator_mix > 0 and not self.generator_dir:
            raise FaceanimError("a generator mix needs the generator's folder (--generator)")
        if self.generator_pool < 0:
            raise FaceanimError(f"generator-pool is a number of faces, got {self.generator_pool}")


class ClipPairSampler:
    """Renders + captions for contrastive training: ``sampler(n, g) -> (images [n, 3, S, S], captions)``.

    - A share ``short_captions`` of the captions names only the strongest expression ("The cartoon girl is
      winking"), which concentrates the contrastive signal on what the motion model needs; so does any caption
      too long for the text context (instead of truncating it mid-phrase).
    - A share ``blur`` of the images is Gaussian-blurred (σ uniform in [0.3, 1.2] px at ``image_size``) so that
      the CLIP also reads the softer images of a generator that has not converged to the renderer's sharpness.
    - A share ``generator_mix`` of the images is drawn by the ToonFace generator in ``generator_dir`` from the
      same parameters (captioned alike), so that the CLIP reads what that generator actually draws; the folder is
      re-read when it changes, so a generator still in training can be exported into it. With
      ``generator_pool`` > 0 the generator draws that many faces once (a fixed seed) and the batches' generator
      share is picked from them (≈3× cheaper per step).
    - A share ``same_face`` of each batch is made of same-identity groups of four (:func:`same_face_groups`), the
      share ``generator_mix`` of those groups drawn by the generator (from a pool of ``generator_pool // 4``
      groups).
    - A share ``text_noise`` of the captions gets 1–4 random words that no caption uses inserted
      (:func:`~faceanim.toon.captions.add_filler`), so that the text tower learns to read the expression phrase in
      sentence frames it has never seen; a share ``word_shift`` has its words rotated so that the phrase can stand
      first (:func:`~faceanim.toon.captions.shift_words`).
    """

    def __init__(self, cfg: ClipPairConfig):
        from open_clip.tokenizer import SimpleTokenizer

        self.cfg = cfg
        self.tokenizer = SimpleTokenizer()
        self._generator = None         # the StyleGAN2 last read from cfg.generator_dir
        self._generator_mtime = None
        self._pool: tuple[torch.Tensor, torch.Tensor] | None = None  # (parameter vectors, drawn images)
        self._group_pool: tuple[torch.Tensor, list[str]] | None = None

    # -- the generator's drawings --------------------------------------------------------------------------------
    def generator(self):
        """The ToonFace generator in ``generator_dir``, re-read when its weights file changes."""
        from faceanim.models.stylegan2 import Generator

        folder = self.cfg.generator_dir
        try:
            mtime = (Path(folder) / "model.safetensors").stat().st_mtime
            if self._generator_mtime != mtime:
                self._generator, self._generator_mtime = Generator.from_pretrained(folder), mtime
        except (OSError, ValueError):  # the folder is being replaced: keep the generator read last
            if self._generator is None:
                raise
        return self._generator

    def draw(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's drawings of ``z``, resized to the CLIP's input size."""
        size = self.cfg.image_size
        with torch.no_grad():
            fake = self.generator()(z).clamp(-1, 1)
        return F.interpolate(fake, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def _draw_chunked(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.draw(z[i:i + 64]) for i in range(0, len(z), 64)])

    def pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(parameter vectors, drawings) of ``generator_pool`` generator faces, drawn once (a fixed seed)."""
        if self._pool is None:
            g = torch.Generator().manual_seed(CLIP_GENERATOR_POOL)
            params = ToonParams.sample(self.cfg.generator_pool, rng=g, expressions=True, attributes=True)
            self._pool = (params.vector, self._draw_chunked(encode(params)))
        return self._pool

    def group_pool(self) -> tuple[torch.Tensor, list[str]]:
        """Generator drawings of ``generator_pool // 4`` same-face groups and their captions, drawn once."""
        if self._group_pool is None:
            g = torch.Generator().manual_seed(CLIP_GROUP_POOL)
            params, texts = same_face_groups(self.cfg.generator_pool // 4, g, random.Random(CLIP_GROUP_POOL))
            self._group_pool = (self._draw_chunked(encode(params)), texts)
        return self._group_pool

    # -- batches ---------------------------------------------------------------------------------------------------
    def __call__(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        images, texts = self.grouped_pairs(n, g)
        return images, self.caption_noise(texts, g)

    def fits(self, text: str) -> bool:
        """Whether ``text`` fits the text context with its start and end tokens."""
        return len(self.tokenizer.encode(text)) + 2 <= self.cfg.context_length

    def caption_noise(self, texts: list[str], g: torch.Generator) -> list[str]:
        """Rotate (share ``word_shift``) and pad with filler words (share ``text_noise``); a caption the noise
        makes too long for the text context keeps its clean wording."""
        cfg = self.cfg
        if not (cfg.text_noise > 0 or cfg.word_shift > 0):
            return texts
        rng = random.Random(_seed_from(g))
        noisy = [shift_words(t, rng) if cfg.word_shift > 0 and rng.random() < cfg.word_shift else t for t in texts]
        noisy = [add_filler(t, rng) if cfg.text_noise > 0 and rng.random() < cfg.text_noise else t for t in noisy]
        return [t if t == old or self.fits(t) else old for t, old in zip(noisy, texts)]

    def grouped_pairs(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        """Mixed pairs, then the same-face groups (share ``same_face``); the generator's share of the groups comes
        from its group pool (or is drawn now), the rest is rendered."""
        cfg = self.cfg
        groups = int(n * cfg.same_face) // 4
        if not groups:
            return self.mixed_pairs(n, g)
        images, texts = self.mixed_pairs(n - 4 * groups, g)
        drawn = round(groups * cfg.generator_mix) if cfg.generator_mix > 0 else 0
        params, group_texts = same_face_groups(groups - drawn, g, random.Random(_seed_from(g)))
        parts, all_texts = [images, render(params, size=cfg.image_size)], texts + group_texts
        if drawn and cfg.generator_pool >= 4:
            pool_images, pool_texts = self.group_pool()
            for j in torch.randint(0, len(pool_texts) // 4, (drawn,), generator=g).tolist():
                parts.append(pool_images[4 * j:4 * j + 4])
                all_texts += pool_texts[4 * j:4 * j + 4]
        elif drawn:
            params, more = same_face_groups(drawn, g, random.Random(_seed_from(g)))
            parts.append(self.draw(encode(params)))
            all_texts += more
        return torch.cat(parts), all_texts

    def mixed_pairs(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        """``n`` random faces with clear expressions (≥ 0.3): captions, rendered or drawn images, blur."""
        cfg = self.cfg
        p = ToonParams.sample(n, rng=g, expressions=True, attributes=True)
        pooled = None
        if cfg.generator_pool > 0 and cfg.generator_mix > 0:
            vectors, drawings = self.pool()
            k = round(n * cfg.generator_mix)
            idx = torch.randint(0, cfg.generator_pool, (k,), generator=g)
            pooled = drawings[idx]
            p = ToonParams(torch.cat([p.vector[:n - k], vectors[idx]]))
        texts = self.captions(p, g)
        if pooled is not None:
            images = torch.cat([render(ToonParams(p.vector[:n - len(pooled)]), size=cfg.image_size), pooled])
        else:
            images = render(p, size=cfg.image_size)
        if cfg.generator_mix > 0 and pooled is None:
            pick = torch.nonzero(torch.rand(n, generator=g) < cfg.generator_mix).flatten()
            if len(pick):
                images[pick] = self.draw(encode(p)[pick])
        if cfg.blur > 0:
            pick = torch.rand(n, generator=g) < cfg.blur
            sigmas = 0.3 + 0.9 * torch.rand(n, generator=g)
            if pick.any():
                images[pick] = gaussian_blur(images[pick], sigmas[pick], radius=BLUR_RADIUS)
        return images, texts

    def captions(self, p: ToonParams, g: torch.Generator) -> list[str]:
        """Training captions of ``p``; the share ``short_captions`` (and any caption too long for the context)
        replaced by a short one naming the strongest expression."""
        seed = _seed_from(g)
        texts = caption(p, rng=seed, split="train")
        rng = random.Random(seed + 1)
        for i in range(len(texts)):
            short = rng.random() < self.cfg.short_captions
            if short or not self.fits(texts[i]):
                key = active_keys(p, i)[0][0]
                noun = rng.choice(NOUNS["female" if float(p["lashes"][i]) >= 0.5 else "male"] + NOUNS["any"])
                texts[i] = f"The cartoon {noun} is {prompt(key, rng, 'train')}"
        return texts

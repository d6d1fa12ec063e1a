"""The CLIP pair sampler draws exactly what the closure-based ``_clip_pairs`` of the old ``toon/cli.py`` drew.

``reference_clip_pairs`` below is that function as it was (only ``ToonParams.sample``'s keyword renamed from
``generator`` to ``rng``), kept here as the independent reference; torchvision's blur is the one it used."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from faceanim.toon.clip_data import ClipPairConfig, ClipPairSampler, same_face_groups

EVAL_SEED = 1_000_000_007
CONFUSABLE = (("gaze_left", "gaze_right"), ("pout", "surprise"), ("angry", "sad"), ("smile", "laugh"),
              ("blush", "neutral"), ("eyes_closed", "wink"), ("tilt_left", "tilt_right"), ("grey_hair", "age"),
              ("cry", "sad"), ("gaze_left", "neutral"), ("gaze_right", "neutral"), ("pout", "smile"))


def reference_same_face_groups(groups: int, g, rng):
    from faceanim.toon.captions import NOUNS, PROMPT_TARGETS, prompt
    from faceanim.toon.factors import SLICES, ToonParams

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


def reference_clip_pairs(image_size: int, short_captions: float = 0.0, context_length: int = 32, blur: float = 0.0,
                         generator_mix: float = 0.0, generator_dir: str | None = None, generator_pool: int = 0,
                         same_face: float = 0.0, text_noise: float = 0.0, word_shift: float = 0.0):
    from open_clip.tokenizer import SimpleTokenizer

    from faceanim.toon.captions import NOUNS, active_keys, caption, prompt
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.renderer import render as draw

    tokenizer = SimpleTokenizer()
    cache: dict = {"mtime": None, "G": None}

    def generator():
        from faceanim.models.stylegan2 import Generator

        try:
            mtime = (Path(generator_dir) / "model.safetensors").stat().st_mtime
            if cache["mtime"] != mtime:
                cache["G"], cache["mtime"] = Generator.from_pretrained(generator_dir), mtime
        except (OSError, ValueError):
            if cache["G"] is None:
                raise
        return cache["G"]

    def draw_downsized(z):
        with torch.no_grad():
            fake = generator()(z).clamp(-1, 1)
        return torch.nn.functional.interpolate(fake, size=(image_size, image_size), mode="bilinear",
                                               antialias=True, align_corners=False)

    def make_pool():
        from faceanim.toon.latent import encode

        pool_g = torch.Generator().manual_seed(EVAL_SEED - 1)
        params = ToonParams.sample(generator_pool, rng=pool_g, expressions=True, attributes=True)
        z = encode(params)
        cache["pool"] = (params.vector, torch.cat([draw_downsized(z[i:i + 64]) for i in range(0, generator_pool, 64)]))

    def same_face_pool():
        if "groups" not in cache:
            from faceanim.toon.latent import encode

            pool_g = torch.Generator().manual_seed(EVAL_SEED - 2)
            params, texts = reference_same_face_groups(generator_pool // 4, pool_g, random.Random(EVAL_SEED - 2))
            z = encode(params)
            cache["groups"] = (torch.cat([draw_downsized(z[i:i + 64]) for i in range(0, len(z), 64)]), texts)
        return cache["groups"]

    def pairs(n: int, g: torch.Generator):
        images, texts = grouped_pairs(n, g)
        if text_noise > 0 or word_shift > 0:
            from faceanim.toon.captions import add_filler, shift_words

            rng = random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
            noisy = [shift_words(t, rng) if word_shift > 0 and rng.random() < word_shift else t for t in texts]
            noisy = [add_filler(t, rng) if text_noise > 0 and rng.random() < text_noise else t for t in noisy]
            texts = [t if t == old or len(tokenizer.encode(t)) + 2 <= context_length else old
                     for t, old in zip(noisy, texts)]
        return images, texts

    def grouped_pairs(n: int, g: torch.Generator):
        groups = int(n * same_face) // 4
        if not groups:
            return mixed_pairs(n, g)
        images, texts = mixed_pairs(n - 4 * groups, g)
        drawn = int(round(groups * generator_mix)) if generator_mix > 0 else 0
        params, group_texts = reference_same_face_groups(groups - drawn, g, random.Random(int(
            torch.randint(0, 2**31 - 1, (1,), generator=g))))
        parts, all_texts = [images, draw(params, size=image_size)], texts + group_texts
        if drawn and generator_pool >= 4:
            pool_images, pool_texts = same_face_pool()
            for j in torch.randint(0, len(pool_texts) // 4, (drawn,), generator=g).tolist():
                parts.append(pool_images[4 * j:4 * j + 4])
                all_texts += pool_texts[4 * j:4 * j + 4]
        elif drawn:
            from faceanim.toon.latent import encode

            params, more = reference_same_face_groups(drawn, g, random.Random(int(torch.randint(0, 2**31 - 1, (1,),
                                                                                                 generator=g))))
            parts.append(draw_downsized(encode(params)))
            all_texts += more
        return torch.cat(parts), all_texts

    def mixed_pairs(n: int, g: torch.Generator):
        p = ToonParams.sample(n, rng=g, expressions=True, attributes=True)
        pooled = None
        if generator_pool > 0 and generator_mix > 0:
            if "pool" not in cache:
                make_pool()
            k = int(round(n * generator_mix))
            idx = torch.randint(0, generator_pool, (k,), generator=g)
            pooled = cache["pool"][1][idx]
            p = ToonParams(torch.cat([p.vector[:n - k], cache["pool"][0][idx]]))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        texts = caption(p, rng=seed, split="train")
        rng = random.Random(seed + 1)
        for i in range(n):
            short = rng.random() < short_captions
            if short or len(tokenizer.encode(texts[i])) + 2 > context_length:
                key = active_keys(p, i)[0][0]
                noun = rng.choice(NOUNS["female" if float(p["lashes"][i]) >= 0.5 else "male"] + NOUNS["any"])
                texts[i] = f"The cartoon {noun} is {prompt(key, rng, 'train')}"
        if pooled is not None:
            images = torch.cat([draw(ToonParams(p.vector[:n - len(pooled)]), size=image_size), pooled])
        else:
            images = draw(p, size=image_size)
        if generator_mix > 0 and pooled is None:
            from faceanim.toon.latent import encode

            pick = torch.nonzero(torch.rand(n, generator=g) < generator_mix).flatten()
            if len(pick):
                images[pick] = draw_downsized(encode(p)[pick])
        if blur > 0:
            from torchvision.transforms.functional import gaussian_blur

            pick = torch.rand(n, generator=g) < blur
            sigmas = 0.3 + 0.9 * torch.rand(n, generator=g)
            for i in torch.nonzero(pick).flatten().tolist():
                images[i] = gaussian_blur(images[i], kernel_size=7, sigma=float(sigmas[i]))
        return images, texts

    return pairs


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory) -> str:
    """A random 16 px StyleGAN2 that takes the ToonFace latent (its drawings differ from the renders)."""
    from faceanim.models.stylegan2 import Generator, GeneratorConfig
    from faceanim.toon.latent import Z_DIM

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=Z_DIM, w_dim=16, img_resolution=16, channel_base=64, channel_max=16,
                                  mapping_layers=2))
    folder = tmp_path_factory.mktemp("gen") / "generator"
    G.eval().save_pretrained(folder)
    return str(folder)


CASES = {
    "plain": {},
    "short+blur": dict(short_captions=0.5, blur=0.5),
    "same-face+noise+shift": dict(short_captions=0.3, same_face=0.5, text_noise=0.5, word_shift=0.5),
    "generator-mix": dict(generator_mix=0.5, same_face=0.5, blur=0.3),
    "generator-pool": dict(generator_mix=0.5, generator_pool=8, same_face=0.5, blur=0.5, text_noise=0.3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sampler_draws_what_the_old_closures_drew(case, tiny_generator):
    options = dict(CASES[case])
    if options.get("generator_mix"):
        options["generator_dir"] = tiny_generator
    old = reference_clip_pairs(32, context_length=32, **options)
    new = ClipPairSampler(ClipPairConfig(image_size=32, context_length=32, **options))
    for seed, n in ((3, 24), (11, 16)):  # two batches: the pools are drawn once and reused
        a_images, a_texts = old(n, torch.Generator().manual_seed(seed))
        b_images, b_texts = new(n, torch.Generator().manual_seed(seed))
        assert a_texts == b_texts
        assert a_images.shape == b_images.shape == (n, 3, 32, 32)
        assert torch.equal(a_images, b_images), float((a_images - b_images).abs().max())


def test_same_face_groups_match_the_reference():
    a = reference_same_face_groups(3, torch.Generator().manual_seed(5), random.Random(5))
    b = same_face_groups(3, torch.Generator().manual_seed(5), random.Random(5))
    assert torch.equal(a[0].vector, b[0].vector) and a[1] == b[1]


def test_blur_equals_torchvision_and_the_old_separable_blur():
    import math

    torchvision_blur = pytest.importorskip("torchvision.transforms.functional").gaussian_blur
    from faceanim.utils.images import gaussian_blur

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 24, 24, generator=g) * 2 - 1
    sigma = 0.3 + 0.9 * torch.rand(6, generator=g)
    ref = torch.stack([torchvision_blur(x[i], kernel_size=7, sigma=float(sigma[i])) for i in range(6)])
    assert (gaussian_blur(x, sigma, radius=3) - ref).abs().max() <= 1e-6
    for s in (0.5, 1.0, 2.0):  # one σ for all, default radius ⌈3σ⌉
        r = math.ceil(3 * s)
        ref = torchvision_blur(x, kernel_size=2 * r + 1, sigma=s)
        assert (gaussian_blur(x, s) - ref).abs().max() <= 1e-6

    def separable(images, sigma):  # the evaluator's former blur: two 1-D passes
        b, c, h, w = images.shape
        r = max(1, math.ceil(3 * float(sigma.max())))
        t = torch.arange(-r, r + 1, dtype=images.dtype)
        k = torch.exp(-t.square() / (2 * sigma.clamp_min(1e-3)[:, None].square()))
        k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)
        y = torch.nn.functional.pad(images.reshape(1, b * c, h, w), (r, r, r, r), mode="reflect")
        y = torch.nn.functional.conv2d(y, k[:, None, None, :], groups=b * c)
        return torch.nn.functional.conv2d(y, k[:, None, :, None], groups=b * c).reshape(b, c, h, w)

    sigma = 1.5 * torch.rand(6, generator=g)
    sigma[0] = 0.0
    out = gaussian_blur(x, sigma)
    assert (out - separable(x, sigma)).abs().max() <= 1e-6
    assert torch.equal(out[0], x[0])  # σ = 0: unchanged


def test_bad_shares_are_refused():
    from faceanim.errors import FaceanimError

    with pytest.raises(FaceanimError, match="word-shift"):
        ClipPairConfig(word_shift=1.5)
    with pytest.raises(FaceanimError, match="--generator"):
        ClipPairConfig(generator_mix=0.5)

"""ToonFace: factor layout, renderer (determinism, range, continuity, where expressions act) and captions."""

from __future__ import annotations

import random
import re

import pytest
import torch

from faceanim.toon import ATTRIBUTE, EXPRESSION, FACTORS, HAIR_STYLES, IDENTITY, PARAM_DIM, SLICES, ToonParams
from faceanim.toon import render, render_uint8
from faceanim.toon.captions import (
    EXPRESSION_PROMPTS, HELDOUT_PROMPTS, PROMPT_TARGETS, TEMPLATES, VOCABULARY, caption, hair_color_name,
    heldout_phrases, prompt,
)
from faceanim.toon.factors import FACTOR_BY_NAME, HAIR_PALETTE
from faceanim.toon.renderer import EYE_DY, HEAD_CY, VIEW

S = 128


@pytest.fixture(scope="module")
def faces() -> ToonParams:
    """Three neutral identities without glasses or tilt, so region checks see the bare face."""
    return ToonParams.sample(3, seed=7).replace(glasses=0.0, freckles=0.0)


def box(x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    """World box (tilt 0) → pixel slices (rows, cols) at size S."""
    px = (VIEW[1] - VIEW[0]) / S
    return (slice(max(0, int((y0 - VIEW[2]) / px)), int((y1 - VIEW[2]) / px) + 1),
            slice(max(0, int((x0 - VIEW[0]) / px)), int((x1 - VIEW[0]) / px) + 1))


EY = HEAD_CY + EYE_DY
REGIONS = {   # name → boxes
    "eyes": [box(-0.42, 0.42, EY - 0.2, EY + 0.2)],
    "left_eye": [box(-0.42, -0.02, EY - 0.2, EY + 0.2)],
    "right_eye": [box(0.02, 0.42, EY - 0.2, EY + 0.2)],
    "brows": [box(-0.42, 0.42, EY - 0.42, EY - 0.06)],
    "mouth": [box(-0.3, 0.3, EY + 0.18, EY + 0.55)],
    "cheeks": [box(-0.45, 0.45, EY + 0.05, EY + 0.55)],
    "forehead": [box(-0.5, 0.5, -0.7, EY - 0.06)],
    "hair": [box(-0.75, 0.75, VIEW[2], EY - 0.06), box(VIEW[0], -0.38, VIEW[2], 0.74), box(0.38, VIEW[1], VIEW[2], 0.74)],
    "body": [box(VIEW[0], VIEW[1], 0.62, VIEW[3])],
}
# expression → (primary region that must change, regions that must hold ≥ 90 % of the change)
EXPECTED = {
    "smile": ("mouth", ("mouth", "eyes")),
    "laugh": ("mouth", ("mouth", "eyes")),
    "sad": ("mouth", ("mouth", "eyes", "brows")),
    "angry": ("brows", ("brows", "eyes", "mouth", "forehead")),
    "surprise": ("eyes", ("eyes", "brows", "mouth")),
    "eyes_closed": ("eyes", ("eyes",)),
    "wink": ("right_eye", ("right_eye",)),
    "pout": ("mouth", ("mouth",)),
    "cry": ("cheeks", ("cheeks", "eyes", "brows", "mouth")),
    "blush": ("cheeks", ("cheeks",)),
    "gaze": ("eyes", ("eyes",)),
    "grey_hair": ("hair", ("hair", "brows", "forehead")),
    "age": ("forehead", ("forehead", "hair", "eyes", "brows", "cheeks", "mouth")),
}


def change_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel change ``[B, S, S]`` between two renders."""
    return (a - b).abs().sum(1)


def share(diff: torch.Tensor, regions: tuple[str, ...]) -> float:
    mask = region_mask(*regions)
    return float(diff[:, mask].sum() / diff.sum().clamp_min(1e-9))


def region_mask(*regions: str) -> torch.Tensor:
    mask = torch.zeros(S, S, dtype=torch.bool)
    for r in regions:
        for rows, cols in REGIONS[r]:
            mask[rows, cols] = True
    return mask


# ---------------------------------------------------------------------------------------------- factors

def test_factor_layout() -> None:
    assert PARAM_DIM == sum(f.dim for f in FACTORS)
    groups = IDENTITY + EXPRESSION + ATTRIBUTE
    assert sorted(groups) == list(range(PARAM_DIM))
    assert sum(f.group == "identity" for f in FACTORS) >= 8
    assert sum(f.group == "expression" for f in FACTORS) >= 10
    assert {"bald", "short", "long", "bun", "bangs"} <= set(HAIR_STYLES)
    assert SLICES["hair_style"].stop - SLICES["hair_style"].start == len(HAIR_STYLES)


def test_params_roundtrip_and_sampling() -> None:
    p = ToonParams.sample(16, seed=3)
    assert p.vector.shape == (16, PARAM_DIM)
    assert torch.equal(ToonParams.from_vector(p.to_vector()).vector, p.vector)
    assert torch.equal(ToonParams.sample(16, seed=3).vector, p.vector)
    assert not torch.equal(ToonParams.sample(16, seed=4).vector, p.vector)
    assert torch.all(p.vector[:, EXPRESSION + ATTRIBUTE] == 0)
    assert torch.all(p["hair_style"].sum(1) == 1)
    q = p.replace(smile=0.5, hair_style="bun")
    assert torch.all(q["smile"] == 0.5) and q.hair_style_names() == ["bun"] * 16
    r = ToonParams.sample(64, seed=3, expressions=True, attributes=True)
    assert r.vector[:, EXPRESSION].abs().sum() > 0 and r.vector[:, ATTRIBUTE].sum() > 0
    assert torch.equal(r.clamped().vector, r.vector)
    assert torch.all(r.neutral().vector[:, EXPRESSION + ATTRIBUTE] == 0)


def test_latent_decode_inverts_encode() -> None:
    from faceanim.toon.latent import Z_DIM, decode, encode

    r = ToonParams.sample(256, seed=5, expressions=True, attributes=True).replace(gaze=torch.linspace(-1, 1, 256))
    z = encode(r)
    assert z.shape == (256, Z_DIM)
    assert torch.allclose(decode(z).vector, r.vector, atol=1e-5)
    with pytest.raises(ValueError, match="decode expects"):
        decode(z[:, :-1])


# ---------------------------------------------------------------------------------------------- renderer

def test_shape_range_dtype_determinism() -> None:
    p = ToonParams.sample(6, seed=1, expressions=True, attributes=True).replace(glasses=1.0, tilt=0.7)
    x = render(p, 64)
    assert x.shape == (6, 3, 64, 64) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    u8 = render_uint8(p, 64)
    assert u8.dtype == torch.uint8 and u8.shape == (6, 3, 64, 64)
    assert torch.equal(render(p, 64), x)
    assert render(p.vector[0], 37).shape == (1, 3, 37, 37)   # odd sizes work too


def test_face_renders_the_same_alone_or_in_any_batch() -> None:
    p = ToonParams.sample(12, seed=2, expressions=True, attributes=True)
    batch = render(p, S)
    for i in (0, 5, 11):
        assert torch.equal(render(p.vector[i:i + 1], S)[0], batch[i])
    assert torch.equal(render(p.vector.flip(0), S), batch.flip(0))


def test_windows_bound_every_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faces at the corners of the factor space render the same with windows as on the whole canvas."""
    from faceanim.toon import renderer

    g = torch.Generator().manual_seed(0)
    n = 48
    v = torch.zeros(n, PARAM_DIM)
    for f in FACTORS:
        sl = SLICES[f.name]
        if f.kind == "onehot":
            v[:, sl] = torch.nn.functional.one_hot(torch.randint(f.dim, (n,), generator=g), f.dim).float()
        else:
            v[:, sl.start] = f.low + (1 - f.low) * (torch.rand(n, generator=g) < 0.5).float()
    windowed = render(v, 96)
    monkeypatch.setattr(renderer._Canvas, "_pixels", lambda self, box: (0, self.size, 0, self.size))
    assert (render(v, 96) - windowed).abs().max() < 1e-5


@pytest.mark.parametrize("name", [f.name for f in FACTORS if f.kind != "onehot"])
def test_continuity(name: str) -> None:
    """A 0.01 step changes the image a little, never by a jump; a larger step changes it more."""
    f = FACTOR_BY_NAME[name]
    base = ToonParams.sample(2, seed=5).replace(glasses=1.0, freckles=0.8, hair_style="curly")
    mid = 0.0 if f.kind == "signed" else 0.5
    a = render(base.replace(**{name: mid}), 64)
    b = render(base.replace(**{name: mid + 0.01}), 64)
    c = render(base.replace(**{name: mid + 0.2}), 64)
    small, large = (a - b).abs(), (a - c).abs()
    assert small.max() < 0.6, f"{name}: a pixel jumped by {small.max():.2f}"
    assert small.mean() <= large.mean() / 3 + 1e-6, name


def test_hair_style_blend_is_between_styles() -> None:
    p = ToonParams.sample(1, seed=5)
    a, b = render(p.replace(hair_style="short"), 64), render(p.replace(hair_style="long"), 64)
    half = p.replace(hair_style=torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0, 0.0]]))
    m = render(half, 64)
    assert 0 < (m - a).abs().mean() < (b - a).abs().mean()


def test_intermediate_intensity_gives_intermediate_frame(faces: ToonParams) -> None:
    frames = [render(faces.replace(laugh=t), S) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    dist = [float((f - frames[0]).abs().mean()) for f in frames]
    assert all(x < y for x, y in zip(dist, dist[1:])), dist


@pytest.mark.parametrize("name", list(EXPECTED))
def test_expression_changes_its_region(faces: ToonParams, name: str) -> None:
    neutral = render(faces, S)
    full = render(faces.replace(**{name: 1.0}), S)
    diff = change_map(full, neutral)
    primary, allowed = EXPECTED[name]
    assert diff[:, region_mask(primary)].mean() > 0.02, f"{name} barely changes the {primary}"
    assert share(diff, allowed) > 0.9, f"{name} changes too much outside {allowed}"
    assert float(diff[:, region_mask("body")].sum()) == 0.0


def test_wink_leaves_the_other_eye_and_tilt_leaves_the_body(faces: ToonParams) -> None:
    neutral = render(faces, S)
    diff = change_map(render(faces.replace(wink=1.0), S), neutral)
    assert float(diff[:, region_mask("left_eye")].sum()) == 0.0
    diff = change_map(render(faces.replace(tilt=1.0), S), neutral)
    assert float(diff.mean()) > 0.05
    rows = slice(int((0.70 - VIEW[2]) / (VIEW[1] - VIEW[0]) * S), S)
    assert float(diff[:, rows].sum()) == 0.0


def test_expressions_are_distinct(faces: ToonParams) -> None:
    names = list(EXPECTED)[:-2] + ["tilt"]
    imgs = torch.stack([render(faces.replace(**{n: 1.0}), S) for n in names])   # [E, B, 3, S, S]
    d = (imgs[:, None] - imgs[None]).abs().mean(dim=(2, 3, 4, 5))
    off = d + torch.eye(len(names)) * 10
    assert off.min() > 0.004, names[int(off.argmin()) // len(names)]


def test_identity_diversity() -> None:
    p = ToonParams.sample(32, seed=11)
    x = render(p, 64)
    d = (x[:, None] - x[None]).abs().mean(dim=(2, 3, 4)) + torch.eye(32)
    assert d.min() > 0.03
    assert len(set(p.hair_style_names())) >= 4
    assert p["skin_tone"].std() > 0.2 and 0 < p["glasses"].sum() < 32


# ---------------------------------------------------------------------------------------------- captions

def test_captions_name_the_expression() -> None:
    base = ToonParams.sample(4, seed=9)
    for key, (factor, value) in PROMPT_TARGETS.items():
        p = base.replace(**{factor: value})
        for split in ("train", "heldout"):
            phrases = VOCABULARY[key][split].all()
            for text in caption(p, 0, split) + caption(p, 1, split):
                assert any(ph in text for ph in phrases), (key, split, text)
    for text in caption(base, 3):
        assert any(ph in text for ph in VOCABULARY["neutral"]["train"].all()), text
    glasses = caption(base.replace(glasses=1.0, hair_style="bald"), random.Random(0))
    assert all("glasses" in t or "bald" in t or " with " not in t for t in glasses)


def test_captions_deterministic() -> None:
    p = ToonParams.sample(8, seed=2, expressions=True)
    assert caption(p, 5) == caption(p, 5)
    assert caption(p, 5) != caption(p, 6)


def test_heldout_phrasings_never_in_train() -> None:
    held = heldout_phrases()
    train_vocab = {s for v in VOCABULARY.values() for s in v["train"].all()}
    assert not held & train_vocab
    p = ToonParams.sample(400, seed=1, expressions=True, attributes=True)
    rng = random.Random(0)
    train = [c for _ in range(3) for c in caption(p, rng, "train")]
    patterns = [re.compile(r"\b" + re.escape(h) + r"\b") for h in held]
    for text in train:
        for pat in patterns:
            assert not pat.search(text), (pat.pattern, text)
    heldout = caption(p, 0, "heldout")
    assert all(any(pat.search(t) for pat in patterns) for t in heldout)
    assert set(TEMPLATES["train"]).isdisjoint(TEMPLATES["heldout"])


def test_prompts_and_hair_names() -> None:
    assert set(EXPRESSION_PROMPTS) == set(HELDOUT_PROMPTS) == set(PROMPT_TARGETS)
    for key, text in EXPRESSION_PROMPTS.items():   # predicates: they read after "is"
        assert text in VOCABULARY[key]["train"].pred + VOCABULARY[key]["train"].adj
        assert HELDOUT_PROMPTS[key] in VOCABULARY[key]["heldout"].pred + VOCABULARY[key]["heldout"].adj
        assert prompt(key, 0) in VOCABULARY[key]["train"].all()
    for name, (h, l, s) in HAIR_PALETTE.items():
        assert hair_color_name(h, l, s) == name
    assert hair_color_name(0.1, 0.3, 0.5, grey=0.9) == "grey"


def test_filler_words_never_touch_any_caption_wording() -> None:
    from faceanim.toon.captions import add_filler, filler_words
    from faceanim.toon.zero_shot import ZERO_SHOT_FRAMES

    words = filler_words()
    pool = set(words)
    assert len(pool) > 10_000 and words == sorted(pool)

    def vocab(texts):
        return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}

    heldout = vocab(heldout_phrases()) | vocab(HELDOUT_PROMPTS.values()) | vocab(
        f for frames in ZERO_SHOT_FRAMES.values() for f in frames)
    assert {"illustration", "toon", "drawn", "showing", "beaming", "puckering"} <= heldout
    assert not pool & heldout
    p = ToonParams.sample(300, seed=3, expressions=True, attributes=True)
    train = vocab(caption(p, 1, "train"))
    assert not pool & (train | vocab(caption(p, 2, "heldout")))
    stems = {h[:5] for h in heldout - train if len(h) >= 5}  # words only held-out wording uses: not their stems either
    assert "illus" in stems and not any(w[:5] in stems for w in pool)
    assert not pool & {"happy", "grin", "smiles", "laughs", "tears", "blushes", "frowns"}

    rng = random.Random(0)
    for text in caption(p, 4)[:20]:
        noisy = add_filler(text, rng)
        extra = noisy.split(" ")
        for w in text.split(" "):  # the caption's words survive in order; only filler words are added
            i = extra.index(w)
            assert all(x in pool for x in extra[:i])
            extra = extra[i + 1:]
        assert all(x in pool for x in extra)
        assert 1 <= len(noisy.split(" ")) - len(text.split(" ")) <= 4


def test_text_noise_share_and_context() -> None:
    from faceanim.toon.captions import filler_words
    from faceanim.toon.clip_data import ClipPairConfig, ClipPairSampler
    from open_clip.tokenizer import SimpleTokenizer

    def pairs(**options):
        config = ClipPairConfig(image_size=32, short_captions=0.5, context_length=32, same_face=0.5, **options)
        return ClipPairSampler(config)(64, torch.Generator().manual_seed(7))

    clean, noisy = pairs(), pairs(text_noise=0.5)
    assert torch.equal(clean[0], noisy[0])  # the same images
    pool, tok = set(filler_words()), SimpleTokenizer()
    changed = 0
    for a, b in zip(clean[1], noisy[1]):
        assert len(tok.encode(b)) + 2 <= 32
        if a != b:
            changed += 1
            assert [w for w in b.split(" ") if w not in pool or w in a.split(" ")] == a.split(" ")
    assert 16 <= changed <= 48


def test_word_shift_rotates_the_caption() -> None:
    from faceanim.toon.captions import shift_words
    from faceanim.toon.clip_data import ClipPairConfig, ClipPairSampler

    rng, text = random.Random(0), "The cartoon girl is pouting their lips"
    words = text.split(" ")
    starts = set()
    for _ in range(50):
        out = shift_words(text, rng).split(" ")
        k = out.index("The")
        assert k >= 1 and out[k:] + out[:k] == words  # a rotation that never leaves the caption as it was
        starts.add(out[0])
    assert "pouting" in starts and len(starts) == len(words) - 1
    assert shift_words("smiling", rng) == "smiling"
    def captions(**options):
        config = ClipPairConfig(image_size=32, short_captions=0.5, context_length=32, **options)
        return ClipPairSampler(config)(64, torch.Generator().manual_seed(3))[1]

    clean, shifted = captions(), captions(word_shift=0.5)
    moved = [a != b for a, b in zip(clean, shifted)]
    assert 16 <= sum(moved) <= 48
    assert all(sorted(a.split(" ")) == sorted(b.split(" ")) for a, b in zip(clean, shifted))


def test_zero_shot_face_sets_are_different_faces(monkeypatch) -> None:
    from faceanim.toon.zero_shot import zero_shot_eval

    seen: dict[int, list] = {}

    class Probe:  # records the faces the evaluation draws; scores nothing
        image_size = 16

        def encode_image(self, images):
            seen.setdefault(self.face_set, []).append(images)
            return torch.zeros(len(images), 4)

        def encode_text(self, texts):
            return torch.ones(len(texts), 4)

    probe = Probe()
    for face_set in (0, 1, 0):
        probe.face_set = face_set
        zero_shot_eval(probe, per_key=2, keys=["smile", "pout"], face_set=face_set)
    a, b = torch.cat(seen[0][:2]), torch.cat(seen[1])
    assert torch.equal(a, torch.cat(seen[0][2:]))  # a set is the same faces every time
    assert not torch.equal(a, b)

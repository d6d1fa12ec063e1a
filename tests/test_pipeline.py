"""AnimationPipeline and bundles on tiny random models: determinism, timelines, strength, ping-pong, errors."""

from __future__ import annotations

import pytest
import torch

from faceanim.bundles import describe_bundle, resolve_bundle
from faceanim.errors import FaceanimError
from faceanim.pipelines import AnimationPipeline

from tiny_models import tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def pipe(bundle):
    return AnimationPipeline.from_bundle(bundle)


def test_bundle_resolve_and_describe(bundle):
    assert resolve_bundle(str(bundle)) == bundle
    text = describe_bundle(bundle)
    assert "StyleGAN2 16 px" in text and "motion model" in text and "CLIP" in text
    with pytest.raises(FaceanimError, match="unknown bundle"):
        resolve_bundle("no-such-bundle")


def test_single_prompt_deterministic_and_shapes(pipe):
    a = pipe("smiling", seed=3, num_frames=6)
    b = pipe("smiling", seed=3, num_frames=6)
    c = pipe("smiling", seed=4, num_frames=6)
    assert a.frames.shape == (6, 3, 16, 16) and a.latents.shape == (6, pipe.G.num_ws, pipe.G.w_dim)
    assert torch.equal(a.frames, b.frames)
    assert not torch.allclose(a.frames, c.frames)
    assert a.frames.abs().max() < 10  # generator range
    other = pipe("crying", seed=3, num_frames=6)
    assert not torch.allclose(a.latents, other.latents)  # the text steers the motion


def test_frames_are_the_generator_of_the_latents(pipe):
    out = pipe("smiling", seed=1, num_frames=4, batch_size=3)
    assert torch.allclose(out.frames, pipe.G.synthesis(out.latents).clamp(-1, 1), atol=1e-5)  # clamped


def test_frames_per_generator_call_auto_by_resolution(pipe, monkeypatch):
    from faceanim.utils.perf import frames_per_call

    assert [frames_per_call(r) for r in (16, 128, 256, 512, 1024)] == [8, 8, 8, 2, 1]
    sizes, forward = [], pipe.G.synthesis.forward
    monkeypatch.setattr(pipe.G.synthesis, "forward", lambda ws, **kw: sizes.append(ws.shape[0]) or forward(ws, **kw))
    pipe("smiling", seed=1, num_frames=11)  # 16 px: auto = 8 frames per call
    pipe("smiling", seed=1, num_frames=11, batch_size=4)
    assert sizes == [8, 3, 4, 4, 3]
    monkeypatch.setattr(pipe.G, "img_resolution", 1024)  # what auto asks of a 1024 px generator: one frame a call
    sizes.clear()
    pipe("smiling", seed=1, num_frames=3)
    assert sizes == [1, 1, 1]


def test_timeline_continues_from_last_code(pipe):
    out = pipe(["crying", "pouting"], seed=2, num_frames=5)
    assert out.frames.shape[0] == 9 and out.segment_starts == [0, 5]
    first = pipe("crying", seed=2, num_frames=5)
    assert torch.allclose(out.latents[:5], first.latents, atol=1e-6)
    second = pipe("pouting", latent=first.latents[-1], num_frames=5,
                  rng=_gen_after_one_segment(pipe, first))
    assert torch.allclose(out.latents[4:], second.latents, atol=1e-5)
    assert torch.allclose(first.latents[0], pipe.latent_from_seed(2), atol=1e-6)  # the video starts at the face


def test_literal_eq8_without_anchoring(pipe):
    pipe.anchor_first_frame = False
    try:
        out = pipe("smiling", seed=2, num_frames=3)
        A = pipe.animator
        z_t = A.clip.encode_text(["smiling"], template=pipe.template)
        expect = A(z_t, 3, w_source=pipe.latent_from_seed(2)[None], decay=True,
                   rng=torch.Generator().manual_seed(2)).ws[0]
        assert torch.allclose(out.latents, expect, atol=1e-6)
    finally:
        pipe.anchor_first_frame = True


def _gen_after_one_segment(pipe, first):
    g = torch.Generator().manual_seed(2)
    torch.randn(1, pipe.animator.config.h_dim, generator=g)  # the first segment's h⁽¹⁾ draw
    return g


def test_strength_and_ping_pong(pipe):
    src = pipe.latent_from_seed(5)
    still = pipe("smiling", seed=5, num_frames=4, strength=0.0)
    assert torch.allclose(still.latents, src[None].expand(4, -1, -1), atol=1e-6)
    full = pipe("smiling", seed=5, num_frames=4)
    half = pipe("smiling", seed=5, num_frames=4, strength=0.5)
    assert torch.allclose(half.latents - src, 0.5 * (full.latents - src), atol=1e-5)
    loop = pipe("smiling", seed=5, num_frames=4, ping_pong=True)
    assert loop.frames.shape[0] == 6
    assert torch.equal(loop.latents[:4], full.latents) and torch.equal(loop.latents[4], full.latents[2])


def test_batch_of_prompts_from_one_face(pipe):
    out = pipe.batch(["smiling", "crying", "angry"], seed=7, num_frames=4)
    assert out.frames.shape == (3, 4, 3, 16, 16)
    single = pipe("crying", seed=7, num_frames=4)
    assert torch.allclose(out.latents[1, 0], single.latents[0], atol=1e-6)  # same start face


def test_latent_inputs_and_errors(pipe):
    w = pipe.latent_from_seed(1)
    assert torch.equal(pipe("smiling", latent=w, num_frames=3).latents[0], pipe("smiling", latent=w[None], num_frames=3).latents[0])
    pipe("smiling", latent=w[0], num_frames=3)  # a W vector is broadcast to W+
    with pytest.raises(FaceanimError, match="latent must be"):
        pipe("smiling", latent=torch.zeros(3, 3))
    with pytest.raises(FaceanimError, match="empty"):
        pipe("   ", seed=1)
    with pytest.raises(FaceanimError, match="between 2 and"):
        pipe("smiling", num_frames=0)
    with pytest.raises(FaceanimError, match="between 2 and"):
        pipe("smiling", num_frames=10**6)
    with pytest.raises(FaceanimError, match="tokens"):
        pipe("very " * 40 + "long", seed=1)
    with pytest.raises(FaceanimError, match="one source"):
        pipe("smiling", seed=1, latent=w)
    with pytest.raises(FaceanimError, match="cannot invert"):  # a pipeline built without an inverter
        AnimationPipeline(pipe.G, pipe.animator)("smiling", image=torch.zeros(1, 3, 16, 16))


# -- image mode: eq. 8 with the visual mapper (issue 17, point 2) -----------------------------------------------------
@pytest.fixture(scope="module")
def photo_pipe(tmp_path_factory):
    return AnimationPipeline.from_bundle(tiny_bundle(tmp_path_factory.mktemp("photo-bundle"), mode="image"))


def _photo(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An 'aligned photo' [1, 3, 16, 16] in [-1, 1] and its 'inverted code' w_inv (the tiny generator's W+)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, torch.randn(6, 32, generator=g)


def _eq8_by_hand(pipe, prompt: str, img: torch.Tensor, w_inv: torch.Tensor, T: int, rng: torch.Generator):
    """w⁽ⁱ⁾ = H_t(z⁽ⁱ⁾) + H_v(z_v) + w_inv with z⁽¹⁾ = E_t(x_t) + E_v(x_v) and the decaying inference rates, computed
    from the parts (not through ``LanguageGuidedAnimator.forward``). Returns (w⁽ⁱ⁾ [T, …], w_s = H_v(z_v) + w_inv)."""
    A = pipe.animator
    with torch.no_grad():
        z_t = A.clip.encode_text([prompt], template=pipe.template)
        z_v = A.clip.encode_image(img)
        codes = A.motion(z_t + z_v, T, decay=True, rng=rng)
        w_s = A.visual_mapper(z_v)[0] + w_inv
        return A.motion_mapper(codes)[0] + w_s, w_s


def test_image_mode_composes_codes_by_eq8(photo_pipe):
    """The pipeline's codes are eq. 8's Δw⁽ⁱ⁾ + w_v + w_inv (as training composes them), not Δw⁽ⁱ⁾ + w_inv."""
    pipe = photo_pipe
    assert pipe.animator.config.mode == "image"
    img, w_inv = _photo()
    assert tuple(w_inv.shape) == (pipe.G.num_ws, pipe.G.w_dim)
    expect, w_s = _eq8_by_hand(pipe, "smiling", img, w_inv, 5, torch.Generator().manual_seed(0))
    w_v = w_s - w_inv
    assert w_v.abs().mean() > 1e-2  # H_v adds something: the test can tell the two compositions apart
    pipe.anchor_first_frame = False
    try:
        literal = pipe("smiling", image=img, latent=w_inv, num_frames=5)
    finally:
        pipe.anchor_first_frame = True
    assert torch.allclose(literal.latents, expect, atol=1e-5)
    assert not torch.allclose(literal.latents, expect - w_v, atol=1e-3)  # the old composition (no H_v)
    anchored = pipe("smiling", image=img, latent=w_inv, num_frames=5)  # default: starts at w_s, same motion
    assert torch.allclose(anchored.latents, expect - expect[:1] + w_s, atol=1e-5)
    assert torch.allclose(anchored.latents[0], w_s, atol=1e-6)
    half = pipe("smiling", image=img, latent=w_inv, num_frames=5, strength=0.5)
    assert torch.allclose(half.latents - w_s, 0.5 * (anchored.latents - w_s), atol=1e-5)
    batch = pipe.batch(["crying", "smiling"], image=img, latent=w_inv, num_frames=5)
    assert torch.allclose(batch.latents[:, 0], w_s.expand(2, -1, -1), atol=1e-6)  # both start at w_s


def test_image_mode_timeline_adds_w_v_once(photo_pipe):
    """A timeline's next prompt continues from the last frame's code, which already holds w_v."""
    pipe = photo_pipe
    img, w_inv = _photo(1)
    out = pipe(["crying", "pouting"], image=img, latent=w_inv, num_frames=4)
    rng = torch.Generator().manual_seed(0)
    first, w_s = _eq8_by_hand(pipe, "crying", img, w_inv, 4, rng)
    first = first - first[:1] + w_s
    assert torch.allclose(out.latents[:4], first, atol=1e-5)
    second, _ = _eq8_by_hand(pipe, "pouting", img, w_inv, 4, rng)  # rng continues after the first segment's draw
    assert torch.allclose(out.latents[3:], second - second[:1] + first[-1], atol=1e-5)


def test_image_mode_refuses_a_face_without_a_photo(photo_pipe):
    with pytest.raises(FaceanimError, match="image mode"):
        photo_pipe("smiling", seed=1, num_frames=3)

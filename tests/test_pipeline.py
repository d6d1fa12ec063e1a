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

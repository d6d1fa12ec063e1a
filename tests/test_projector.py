"""Optimization projector and Inverter on the tiny 16 px generator; the pipeline's photo path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.encoders.clip import CLIPEncoder
from faceanim.errors import CheckpointError, FaceanimError
from faceanim.inversion import (
    CLIPFeatureDistance,
    Inverter,
    ProjectorConfig,
    default_perceptual,
    project,
)
from faceanim.inversion.projector import noise_regularization
from faceanim.models.stylegan2 import Generator
from faceanim.pipelines import AnimationPipeline
from faceanim.utils.images import to_uint8

from tiny_models import CLIP_VIT, tiny_bundle, tiny_generator


@pytest.fixture(scope="module")
def G(tmp_path_factory):
    return Generator.from_pretrained(tiny_generator(tmp_path_factory.mktemp("g")))


@pytest.fixture(scope="module")
def known(G):
    """A face of the generator: w_true [w_dim] (ψ = 0.7) and its image [1, 3, 16, 16]."""
    with torch.no_grad():
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(5))
        w_true = G.truncate(G.mapping(z), 0.7)
        return w_true[0], G.synthesis(G.to_wplus(w_true))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


def test_projector_recovers_a_known_latent(G, known):
    w_true, target = known
    result = project(G, target, ProjectorConfig(steps=300, space="w"), progress=False)
    start, end = result.losses[0]["pixel"], float((result.image - target).square().mean())
    assert len(result.losses) == 300
    assert end < 1e-4 and end < 1e-3 * start, (start, end)
    rel = (result.w_plus[0] - w_true).norm() / (w_true - G.w_avg).norm()
    assert rel < 0.05, rel
    assert result.losses[-1]["lr"] < result.losses[150]["lr"]  # cosine cool-down at the end


def test_w_and_wplus_shapes_and_determinism(G, known):
    _, target = known
    w = project(G, target, ProjectorConfig(steps=15, space="w"), progress=False)
    wp = project(G, target, ProjectorConfig(steps=15, space="wplus"), progress=False)
    assert w.w_plus.shape == wp.w_plus.shape == (G.num_ws, G.w_dim)
    assert w.image.shape == (1, 3, 16, 16)
    assert torch.equal(w.w_plus, w.w_plus[:1].expand_as(w.w_plus))  # W: one code on every layer
    assert not torch.allclose(wp.w_plus, wp.w_plus[:1].expand_as(wp.w_plus))  # W+: per-layer codes
    again = project(G, target, ProjectorConfig(steps=15, space="w"), progress=False)
    assert torch.equal(w.w_plus, again.w_plus)
    with torch.no_grad():  # the projector turns gradients on for itself (the pipeline calls it under no_grad)
        inside = project(G, target, ProjectorConfig(steps=15, space="w"), progress=False)
    assert torch.equal(w.w_plus, inside.w_plus)


def test_target_is_resized_to_the_generator(G, known):
    _, target = known
    big = torch.nn.functional.interpolate(target, size=(48, 48), mode="bilinear", align_corners=False)
    result = project(G, big[0], ProjectorConfig(steps=5), progress=False)  # [3, H, W] accepted too
    assert result.image.shape == (1, 3, 16, 16)
    with pytest.raises(FaceanimError, match="one RGB image"):
        project(G, torch.zeros(2, 3, 16, 16), ProjectorConfig(steps=1), progress=False)
    with pytest.raises(FaceanimError, match="'w' or 'wplus'"):
        ProjectorConfig(space="z")


def test_clip_feature_fallback(G, known, monkeypatch):
    import faceanim.losses.lpips as lpips_module

    def unavailable(self, net="alex"):
        torch.nn.Module.__init__(self)
        self.net, self.available, self.reason, self.model = net, False, "no weights (test)", None

    monkeypatch.setattr(lpips_module.LPIPSLoss, "__init__", unavailable)
    torch.manual_seed(0)
    clip = CLIPEncoder.from_config(CLIP_VIT).requires_grad_(False)
    perceptual = default_perceptual(clip)
    assert isinstance(perceptual, CLIPFeatureDistance)
    assert default_perceptual(None) is None
    _, target = known
    # Perceptual term alone: the code must move, so its gradient reaches W through CLIP.
    config = ProjectorConfig(steps=8, pixel_weight=0.0, initial_noise_factor=0.0)
    result = project(G, target, config, perceptual=perceptual, progress=False)
    terms = [h["perceptual"] for h in result.losses]
    assert all(np.isfinite(terms)) and all(0 <= t <= 2 for t in terms)
    assert not torch.allclose(result.w_plus[0], G.w_avg)
    assert float(perceptual(target, target)) == pytest.approx(0.0, abs=1e-5)


def test_noise_fitting_leaves_the_generator_unchanged(G, known):
    _, target = known
    before = {k: v.clone() for k, v in G.state_dict().items()}
    result = project(G, target, ProjectorConfig(steps=10, optimize_noise=True), progress=False)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert set(result.noise) == {"b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"}
    for noise in result.noise.values():
        assert abs(float(noise.mean())) < 1e-4 and float(noise.square().mean()) == pytest.approx(1.0, rel=1e-3)
    assert "noise_reg" in result.losses[0]
    g = torch.Generator().manual_seed(0)
    white = torch.randn(64, 64, generator=g)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 1, 67, 67, generator=g), 4, stride=1)[0, 0]
    assert float(noise_regularization([white])) < 0.1 * float(noise_regularization([smooth / smooth.std()]))


class StubEncoder(torch.nn.Module):
    """Images → a fixed W+ code, counting calls (stands in for e4e on the tiny generator)."""

    def __init__(self, code: torch.Tensor):
        super().__init__()
        self.register_buffer("code", code)
        self.n_styles, self.calls = code.shape[0], 0

    def forward(self, images):
        self.calls += 1
        return self.code.expand(images.shape[0], -1, -1)


def test_inverter_picks_e4e_when_there_is_an_encoder(G, known):
    w_true, target = known
    code = w_true.expand(G.num_ws, -1).clone()
    auto = Inverter(G, encoder=StubEncoder(code))
    assert auto.method == "e4e"
    result = auto.invert(target)
    assert result.method == "e4e" and result.losses == [] and torch.equal(result.w_plus, code)
    assert result.mse < 1e-10  # the stub returns the true code
    assert Inverter(G).method == "projector"
    assert Inverter(G, "projector", encoder=StubEncoder(code)).method == "projector"
    with pytest.raises(FaceanimError, match="needs an encoder"):
        Inverter(G, "e4e")
    with pytest.raises(FaceanimError, match="unknown inversion method"):
        Inverter(G, "magic")
    with pytest.raises(FaceanimError, match="writes 18 W\\+ codes but the generator takes 6"):
        Inverter(G, encoder=StubEncoder(torch.zeros(18, 512))).invert(target)


def test_pipeline_inverts_photos_lazily(bundle, tmp_path):
    pipe = AnimationPipeline.from_bundle(bundle)
    assert isinstance(pipe.inverter, Inverter) and pipe.inverter.method == "projector"
    assert pipe.inverter.perceptual_name == "not built yet"
    pipe.inverter.projector_config = ProjectorConfig(steps=30)
    with torch.no_grad():
        face = Image.fromarray(to_uint8(pipe.G.synthesis(pipe.latent_from_seed(4)[None])[0]).numpy())
    out = pipe("smiling", image=face, num_frames=3)
    last = pipe.inverter.last
    assert last.method == "projector" and len(last.losses) == 30
    assert torch.allclose(out.latents[0], last.w_plus, atol=1e-6)
    assert torch.allclose(out.frames[0], last.reconstruction[0].clamp(-1, 1), atol=1e-5)  # starts at G(w_inv)
    # image + latent: no inversion, the latent is used as is
    w = pipe.latent_from_seed(2)
    assert torch.equal(pipe("smiling", image=face, latent=w, num_frames=3).latents[0], w)
    with pytest.raises(FaceanimError, match="one source"):
        pipe("smiling", image=face, seed=3)

    # A bundle with an encoder component picks e4e, and reads it only when a photo comes.
    (bundle / "encoder").mkdir(exist_ok=True)
    (bundle / "encoder" / "config.json").write_text(json.dumps({"kind": "something-else"}))
    info = json.loads((bundle / "bundle.json").read_text())
    info["components"]["encoder"] = "encoder"
    (bundle / "bundle.json").write_text(json.dumps(info))
    try:
        pipe = AnimationPipeline.from_bundle(bundle)
        assert pipe.inverter.method == "e4e"
        with pytest.raises(CheckpointError, match="expected 'e4e-encoder'"):
            pipe("smiling", image=face, num_frames=3)
    finally:
        del info["components"]["encoder"]
        (bundle / "bundle.json").write_text(json.dumps(info))


def test_a_long_projection_is_announced_with_its_estimate(G, monkeypatch):
    """After its first step the projector says how long the rest will take, when that is long (here: always)."""
    import faceanim.inversion.projector as projector

    monkeypatch.setattr(projector, "LONG_PROJECTION_S", 0.0)
    told: list[str] = []
    projector.project(G, torch.zeros(1, 3, 16, 16), projector.ProjectorConfig(steps=3), progress=False,
                      notice=told.append)
    assert len(told) == 1 and "projecting 3 steps" in told[0] and "e4e" in told[0]
    monkeypatch.setattr(projector, "LONG_PROJECTION_S", 1e9)
    told.clear()
    projector.project(G, torch.zeros(1, 3, 16, 16), projector.ProjectorConfig(steps=3), progress=False,
                      notice=told.append)
    assert told == []

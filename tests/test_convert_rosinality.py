"""rosinality .pt → native generator: equivalence against an independent re-computation."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from faceanim.convert.rosinality import load_rosinality
from faceanim.errors import CheckpointError, UnsafePickleError
from faceanim.models.stylegan2 import Generator

import rosinality_reference as ref

CASES = [
    # size, style_dim, n_mlp, channels (rosinality channel schedule shrunk for speed)
    (8, 32, 2, {4: 16, 8: 16}),
    (32, 64, 4, {4: 32, 8: 32, 16: 24, 32: 16}),
    (64, 32, 8, {4: 16, 8: 16, 16: 16, 32: 8, 64: 8}),
]


def _save(tmp_path, sd, name="g.pt", **extra):
    path = tmp_path / name
    torch.save({"g_ema": sd, **extra}, path)
    return path


@pytest.mark.parametrize("size,style_dim,n_mlp,channels", CASES)
def test_rosinality_equivalence_w_and_wplus(tmp_path, size, style_dim, n_mlp, channels):
    sd = ref.make_state(size, style_dim, n_mlp, channels, seed=size)
    latent_avg = torch.randn(style_dim)
    G, notes = load_rosinality(_save(tmp_path, sd, latent_avg=latent_avg))
    assert notes == []
    assert G.img_resolution == size and G.num_ws == int(math.log2(size)) * 2 - 2
    torch.testing.assert_close(G.w_avg, latent_avg)

    torch.manual_seed(0)
    z = torch.randn(3, style_dim)
    with torch.no_grad():
        w_ref = ref.mapping(sd, z)
        w = G.mapping(z)
        assert torch.allclose(w, w_ref, atol=1e-4, rtol=1e-5)

        # W input (broadcast), const noise
        img_ref = ref.synthesize(sd, w_ref.unsqueeze(1).repeat(1, G.num_ws, 1))
        img = G.synthesize(w, noise_mode="const")
        assert img.shape == (3, 3, size, size)
        assert torch.allclose(img, img_ref, atol=1e-4), (img - img_ref).abs().max()

        # W+ input with distinct per-layer codes, no noise
        wplus = torch.randn(2, G.num_ws, style_dim)
        img_ref = ref.synthesize(sd, wplus, use_noise=False)
        img = G.synthesis(wplus, noise_mode="none")
        assert torch.allclose(img, img_ref, atol=1e-4), (img - img_ref).abs().max()

        # full forward from z with truncation, as rosinality's truncation=ψ, truncation_latent=latent_avg
        psi = 0.7
        img_ref = ref.synthesize(sd, (latent_avg + psi * (w_ref - latent_avg)).unsqueeze(1).repeat(1, G.num_ws, 1))
        img = G(z, truncation_psi=psi)
        assert torch.allclose(img, img_ref, atol=1e-4)


def test_rosinality_training_checkpoint_with_namespace_and_optimizer(tmp_path):
    sd = ref.make_state(16, 32, 2, {4: 16, 8: 16, 16: 8})
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    path = _save(tmp_path, sd, g=sd, d={}, g_optim=opt.state_dict(),
                 args=argparse.Namespace(size=16, latent=32, n_mlp=2, channel_multiplier=2))
    G, notes = load_rosinality(path)
    assert any("estimated w_avg" in n for n in notes)
    assert G.w_avg.abs().sum() > 0


def test_e4e_decoder_is_readable(tmp_path):
    sd = ref.make_state(8, 32, 2, {4: 16, 8: 16})
    state = {f"decoder.{k}": v for k, v in sd.items()}
    state["encoder.dummy.weight"] = torch.zeros(1)
    path = tmp_path / "e4e.pt"
    torch.save({"state_dict": state, "latent_avg": torch.randn(4, 32), "opts": {"stylegan_size": 8}}, path)
    G, notes = load_rosinality(path)
    assert "e4e" in notes[0]
    w = torch.randn(1, G.num_ws, 32)
    assert torch.allclose(G.synthesis(w), ref.synthesize(sd, w), atol=1e-4)


def test_native_round_trip(tmp_path):
    sd = ref.make_state(16, 32, 2, {4: 16, 8: 16, 16: 8})
    G, _ = load_rosinality(_save(tmp_path, sd, latent_avg=torch.randn(32)))
    G.save_pretrained(tmp_path / "native")
    H = Generator.from_pretrained(tmp_path / "native")
    w = torch.randn(2, G.num_ws, 32)
    assert torch.equal(G.synthesis(w), H.synthesis(w))
    assert H.config == G.config


def test_bad_files(tmp_path):
    bad = tmp_path / "rand.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError):
        load_rosinality(bad)

    sd = ref.make_state(8, 32, 2, {4: 16, 8: 16})
    path = _save(tmp_path, sd)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_rosinality(trunc)

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_rosinality(empty)

    with pytest.raises(CheckpointError, match="no rosinality generator"):
        torch.save({"model": {"a": torch.zeros(1)}}, tmp_path / "other.pt")
        load_rosinality(tmp_path / "other.pt")

    broken = dict(sd)
    del broken["convs.1.conv.weight"]
    with pytest.raises(CheckpointError):
        load_rosinality(_save(tmp_path, broken, name="broken.pt"))

    wrong = dict(sd)
    wrong["convs.0.conv.weight"] = torch.randn(1, 16, 7, 3, 3)
    with pytest.raises(CheckpointError, match="shape"):
        load_rosinality(_save(tmp_path, wrong, name="wrong.pt"))


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/faceanim_pwned_rosinality",))


def test_malicious_pt_is_refused_and_not_run(tmp_path):
    import os

    marker = "/tmp/faceanim_pwned_rosinality"
    if os.path.exists(marker):
        os.remove(marker)
    sd = ref.make_state(8, 32, 2, {4: 16, 8: 16})
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": sd, "payload": _Evil()}, path)
    with pytest.raises(UnsafePickleError, match="system"):
        load_rosinality(path)
    assert not os.path.exists(marker)


def _config_f(size: int) -> dict[int, int]:
    return {2 ** i: min(32768 // 2 ** i, 512) for i in range(2, int(math.log2(size)) + 1)}


@pytest.mark.parametrize("size,num_ws", [
    (256, 14),
    pytest.param(512, 16, marks=pytest.mark.slow),
    pytest.param(1024, 18, marks=pytest.mark.slow),
])
def test_real_config_f_shapes(tmp_path, size, num_ws):
    """The published layouts (stylegan2-ffhq-config-f.pt at 1024, and the 512 / 256 variants), random weights."""
    sd = ref.make_state(size, 512, 8, _config_f(size), seed=1)
    G, _ = load_rosinality(_save(tmp_path, sd, latent_avg=torch.randn(512)))
    assert G.num_ws == num_ws and G.img_resolution == size
    n_params = sum(p.numel() for p in G.parameters())
    if size == 1024:
        assert abs(n_params - 30.37e6) < 0.1e6  # the 30.4 M parameters of config-f (G_ema, mapping included)
    with torch.no_grad():
        w = torch.randn(1, num_ws, 512)
        assert torch.allclose(G.synthesis(w), ref.synthesize(sd, w), atol=1e-4)


def test_legacy_torch_save_format(tmp_path):
    """Checkpoints written before torch 1.6 (non-zip torch.save) are detected and read too."""
    from faceanim.convert import detect_format, load_generator

    sd = ref.make_state(8, 32, 2, {4: 16, 8: 16})
    path = tmp_path / "old.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.randn(32)}, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "rosinality"
    G, _, fmt = load_generator(path)
    w = torch.randn(1, G.num_ws, 32)
    assert fmt == "rosinality" and torch.allclose(G.synthesis(w), ref.synthesize(sd, w), atol=1e-4)

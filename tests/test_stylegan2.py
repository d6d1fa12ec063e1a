"""Native StyleGAN2 generator: shapes, latents, noise modes, batching, gradients, native files."""

from __future__ import annotations

import json

import pytest
import torch

from faceanim.errors import CheckpointError
from faceanim.models.stylegan2 import Generator, GeneratorConfig


def tiny(resolution: int = 32, **kw) -> Generator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=16, w_dim=24, img_resolution=resolution, channel_base=256, channel_max=32,
                          mapping_layers=2, **kw)
    G = Generator(cfg).eval()
    with torch.no_grad():  # non-zero noise strengths and w_avg so that noise modes and truncation matter
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
        G.mapping.w_avg.normal_()
    return G


@pytest.mark.parametrize("res", [4, 8, 16, 64])
def test_shapes_any_resolution(res):
    G = tiny(res)
    assert G.num_ws == 2 * (res.bit_length() - 2)
    img = G(torch.randn(2, 16))
    assert img.shape == (2, 3, res, res) and torch.isfinite(img).all()


def test_custom_channel_schedule():
    cfg = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, channels={"4": 12, "8": 7, "16": 5}, mapping_layers=1)
    G = Generator(cfg)
    assert G.synthesis.b8.conv0.weight.shape == (7, 12, 3, 3)
    assert G.synthesis.b16.torgb.weight.shape == (3, 5, 1, 1)
    assert G.synthesize(torch.randn(1, 8)).shape == (1, 3, 16, 16)


def test_w_equals_broadcast_wplus_and_batch_independence():
    G = tiny()
    w = torch.randn(3, 24)
    with torch.no_grad():
        a = G.synthesize(w)
        b = G.synthesize(w[:, None].repeat(1, G.num_ws, 1))
        single = torch.cat([G.synthesize(w[i:i + 1]) for i in range(3)])
        chunked = G.synthesize(w, batch_size=2)
    assert torch.equal(a, b)
    assert torch.allclose(a, single, atol=1e-5)
    assert torch.allclose(a, chunked, atol=1e-5)


def test_frames_input_4d():
    G = tiny(16)
    ws = torch.randn(2, 5, G.num_ws, 24)
    out = G.synthesize(ws, batch_size=3)
    assert out.shape == (2, 5, 3, 16, 16)
    assert torch.allclose(out[1, 2], G.synthesize(ws[1, 2:3])[0], atol=1e-5)


def test_noise_modes():
    G = tiny(16)
    w = torch.randn(2, 24)
    with torch.no_grad():
        c1, c2 = G.synthesize(w, "const"), G.synthesize(w, "const")
        none = G.synthesize(w, "none")
        r1 = G.synthesize(w, "random", rng=torch.Generator().manual_seed(1))
        r1b = G.synthesize(w, "random", rng=torch.Generator().manual_seed(1))
        r2 = G.synthesize(w, "random", rng=torch.Generator().manual_seed(2))
    assert torch.equal(c1, c2)
    assert not torch.allclose(c1, none)
    assert torch.equal(r1, r1b) and not torch.allclose(r1, r2)
    with pytest.raises(ValueError):
        G.synthesize(w, "sometimes")


def test_truncation():
    G = tiny(8)
    z = torch.randn(2, 16)
    with torch.no_grad():
        at_avg = G(z, truncation_psi=0.0)
        avg_img = G.synthesize(G.w_avg[None].expand(2, -1))
        w = G.to_wplus(G.mapping(z))
        cut = G.truncate(w, 0.5, cutoff=2)
    assert torch.allclose(at_avg, avg_img, atol=1e-5)
    assert torch.allclose(cut[:, 2:], w[:, 2:]) and torch.allclose(cut[:, :2], G.w_avg.lerp(w[:, :2], 0.5))


def test_conditional_mapping():
    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, c_dim=3, img_resolution=8, channel_base=64, channel_max=8,
                                  mapping_layers=2))
    c = torch.eye(3)
    w = G.mapping(torch.randn(3, 8), c)
    assert w.shape == (3, 8)
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(torch.randn(1, 8))


def test_gradients_reach_wplus_and_not_frozen_weights():
    G = tiny(16).requires_grad_(False)
    ws = torch.randn(2, G.num_ws, 24, requires_grad=True)
    G.synthesize(ws).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    assert all(p.grad is None for p in G.parameters())


def test_conv_clamp_limits_activations():
    G = tiny(8, conv_clamp=0.05)
    img = G.synthesize(torch.randn(2, 24) * 10)
    assert img.abs().max() <= 0.05 * 2 + 1e-6  # b4 rgb clamped, then upsampled (gain ≤ 1) plus b8 rgb clamped


def test_bad_config():
    for res in (3, 6, 2048, 2):
        with pytest.raises(CheckpointError):
            GeneratorConfig(img_resolution=res)
    with pytest.raises(CheckpointError):
        Generator(GeneratorConfig(img_resolution=8, channels={"4": 8}))
    with pytest.raises(ValueError, match="expected W"):
        tiny(8).synthesize(torch.randn(2, 5, 24))


def test_native_files_round_trip_and_errors(tmp_path):
    G = tiny(16)
    G.save_pretrained(tmp_path / "g")
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    assert cfg["kind"] == "stylegan2-generator" and cfg["img_resolution"] == 16
    H = Generator.from_pretrained(tmp_path / "g")
    w = torch.randn(1, 24)
    assert torch.equal(G.synthesize(w), H.synthesize(w))
    assert torch.equal(H.w_avg, G.w_avg)

    with pytest.raises(CheckpointError, match="not a model folder"):
        Generator.from_pretrained(tmp_path / "nope")
    (tmp_path / "g" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        Generator.from_pretrained(tmp_path / "g")
    tiny(8).save_pretrained(tmp_path / "small")
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "config.json").write_text((tmp_path / "g" / "config.json").read_text())
    (tmp_path / "mix" / "model.safetensors").write_bytes((tmp_path / "small" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="do not match|shape"):
        Generator.from_pretrained(tmp_path / "mix")
    (tmp_path / "mix" / "config.json").write_text(json.dumps({"kind": "clip"}))
    with pytest.raises(CheckpointError, match="expected 'stylegan2-generator'"):
        Generator.from_pretrained(tmp_path / "mix")


def test_widen_keeps_the_function_and_the_new_maps_learn():
    from faceanim.models.stylegan2.surgery import widen

    torch.manual_seed(0)
    G = tiny(32).eval()
    with torch.no_grad():  # trained-looking noise strengths and toRGB biases, so that every path is exercised
        for name, p in G.named_parameters():
            if name.endswith(("noise_strength", "torgb.bias")):
                p.normal_(0, 0.3)
    old = {r: G.config.channels_at(r) for r in (8, 16)}
    H = widen(G, {8: old[8] + 8, "16": old[16] * 2}).eval()
    assert H.config.channels_at(16) == old[16] * 2 and H.config.channels_at(32) == G.config.channels_at(32)
    z = torch.randn(5, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(G(z), H(z), atol=1e-5)
        ws = G.mapping(z)
        assert torch.allclose(G.synthesis(G.to_wplus(ws)), H.synthesis(H.to_wplus(ws)), atol=1e-5)
    # after two Adam steps the new feature maps change the image (their zero read-out weights moved)
    H.train()
    opt = torch.optim.Adam(H.parameters(), lr=1e-2)
    target = torch.zeros(5, 3, 32, 32)
    for _ in range(2):
        opt.zero_grad()
        (H(z) - target).square().mean().backward()
        opt.step()
    assert H.synthesis.b16.conv1.weight[:, old[16]:].abs().sum() > 0
    assert H.synthesis.b16.torgb.weight[:, old[16]:].abs().sum() > 0
    with pytest.raises(ValueError, match="shrink"):
        widen(G, {16: 1})
    with pytest.raises(ValueError, match="no 64 px block"):
        widen(G, {64: 8})


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batch, cin, cout, h, w", [(1, 8, 5, 4, 4), (2, 16, 8, 7, 5), (1, 3, 4, 1, 1), (3, 256, 6, 3, 2)])
def test_polyphase_up_convolution_equals_transposed_convolution(channels_last, batch, cin, cout, h, w, monkeypatch):
    """The four-phase form of the 2× up-convolution (CPU, ≤ 256 input channels) equals conv_transpose2d."""
    from faceanim.models.stylegan2 import ops
    from faceanim.models.stylegan2.ops import POLYPHASE_MAX_CHANNELS, conv_transpose2d_stride2

    assert cin <= POLYPHASE_MAX_CHANNELS
    monkeypatch.setattr(ops, "POLYPHASE_MIN_PIXELS", 1)  # small inputs here (the path is used from 128² up)
    calls = []
    real_conv2d = ops.F.conv2d
    monkeypatch.setattr(ops.F, "conv2d", lambda *a, **k: calls.append(1) or real_conv2d(*a, **k))
    g = torch.Generator().manual_seed(cin + h)
    x = torch.randn(batch, cin, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(cout, cin, 3, 3, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref = torch.nn.functional.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    out = conv_transpose2d_stride2(x, weight)
    assert out.shape == ref.shape == (batch, cout, 2 * h + 1, 2 * w + 1)
    if h * w > 1:  # a 1×1 input is contiguous in both layouts
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)
    assert len(calls) == 4  # the four phases, not the transposed convolution
    out32 = conv_transpose2d_stride2(x.float(), weight.float())
    assert (out32.double() - ref).abs().max() <= 1e-5 * ref.abs().max()
    # Other kernel sizes and wider inputs take the transposed convolution itself.
    w5 = torch.randn(cout, cin, 5, 5, dtype=torch.float64)
    assert torch.equal(conv_transpose2d_stride2(x, w5), torch.nn.functional.conv_transpose2d(x, w5.transpose(0, 1), stride=2))


def test_generator_with_polyphase_layers_equals_transposed_convolutions(monkeypatch):
    """A 256 px generator (its last up-convolution reads 128² inputs: the four-phase path) gives the images of the
    plain transposed convolutions, for one frame (modulated kernel) and a batch (modulated activations)."""
    from faceanim.models.stylegan2 import ops

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=16, w_dim=24, img_resolution=256, channel_base=512, channel_max=8,
                                  mapping_layers=2)).eval()
    ws = torch.randn(2, G.num_ws, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = [G.synthesis(ws[:1]), G.synthesis(ws)]
        monkeypatch.setattr(ops, "POLYPHASE_MIN_PIXELS", 10**9)
        plain = [G.synthesis(ws[:1]), G.synthesis(ws)]
    for a, b in zip(fast, plain):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    assert not any(torch.equal(a, b) for a, b in zip(fast, plain))  # the two paths did differ in rounding

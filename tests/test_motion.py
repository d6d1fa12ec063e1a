"""The paper's blocks: eq. 3–5 step by step, the inference rate schedule, mappers, composition (eq. 6–8)."""

from __future__ import annotations

import pytest
import torch

from faceanim.encoders.clip import CLIPEncoder
from faceanim.errors import FaceanimError
from faceanim.motion import LanguageGuidedAnimator, MotionConfig, MotionMapper, RecurrentMotionGenerator, VisualMapper

from tiny_models import CLIP_RN


def test_recurrent_generator_follows_equations_3_to_5():
    torch.manual_seed(0)
    M = RecurrentMotionGenerator(z_dim=12, h_dim=5)
    assert M.W1.weight.shape == (5, 12) and M.W2.weight.shape == (12, 10) and M.W3.weight.shape == (5, 10)
    z1, h1 = torch.randn(3, 12), torch.randn(3, 5) * 0.1
    codes = M(z1, 4, h1=h1)
    # independent step-by-step evaluation
    s = lambda x: torch.where(x >= 0, x, 0.1 * x)  # noqa: E731
    z, h, expect = z1, h1, [z1]
    for _ in range(3):
        c = torch.cat([s(z @ M.W1.weight.t() + M.W1.bias), h], 1)
        z, h = z + 0.2 * s(c @ M.W2.weight.t() + M.W2.bias), h + 0.2 * s(c @ M.W3.weight.t() + M.W3.bias)
        expect.append(z)
    assert torch.allclose(codes, torch.stack(expect, 1), atol=1e-6)
    assert torch.equal(codes[:, 0], z1)


def test_inference_rates_decay_linearly():
    M = RecurrentMotionGenerator(z_dim=4, h_dim=2)
    T = 16
    assert M.rates(T, decay=False) == [0.2] * (T - 1)
    r = M.rates(T, decay=True)
    assert len(r) == T - 1 and r[0] == pytest.approx(0.2 * (T - 1) / T) and r[-1] == pytest.approx(0.2 / T)
    assert all(a > b for a, b in zip(r, r[1:]))


def test_h1_is_n_0_001():
    M = RecurrentMotionGenerator(z_dim=4, h_dim=2000)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(1, 2000, generator=torch.Generator().manual_seed(0)) * M.h0_std
    assert h.std().item() == pytest.approx(0.1, rel=0.05)
    a, b = M(torch.zeros(1, 4), 3, rng=g), M(torch.zeros(1, 4), 3, rng=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_mappers_shapes_and_zero_start():
    Hv, Ht = VisualMapper(8, num_ws=6, w_dim=4, hidden=16), MotionMapper(8, num_ws=6, w_dim=4, hidden=16)
    assert Hv(torch.randn(2, 8)).shape == (2, 6, 4)
    out = Ht(torch.randn(2, 5, 8))
    assert out.shape == (2, 5, 6, 4) and out.abs().max() == 0  # an untrained model adds no offset


def _animator(mode: str, **kw) -> LanguageGuidedAnimator:
    torch.manual_seed(0)
    clip = CLIPEncoder.from_config(CLIP_RN)
    cfg = MotionConfig(z_dim=clip.embed_dim, h_dim=8, num_ws=6, w_dim=4, mapper_hidden=16, mode=mode, **kw)
    return LanguageGuidedAnimator(cfg, clip)


def test_composition_latent_and_image_modes():
    A = _animator("latent")
    with torch.no_grad():
        for p in A.motion_mapper.layers[-1].parameters():
            p.normal_()
    w_src = torch.randn(2, 6, 4)
    out = A(["smiling", "crying"], 5, w_source=w_src)
    assert out.ws.shape == (2, 5, 6, 4) and out.codes.shape == (2, 5, 32) and torch.equal(out.w_s, w_src)
    z_t = A.encode_text(["smiling", "crying"])
    assert torch.allclose(out.codes[:, 0], z_t, atol=1e-6)  # z⁽¹⁾ = z_t without an image
    assert torch.allclose(out.ws, A.motion_mapper(out.codes) + w_src[:, None], atol=1e-6)  # eq. 8
    assert not hasattr(A, "visual_mapper")

    B = _animator("image")
    img, w_inv = torch.rand(2, 3, 20, 20) * 2 - 1, torch.randn(2, 6, 4)
    out = B(["smiling", "crying"], 3, image=img, w_inv=w_inv)
    z_v = B.clip.encode_image(img)
    assert torch.allclose(out.codes[:, 0], B.encode_text(["smiling", "crying"]) + z_v, atol=1e-5)
    assert torch.allclose(out.w_s, B.visual_mapper(z_v) + w_inv, atol=1e-6)
    with pytest.raises(ValueError, match="image mode"):
        B(["smiling"], 3)


def test_offset_mapper_input_starts_at_the_source():
    A = _animator("latent", mapper_input="offset")
    with torch.no_grad():
        for p in A.motion_mapper.layers[-1].parameters():
            p.normal_()
    out = A(["smiling"], 4, w_source=torch.zeros(1, 6, 4))
    assert torch.allclose(out.ws[:, 0], A.motion_mapper(torch.zeros(1, 32)), atol=1e-6)


def test_edit_ws_keeps_the_fine_entries_at_the_source():
    w = torch.randn(2, 6, 4)
    outs = {}
    for n in (0, 4):
        A = _animator("latent", edit_ws=n)
        torch.manual_seed(1)
        with torch.no_grad():
            for p in A.motion_mapper.layers[-1].parameters():
                p.normal_()
        outs[n] = A(["smiling", "crying"], 3, w_source=w, rng=torch.Generator().manual_seed(0)).ws
    assert torch.equal(outs[4][:, :, 4:], w[:, 4:].unsqueeze(1).expand(-1, 3, -1, -1))
    assert torch.equal(outs[4][:, :, :4], outs[0][:, :, :4])
    assert not torch.allclose(outs[0][:, :, 4:], outs[4][:, :, 4:])


def test_frozen_directions_are_projected_off_every_offset(tmp_path):
    A = _animator("latent", frozen_directions=2)
    with torch.no_grad():
        for p in A.motion_mapper.layers[-1].parameters():
            p.normal_()
    d = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    A.set_frozen_directions(d)
    assert torch.allclose(A.frozen_basis @ A.frozen_basis.t(), torch.eye(2), atol=1e-6)
    w = torch.randn(2, 6, 4)
    out = A(["smiling", "crying"], 3, w_source=w, rng=torch.Generator().manual_seed(0)).ws
    delta = out - w.unsqueeze(1)
    assert delta.abs().max() > 0.1 and (delta @ d.t()).abs().max() < 1e-5  # moves, but never along d
    A.save_pretrained(tmp_path / "m")
    B = LanguageGuidedAnimator.from_pretrained(tmp_path / "m")
    assert torch.equal(B.frozen_basis, A.frozen_basis)
    with pytest.raises(ValueError, match="linearly dependent"):
        A.set_frozen_directions(torch.tensor([[1.0, 0, 0, 0], [2.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="expected 2 frozen directions"):
        A.set_frozen_directions(torch.ones(3, 4))


def test_load_frozen_directions_reads_tensor_files_and_refuses_bad_ones(tmp_path):
    import numpy as np

    from faceanim.training.build import load_frozen_directions
    from faceanim.utils.io import save_safetensors

    save_safetensors({"directions": torch.ones(2, 4)}, tmp_path / "d.safetensors")
    np.save(tmp_path / "boundary.npy", np.ones((1, 4), dtype=np.float32))  # an InterFaceGAN boundary's layout
    assert load_frozen_directions(str(tmp_path / "d.safetensors"), 4).shape == (2, 4)
    assert load_frozen_directions(str(tmp_path / "boundary.npy"), 4).shape == (1, 4)
    with pytest.raises(FaceanimError, match=r"\[K, 8\]"):
        load_frozen_directions(str(tmp_path / "d.safetensors"), 8)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(FaceanimError, match="not a readable"):
        load_frozen_directions(str(tmp_path / "bad.safetensors"), 4)


def test_parameter_groups_and_round_trip(tmp_path):
    A = _animator("latent")
    groups = {g["name"]: g for g in A.parameter_groups()}
    assert groups["encoders"]["lr"] == 1e-5 and groups["mappers"]["lr"] == 1e-3 and groups["recurrent"]["lr"] == 1e-3
    assert not any(p.requires_grad for p in A.clip.model.visual.parameters())  # E_v removed in latent mode
    A.save_pretrained(tmp_path / "m")
    B = LanguageGuidedAnimator.from_pretrained(tmp_path / "m")
    w = torch.randn(1, 6, 4)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(A(["smiling"], 3, w_source=w, rng=g()).ws, B(["smiling"], 3, w_source=w, rng=g()).ws)


def test_config_errors():
    with pytest.raises(FaceanimError):
        MotionConfig(mode="video")
    with pytest.raises(FaceanimError):
        MotionConfig(mapper_input="delta")
    with pytest.raises(FaceanimError, match="frozen_directions"):
        MotionConfig(w_dim=4, frozen_directions=4)
    with pytest.raises(FaceanimError, match="edit_ws"):
        MotionConfig(num_ws=6, edit_ws=7)
    with pytest.raises(ValueError, match="z_dim"):
        LanguageGuidedAnimator(MotionConfig(z_dim=7), CLIPEncoder.from_config(CLIP_RN))


def test_matched_inference_rates_travel_the_training_distance():
    from faceanim.motion.recurrent import RecurrentMotionGenerator

    paper = RecurrentMotionGenerator(8, 4)
    matched = RecurrentMotionGenerator(8, 4, matched_train_frames=4)
    assert paper.rates(4, decay=False) == matched.rates(4, decay=False) == [0.2, 0.2, 0.2]  # training unchanged
    for T in (4, 16, 64):
        r = matched.rates(T, decay=True)
        assert len(r) == T - 1 and abs(sum(r) - 0.6) < 1e-9                   # Σr = (4 − 1)·0.2
        assert all(a > b for a, b in zip(r, r[1:]))                            # the paper's decaying shape
        shape = paper.rates(T, decay=True)
        assert all(abs(a / b - r[0] / shape[0]) < 1e-9 for a, b in zip(r, shape))
    assert abs(sum(paper.rates(16, decay=True)) - 1.5) < 1e-9                  # the paper's: 2.5× farther


def test_trainer_records_train_frames_for_matched_rates(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import tiny_config

    from faceanim.motion.model import LanguageGuidedAnimator
    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig

    cfg = TrainConfig.from_yaml(tiny_config(tmp_path, steps=2, motion={"h_dim": 16, "mapper_hidden": 32,
                                                                       "inference_rates": "matched"}))
    trainer = build_trainer(cfg)
    trainer.train()
    A = LanguageGuidedAnimator.from_pretrained(trainer.run_dir / "motion_model")
    assert A.config.train_frames == cfg.num_frames and A.config.inference_rates == "matched"
    assert abs(sum(A.motion.rates(16, decay=True)) - 0.2 * (cfg.num_frames - 1)) < 1e-9


def test_official_rates_are_the_official_codes():
    """``inference_rates: official``: r = 0.8/T in training and 0.8/T·(T−t)/T at inference (rnn.py of the official
    code: ``w_residual = 0.2 * 4.0``, ``r = w_residual / n_frames * (T − t) / T``), written out here by hand."""
    official = RecurrentMotionGenerator(8, 4, official_rates=True)
    paper = RecurrentMotionGenerator(8, 4)
    assert official.rates(4, decay=False) == pytest.approx(paper.rates(4, decay=False))  # identical at T = 4
    assert official.rates(8, decay=False) == pytest.approx([0.1] * 7)
    for T in (4, 16, 32):
        by_hand = [0.8 / T * (T - t) / T for t in range(1, T)]
        assert official.rates(T, decay=True) == pytest.approx(by_hand)
    assert sum(official.rates(16, decay=True)) == pytest.approx(0.375)
    assert sum(paper.rates(16, decay=True)) == pytest.approx(1.5)
    A = _animator("latent", inference_rates="official")
    assert A.motion.official_rates and not A.motion.matched_train_frames
    assert not _animator("latent").motion.official_rates
    with pytest.raises(FaceanimError, match="inference_rates"):
        MotionConfig(inference_rates="linear")
    with pytest.raises(ValueError, match="choose one"):
        RecurrentMotionGenerator(8, 4, matched_train_frames=4, official_rates=True)


@pytest.mark.parametrize("detach", [False, True])
def test_detach_visual_stops_ms_gradient_into_the_visual_encoder(detach):
    """``detach_visual`` (the official code's ``txt_embed + img_embed.detach()``): the motion codes carry no gradient
    to E_v; w_v = H_v(z_v) still does."""
    A = _animator("image", detach_visual=detach)
    with torch.no_grad():
        for p in A.visual_mapper.layers[-1].parameters():
            p.normal_()
    img, w_inv = torch.rand(2, 3, 20, 20) * 2 - 1, torch.randn(2, 6, 4)
    visual = [p for p in A.clip.model.visual.parameters()]

    def grad_norm(loss):
        grads = torch.autograd.grad(loss, visual, allow_unused=True)
        return sum(float(g.abs().sum()) for g in grads if g is not None)

    out = A(["smiling", "crying"], 3, image=img, w_inv=w_inv, rng=torch.Generator().manual_seed(0))
    assert (grad_norm(out.codes[:, -1].square().sum()) == 0) == detach
    out = A(["smiling", "crying"], 3, image=img, w_inv=w_inv, rng=torch.Generator().manual_seed(0))
    assert grad_norm(out.w_s.square().sum()) > 0


def test_official_mapper_layout():
    """``mapper_layout: official``: rosinality's EqualLinear + fused leaky ReLU on all three layers (the official
    ``Mapper``), computed here by hand; same parameter names as the project's layout; saved and reloaded as such."""
    torch.manual_seed(0)
    H = MotionMapper(8, num_ws=3, w_dim=4, hidden=16, layout="official")
    assert [n for n, _ in H.named_parameters()] == [n for n, _ in MotionMapper(8, 3, 4, 16).named_parameters()]
    with torch.no_grad():
        for layer in H.layers:
            layer.bias.normal_()
    x = torch.randn(2, 5, 8)
    y = x / (x.pow(2).mean(-1, keepdim=True) + 1e-8).sqrt()
    for layer in H.layers:  # EqualLinear(in, out, activation="fused_lrelu")
        y = y @ (layer.weight / layer.weight.shape[1] ** 0.5).t() + layer.bias
        y = torch.where(y >= 0, y, 0.2 * y) * 2 ** 0.5
    assert torch.allclose(H(x), y.reshape(2, 5, 3, 4), atol=1e-5)
    fresh = MotionMapper(8, 3, 4, 16, layout="official")
    assert fresh(x).abs().mean() > 0.1 and fresh.layers[0].weight.std().item() == pytest.approx(1, rel=0.2)
    with pytest.raises(ValueError, match="layout"):
        MotionMapper(8, 3, 4, 16, layout="stylegan")
    with pytest.raises(FaceanimError, match="mapper_layout"):
        MotionConfig(mapper_layout="stylegan")


def test_official_mapper_layout_round_trip(tmp_path):
    A = _animator("image", mapper_layout="official")
    assert A.visual_mapper.layout == A.motion_mapper.layout == "official"
    A.save_pretrained(tmp_path / "m")
    B = LanguageGuidedAnimator.from_pretrained(tmp_path / "m")
    assert B.config.mapper_layout == "official" and B.motion_mapper.layout == "official"
    img, w_inv = torch.rand(1, 3, 20, 20) * 2 - 1, torch.randn(1, 6, 4)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(A(["smiling"], 3, image=img, w_inv=w_inv, rng=g()).ws,
                       B(["smiling"], 3, image=img, w_inv=w_inv, rng=g()).ws)

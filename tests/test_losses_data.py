"""Losses (eq. 9–11) against direct formulas; data sources and the step-addressed sampler."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.data import ImageLatentDataset, StepBatchSampler, load_prompts
from faceanim.encoders.clip import CLIPEncoder
from faceanim.errors import FaceanimError
from faceanim.losses import AnimationLoss, ContrastiveLoss, LossWeights, LPIPSLoss, PathRegularization, WRegularization

from tiny_models import CLIP_VIT


def test_w_reg_and_path_reg_match_equations():
    ws, w_s = torch.randn(2, 5, 3, 4), torch.randn(2, 3, 4)
    eq9 = sum(((ws[:, i] - w_s) ** 2).sum() for i in range(5)) / 2
    assert WRegularization("sum")(ws, w_s) == pytest.approx(eq9.item(), rel=1e-5)
    assert WRegularization("mean")(ws, w_s) == pytest.approx(eq9.item() / (5 * 3 * 4), rel=1e-5)
    d = [ws[:, i + 1] - ws[:, i] for i in range(4)]
    eq10 = sum(((d[i + 1] - d[i]) ** 2).sum() for i in range(3)) / 2
    assert PathRegularization(2, "sum")(ws) == pytest.approx(eq10.item(), rel=1e-5)
    first = sum((d[i] ** 2).sum() for i in range(4)) / 2
    assert PathRegularization(1, "sum")(ws) == pytest.approx(first.item(), rel=1e-5)
    line = torch.linspace(0, 1, 5)[None, :, None, None] * torch.randn(1, 1, 3, 4)
    assert PathRegularization(2)(line) < 1e-10  # constant-velocity paths are free


def test_contrastive_is_infonce_on_last_frames():
    torch.manual_seed(0)
    clip = CLIPEncoder.from_config(CLIP_VIT)
    loss = ContrastiveLoss(clip, temperature=0.07, template="The person is {}.")
    frames, prompts = torch.rand(3, 3, 16, 16) * 2 - 1, ["smiling", "crying", "angry"]
    v = clip.encode_image(frames)
    t = clip.encode_text(prompts, template="The person is {}.")
    logits = v @ t.t() / 0.07
    expect = -sum(torch.log_softmax(logits[i], 0)[i] for i in range(3)) / 3
    assert loss(frames, prompts).item() == pytest.approx(expect.item(), rel=1e-4)
    with pytest.raises(ValueError, match="non-repeating"):
        loss(frames, ["a", "a", "b"])
    assert not any(p.requires_grad for p in clip.parameters())


def test_lpips_without_backbone_is_disabled_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    term = LPIPSLoss()
    assert not term.available and ("weights" in term.reason or "not installed" in term.reason)
    loss = AnimationLoss(LossWeights(contrastive=0.0), None, term)
    assert "lpips" not in loss.active and loss.pixel_frames(8) == []


def test_sampler_distinct_prompts_disjoint_ranks_and_determinism():
    s0 = StepBatchSampler(40, 6, 4, seed=1, rank=0, world_size=2)
    s1 = StepBatchSampler(40, 6, 4, seed=1, rank=1, world_size=2)
    for step in range(12):
        i0, p0 = s0.batch(step)
        i1, p1 = s1.batch(step)
        assert len(set(p0)) == 4 and len(set(p1)) == 4
        assert not set(i0) & set(i1)
        assert s0.batch(step) == (i0, p0)
    epoch = [i for k in range(5) for i in s0.batch(k)[0] + s1.batch(k)[0]]
    assert sorted(epoch) == list(range(40))  # one epoch covers every item once
    with pytest.raises(ValueError, match="distinct prompts"):
        StepBatchSampler(40, 3, 4)


def test_prompt_file(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("# expressions\nsmiling\n\ncrying  # sad\nsmiling\n")
    assert load_prompts(p) == ["smiling", "crying"]
    (tmp_path / "e.txt").write_text("# nothing\n")
    with pytest.raises(FaceanimError, match="no prompts"):
        load_prompts(tmp_path / "e.txt")


def test_image_latent_dataset(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(d / f"{i:03d}.png")
    codes = torch.randn(3, 6, 4)
    torch.save(codes, tmp_path / "lat.pt")
    ds = ImageLatentDataset(d, tmp_path / "lat.pt", image_size=16, num_ws=6, w_dim=4)
    item = ds[2]
    assert item["image"].shape == (3, 16, 16) and torch.equal(item["w_inv"], codes[2])
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    torch.save({"000.png": codes[0], "001": codes[1]}, tmp_path / "named.pt")
    assert len(ImageLatentDataset(d, tmp_path / "named.pt", 16)) == 2
    with pytest.raises(FaceanimError, match="holds 2 codes for 3 images"):
        torch.save(codes[:2], tmp_path / "short.pt")
        ImageLatentDataset(d, tmp_path / "short.pt", 16)
    with pytest.raises(FaceanimError, match="shape"):
        ImageLatentDataset(d, tmp_path / "lat.pt", 16, num_ws=18, w_dim=512)

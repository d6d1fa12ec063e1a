"""Losses (eq. 9–11) against direct formulas; data sources and the step-addressed sampler."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.data import ImageLatentDataset, StepBatchSampler, load_prompts
from faceanim.encoders.clip import CLIPEncoder
from faceanim.errors import FaceanimError
from faceanim.losses import (AnimationLoss, ContrastiveLoss, DirectionalLoss, LossWeights, LPIPSLoss, OutsideRegionLoss,
                             PathRegularization, TargetImageLoss, TargetLatentLoss,
                             WRegularization)
from faceanim.losses.contrastive import random_views

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


def test_random_views_shift_and_zoom_like_a_direct_resampling():
    img = torch.rand(2, 3, 16, 16)
    assert torch.allclose(random_views(img, 3, 0.0, 0.0), img.repeat(3, 1, 1, 1), atol=1e-5)
    g = torch.Generator().manual_seed(3)
    out = random_views(img, 2, 0.1, 0.2, g)
    # independent reference: the same draws, each view resampled by hand with bilinear interpolation
    u = torch.rand(4, 3, generator=torch.Generator().manual_seed(3))
    zoom, dx, dy = 1 + 0.2 * (2 * u[:, 0] - 1), 0.1 * 2 * (2 * u[:, 1] - 1), 0.1 * 2 * (2 * u[:, 2] - 1)
    centres = (torch.arange(16) + 0.5) / 16 * 2 - 1  # pixel centres in [-1, 1]
    for k in range(4):
        src = img[k % 2]
        px = ((centres / zoom[k] + dx[k] + 1) * 16 - 1) / 2  # source pixel coordinates
        py = ((centres / zoom[k] + dy[k] + 1) * 16 - 1) / 2
        px, py = px.clamp(0, 15), py.clamp(0, 15)            # border padding
        x0, y0 = px.floor().long(), py.floor().long()
        x1, y1 = (x0 + 1).clamp(max=15), (y0 + 1).clamp(max=15)
        fx, fy = px - x0, py - y0
        top = src[:, y0][:, :, x0] * (1 - fx) + src[:, y0][:, :, x1] * fx
        bottom = src[:, y1][:, :, x0] * (1 - fx) + src[:, y1][:, :, x1] * fx
        ref = top * (1 - fy[:, None]) + bottom * fy[:, None]
        assert torch.allclose(out[k], ref, atol=1e-5)


def test_contrastive_with_views_averages_infonce_over_the_views():
    torch.manual_seed(0)
    clip = CLIPEncoder.from_config(CLIP_VIT)
    loss = ContrastiveLoss(clip, template="The person is {}.", views=3)
    frames, prompts = torch.rand(2, 3, 16, 16) * 2 - 1, ["smiling", "crying"]
    got = loss(frames, prompts, rng=torch.Generator().manual_seed(5))
    views = random_views(frames, 3, loss.view_shift, loss.view_scale, torch.Generator().manual_seed(5))
    t = clip.encode_text(prompts, template="The person is {}.")
    expect = 0.0
    for k in range(3):
        logits = clip.encode_image(views[2 * k:2 * k + 2]) @ t.t() / 0.07
        expect += -sum(torch.log_softmax(logits[i], 0)[i] for i in range(2)) / 2 / 3
    assert got.item() == pytest.approx(expect.item(), rel=1e-4)
    again = loss(frames, prompts, rng=torch.Generator().manual_seed(5))
    assert got.item() == again.item()  # the views are a function of the generator
    assert loss(frames, prompts, rng=torch.Generator().manual_seed(6)).item() != got.item()


def test_directional_is_one_minus_cosine_of_image_and_text_changes():
    torch.manual_seed(0)
    clip = CLIPEncoder.from_config(CLIP_VIT)
    cont = ContrastiveLoss(clip, template="The person is {}.")
    term = DirectionalLoss(cont, neutral="calm")
    first, last = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    prompts = ["smiling", "crying"]
    dv = clip.encode_image(last) - clip.encode_image(first)
    t = clip.encode_text(prompts + ["calm"], template="The person is {}.")
    dt = t[:2] - t[2:]
    expect = 1 - ((dv * dt).sum(1) / (dv.norm(dim=1) * dt.norm(dim=1))).mean()
    assert term(first, last, prompts).item() == pytest.approx(expect.item(), rel=1e-4)
    assert term(first, first, prompts).item() == pytest.approx(1.0)  # no change: no alignment, finite
    loss = AnimationLoss(LossWeights(contrastive=0.5, lpips=0.0, directional=1.0), cont, directional=term)
    assert loss.pixel_frames(4) == [0, 3] and "directional" in loss.active
    ws = torch.randn(2, 4, 3, 8, requires_grad=True)
    total, terms = loss(ws, ws[:, 0].detach(), {0: first, 3: last}, prompts)
    assert terms["directional"].item() == pytest.approx(expect.item(), rel=1e-4)
    with pytest.raises(ValueError, match="directional"):
        AnimationLoss(LossWeights(directional=1.0), cont)


def test_an_ensemble_of_loss_clips_averages_each_clips_loss_on_the_same_views():
    torch.manual_seed(0)
    clips = [CLIPEncoder.from_config(CLIP_VIT) for _ in range(3)]  # three random CLIPs: three different losses
    frames, first = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    prompts, template = ["smiling", "crying"], "The person is {}."
    ensemble = ContrastiveLoss(clips, template=template, views=2)
    got = ensemble(frames, prompts, rng=torch.Generator().manual_seed(4))
    views = random_views(frames, 2, ensemble.view_shift, ensemble.view_scale, torch.Generator().manual_seed(4))
    expect, dirs = [], []
    for clip in clips:  # eq. 11 by hand under each CLIP, on the same two views
        t = clip.encode_text(prompts + ["calm"], template=template)
        logits = clip.encode_image(views) @ t[:2].t() / 0.07
        expect.append(-sum(torch.log_softmax(logits[i], 0)[i % 2] for i in range(4)) / 4)
        dv = clip.encode_image(frames) - clip.encode_image(first)
        dirs.append(1 - torch.nn.functional.cosine_similarity(dv, t[:2] - t[2:], dim=-1).mean())
    assert len({round(e.item(), 4) for e in expect}) == 3
    assert got.item() == pytest.approx(torch.stack(expect).mean().item(), rel=1e-4)
    term = DirectionalLoss(ensemble, neutral="calm")
    assert term(first, frames, prompts).item() == pytest.approx(torch.stack(dirs).mean().item(), rel=1e-4)
    assert ensemble.clip is clips[0] and all(not p.requires_grad for p in ensemble.parameters())
    single = ContrastiveLoss([clips[1]], template=template)
    assert single(frames, prompts).item() == pytest.approx(ContrastiveLoss(clips[1], template=template)(
        frames, prompts).item())
    with pytest.raises(ValueError, match="at least one CLIP"):
        ContrastiveLoss([])


def test_outside_region_loss_counts_only_change_outside_each_mask():
    first = torch.zeros(2, 3, 8, 8)
    last = first.clone()
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, :4] = 1                       # the top half is each prompt's region
    last[0, :, :4] = 0.7                      # video 0 changes only inside its region
    last[1, 0, 6, 2] = 2.0                    # video 1 changes one pixel of one channel outside it
    term = OutsideRegionLoss()(first, last, masks)
    assert term.item() == pytest.approx((0 + 4.0 / (3 * 32)) / 2)
    half = torch.nn.functional.interpolate(masks, size=(4, 4), mode="nearest")  # masks at another size are resized
    assert OutsideRegionLoss()(first, last, half).item() == pytest.approx(term.item())
    weights = LossWeights(contrastive=0.0, lpips=0.0, outside=3.0)
    loss = AnimationLoss(weights)
    assert loss.pixel_frames(4) == [0, 3] and loss.active["outside"] == 3.0
    ws = torch.randn(2, 4, 3, 8)
    total, terms = loss(ws, ws[:, 0], {0: first, 3: last}, ["a", "b"], regions=masks)
    assert terms["outside"].item() == pytest.approx(term.item())
    with pytest.raises(ValueError, match="region masks"):
        loss(ws, ws[:, 0], {0: first, 3: last}, ["a", "b"])


def test_target_latent_loss_against_hand_values():
    ws = torch.zeros(3, 4, 2, 2)
    w_s = torch.zeros(3, 2, 2)
    w_t = torch.zeros(3, 2, 2)
    ws[0, -1] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])   # video 0: last code (1,0 | 0,0), target (0,0 | 0,2)
    w_t[0, 1, 1] = 2.0
    ws[1, -1] = torch.tensor([[3.0, 0.0], [3.0, 0.0]])   # video 1: on the target's line, 3/2 as far
    w_t[1] = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    ws[2, -1] = 5.0                                      # video 2: no target (not read)
    known = torch.tensor([True, True, False])
    w = TargetLatentLoss("w")(ws, w_s, w_t, known)
    assert w.item() == pytest.approx(((1 + 4) / 4 + (1 + 1) / 4) / 2)
    d = TargetLatentLoss("direction")(ws, w_s, w_t, known)
    assert d.item() == pytest.approx(((1 - 0.0) + (1 - 1.0)) / 2)  # orthogonal; same direction
    assert TargetLatentLoss("w")(ws, w_s, w_t, torch.zeros(3, dtype=torch.bool)).item() == 0.0
    # gain 1.5: the pull goes to w_s + 1.5 (w_t − w_s): (0,0 | 0,3) and (3,0 | 3,0), which video 1 reaches
    assert TargetLatentLoss("w", gain=1.5)(ws, w_s, w_t, known).item() == pytest.approx(((1 + 9) / 4 + 0) / 2)
    assert TargetLatentLoss("direction", gain=1.5)(ws, w_s, w_t, known).item() == pytest.approx(d.item())
    # one gain per video replaces the module's: video 0 at 0.5 → (0,0 | 0,1), video 1 at 1.5 (reached)
    per_video = TargetLatentLoss("w", gain=7.0)(ws, w_s, w_t, known, torch.tensor([0.5, 1.5, 9.0]))
    assert per_video.item() == pytest.approx(((1 + 1) / 4 + 0) / 2)
    aimed = TargetLatentLoss("w").aim(w_s, w_t, torch.tensor([0.5, 1.5, 2.0]))
    assert torch.equal(aimed[0, 1], torch.tensor([0.0, 1.0])) and torch.equal(aimed[1, 0], torch.tensor([3.0, 0.0]))
    with pytest.raises(ValueError, match="gain"):
        TargetLatentLoss("w", gain=0.0)
    with pytest.raises(ValueError, match="target form"):
        TargetLatentLoss("pixels")
    loss = AnimationLoss(LossWeights(contrastive=0.0, lpips=0.0, w_reg=0.0, path_reg=0.0, target=2.0),
                         target_form="direction")
    assert loss.pixel_frames(4) == [] and loss.active == {"target": 2.0}  # reads no pixels
    total, terms = loss(ws, w_s, {}, ["a", "b", "c"], targets=(w_t, known))
    assert terms["target"].item() == pytest.approx(d.item()) and total.item() == pytest.approx(2 * d.item())
    loss_w = AnimationLoss(LossWeights(contrastive=0.0, lpips=0.0, w_reg=0.0, path_reg=0.0, target=1.0))
    _, terms = loss_w(ws, w_s, {}, ["a", "b", "c"], targets=(w_t, known, torch.tensor([0.5, 1.5, 9.0])))
    assert terms["target"].item() == pytest.approx(per_video.item())  # the targets' third part: per-video gains
    with pytest.raises(ValueError, match="target codes"):
        loss(ws, w_s, {}, ["a", "b", "c"])


def test_target_image_loss_reads_only_known_videos():
    last = torch.zeros(3, 3, 4, 4)
    target = torch.zeros(3, 3, 4, 4)
    target[0, 1, 2, 2] = 4.0                   # video 0: one value off by 4
    target[2] = 9.0                            # video 2: no target (not read)
    known = torch.tensor([True, True, False])
    assert TargetImageLoss()(last, target, known).item() == pytest.approx((16 / 48 + 0) / 2)
    assert TargetImageLoss()(last, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0
    loss = AnimationLoss(LossWeights(contrastive=0.0, lpips=0.0, w_reg=0.0, path_reg=0.0, target_pixels=3.0))
    assert loss.pixel_frames(4) == [3] and loss.active == {"target_pixels": 3.0}
    ws = torch.zeros(3, 4, 2, 2)
    total, terms = loss(ws, ws[:, 0], {3: last}, ["a", "b", "c"], targets=(ws[:, 0], known), target_images=target)
    assert total.item() == pytest.approx(3 * (16 / 48) / 2)
    with pytest.raises(ValueError, match="their images"):
        loss(ws, ws[:, 0], {3: last}, ["a", "b", "c"], targets=(ws[:, 0], known))


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


def test_official_contrastive_form_and_first_last_term(tmp_path):
    """Options for the official code's choices (docs/FIDELITY.md rows 5 and 14), against its formulas written out:
    ``log(1 + Σ_j exp((s_ij − s_ii)/τ))`` averaged over the batch, and ``MSE(Δw⁽¹⁾, Δw⁽ᵀ⁾)``."""
    torch.manual_seed(0)
    clip = CLIPEncoder.from_config(CLIP_VIT)
    frames, prompts = torch.rand(3, 3, 16, 16) * 2 - 1, ["smiling", "crying", "angry"]
    s = clip.encode_image(frames) @ clip.encode_text(prompts, template="The person is {}.").t()
    official = torch.log(1 + torch.exp((s - torch.diag(s).view(-1, 1)) / 0.07).sum(dim=1)).mean()
    loss = ContrastiveLoss(clip, 0.07, template="The person is {}.", form="official")
    assert loss(frames, prompts).item() == pytest.approx(official.item(), rel=1e-4)
    assert ContrastiveLoss(clip, 0.07, template="The person is {}.")(frames, prompts).item() < official.item()
    with pytest.raises(ValueError, match="form"):
        ContrastiveLoss(clip, form="softplus")

    from faceanim.losses import FirstLastRegularization

    ws, w_s = torch.randn(2, 4, 3, 5), torch.randn(2, 3, 5)
    dw = ws - w_s[:, None]
    assert FirstLastRegularization()(ws).item() == pytest.approx(torch.nn.functional.mse_loss(dw[:, 0], dw[:, -1]).item(),
                                                                 rel=1e-5)
    total, terms = AnimationLoss(LossWeights(w_reg=0, path_reg=0, contrastive=0, lpips=0, first_last=2.0))(
        ws, w_s, {}, prompts[:2])
    assert set(terms) == {"first_last"} and total.item() == pytest.approx(2 * terms["first_last"].item())

    from tiny_models import tiny_config

    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig

    cfg = TrainConfig.from_yaml(tiny_config(tmp_path, loss={"first_last": 1.0, "contrastive_form": "official"}))
    trainer = build_trainer(cfg)
    assert trainer.loss.active["first_last"] == 1.0 and trainer.loss.contrastive.form == "official"
    off = {"w_reg": 0.0, "path_reg": 0.0, "contrastive": 0.0, "lpips": 0.0, "first_last": 1.0}
    (tmp_path / "fl").mkdir()
    trainer = build_trainer(TrainConfig.from_yaml(tiny_config(tmp_path / "fl", loss=off)))
    with torch.no_grad():
        for p in trainer.animator.motion_mapper.layers[-1].parameters():
            p.normal_(0, 0.01)
    before = [p.detach().clone() for p in trainer.animator.motion.parameters()]
    report = trainer.train_step(0)
    assert report["loss"] == pytest.approx(report["first_last"]) and report["first_last"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.animator.motion.parameters()))  # reaches M
    with pytest.raises(FaceanimError, match="contrastive_form"):
        TrainConfig.from_dict({**TrainConfig.from_yaml(tiny_config(tmp_path)).to_dict(), "loss": {"contrastive_form": "x"}})

"""The ToonFace build commands end to end with a handful of steps: clip → generator → motion → bundle → animate."""

from __future__ import annotations

import json
import os

import pytest
import torch

from faceanim.bundles import PACKAGED
from faceanim.cli.main import main


def test_toon_build_chain(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEANIM_NO_PROGRESS", "1")
    assert main(["toon", "render", "--faces", "4", "-o", "grid.png"]) == 0
    assert main(["toon", "train-clip", "--out", "clip", "--steps", "2", "--batch-size", "8", "--faces-per-key", "2"]) == 0
    ev = json.loads((tmp_path / "clip" / "zero_shot.json").read_text())
    assert set(ev) == {"heldout_template", "motion_template", "heldout_synonyms"}
    assert main(["toon", "train-generator", "--out", "gen", "--steps", "2", "--batch-size", "4", "--faces", "8"]) == 0
    # a wider run started from the checkpoint draws the same images, then trains and resumes on its own shapes
    assert main(["toon", "train-generator", "--out", "genw", "--steps", "1", "--batch-size", "2", "--faces", "4",
                 "--init-from", "gen/checkpoint", "--channels", "64=40", "--mapping-lr-multiplier", "0.1"]) == 0
    assert main(["toon", "train-generator", "--out", "genw", "--steps", "2", "--batch-size", "2", "--faces", "4",
                 "--resume", "--mapping-lr-multiplier", "0.1"]) == 0
    assert json.loads((tmp_path / "genw" / "generator" / "config.json").read_text())["channels"]["64"] == 40
    assert main(["toon", "train-generator", "--out", "genx", "--channels", "64=40"]) == 2
    capsys.readouterr()
    assert main(["toon", "eval-generator", "gen/generator", "--faces", "8", "--faces-per-key", "2"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert {"psnr_mean_db", "psnr_changed_pixels_db"} <= set(ev) and len(ev["drawn_level"]["smile"]) == 2
    assert ev["drawn_level"]["smile"][1] > 0.5  # the bundle's evaluator reads the renderer's smile
    # fine-tune the CLIP on a mix of renders and the generator's own drawings (a pool drawn once), blurred in part
    assert main(["toon", "train-clip", "--out", "clip_ft", "--steps", "2", "--batch-size", "8", "--faces-per-key", "2",
                 "--init-from", "clip/clip", "--generator", "gen/generator", "--generator-mix", "0.5",
                 "--generator-pool", "8", "--blur", "0.5", "--text-noise", "0.5", "--word-shift", "0.5"]) == 0
    assert (tmp_path / "clip_ft" / "clip" / "config.json").is_file()
    capsys.readouterr()
    assert main(["toon", "eval-clip", "clip_ft/clip", "--generator", "gen/generator", "--faces-per-key", "2"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert set(ev) == {"renderer", "generator"} and "top1_mean" in ev["generator"]["motion_template"]
    assert main(["toon", "eval-clip", "clip_ft/clip", "--faces-per-key", "2", "--face-set", "1"]) == 0
    assert "top1_mean" in json.loads(capsys.readouterr().out)["renderer"]["heldout_template"]
    assert main(["toon", "eval-clip", "clip_ft/clip", "--face-set", "-1"]) == 2
    assert main(["toon", "train-clip", "--out", "clip_bad", "--steps", "2", "--word-shift", "1.5"]) == 2
    assert not (tmp_path / "clip_bad").exists()
    assert main(["toon", "train-clip", "--out", "clip_bad", "--steps", "2", "--generator-mix", "0.5"]) != 0
    assert main(["toon", "train-motion", "--generator", "gen/generator", "--clip", "clip/clip", "-o", "motion",
                 "--steps", "2", "--set", "sample_every=0"]) == 0
    frozen = ["toon", "train-motion", "--generator", "gen/generator", "--clip", "clip/clip", "-o", "frozen",
              "--steps", "1", "--set", "sample_every=0", "--freeze-factors"]
    capsys.readouterr()
    assert main([*frozen, "eye_size,hair_hue"]) == 2  # a periodic hue has no single direction
    assert "hair_hue" in capsys.readouterr().err
    assert main([*frozen, "eye_size,eye_color"]) == 0
    from faceanim.motion import LanguageGuidedAnimator

    A = LanguageGuidedAnimator.from_pretrained(next((tmp_path / "frozen").glob("0*")) / "motion_model")
    assert A.config.frozen_directions == 2
    assert torch.allclose(A.frozen_basis @ A.frozen_basis.t(), torch.eye(2), atol=1e-5)
    run = next((tmp_path / "motion").iterdir())
    assert main(["toon", "train-evaluator", "--out", "ev", "--steps", "2", "--batch-size", "4", "--width", "4",
                 "--render-size", "32", "--faces", "8", "--faces-per-key", "1"]) == 0
    capsys.readouterr()
    build = ["toon", "build-bundle", "--generator", "gen/generator", "--motion", str(run / "motion_model")]
    assert main(build) == 2  # -o is required: no default writes into the installed package
    assert main([*build, "-o", str(PACKAGED / "toonface")]) == 2  # the shipped bundle is refused without --force
    assert "installed package" in capsys.readouterr().err
    (tmp_path / "supported.txt").write_text("smiling\nlaughing\n")
    assert main([*build, "-o", "bundle", "--evaluator", "ev/evaluator", "--supported-prompts", "supported.txt"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["fp16_vs_fp32_generator_psnr_db"] > 40 and report["bundle_mb"] < 40
    assert report["fp16_vs_fp32_evaluator_max_abs"] < 0.05
    info = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert info["components"]["evaluator"] == "evaluator"
    assert info["supported_prompts"] == info["example_prompts"] == ["smiling", "laughing"]
    assert main([*build, "-o", "bundle"]) == 2  # an existing folder needs --force
    assert main(["animate", "--bundle", "bundle", "-p", "smiling", "-n", "4", "-o", "smile.mp4"]) == 0
    assert os.path.getsize(tmp_path / "smile.mp4") > 0
    assert main(["info", "bundle"]) == 0
    assert "inside motion/" in capsys.readouterr().out


def test_build_bundle_refuses_existing_and_packaged_folders_without_force(tmp_path):
    from faceanim.errors import FaceanimError
    from faceanim.toon.bundle import check_bundle_output

    assert check_bundle_output(tmp_path / "new", force=False) == tmp_path / "new"
    for folder in (tmp_path, PACKAGED / "toonface", PACKAGED / "not_yet_there"):  # existing, shipped, in the package
        with pytest.raises(FaceanimError):
            check_bundle_output(folder, force=False)
        assert check_bundle_output(folder, force=True) == folder  # checked only: nothing is written here


def test_generator_resume_with_new_mapping_lr_keeps_the_function(tmp_path):
    """Resuming with another mapping LR multiplier / Adam betas rescales weights + moments: same outputs."""
    import torch

    from faceanim.models.stylegan2 import Generator, GeneratorConfig
    from faceanim.toon.train_generator import GeneratorTrainConfig, GeneratorTrainer

    def batch(n, g):
        z = torch.randn(n, 8, generator=g)
        return z, torch.tanh(torch.randn(n, 3, 8, 8, generator=g))

    def make(mult):
        torch.manual_seed(0)
        return Generator(GeneratorConfig(z_dim=8, w_dim=16, img_resolution=8, channel_base=64, channel_max=16,
                                         mapping_layers=2, mapping_lr_multiplier=mult))

    a = GeneratorTrainer(make(0.1), batch, GeneratorTrainConfig(steps=3, batch_size=2, checkpoint_every=3), tmp_path)
    a.train(log=lambda _: None)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = a.G(z)
    b = GeneratorTrainer(make(1.0), batch, GeneratorTrainConfig(steps=6, batch_size=2, betas=(0.9, 0.99)), tmp_path)
    assert b.resume() == 3
    with torch.no_grad():
        after = b.G(z)
    assert torch.allclose(before, after, atol=1e-5)
    assert b.opt.param_groups[0]["betas"] == (0.9, 0.99)
    fc = b.G.mapping.fc0
    assert torch.allclose(fc.weight * fc.weight_gain, a.G.mapping.fc0.weight * a.G.mapping.fc0.weight_gain, atol=1e-6)
    b.train(log=lambda _: None)  # and it trains on
    assert b.step == 6


def test_train_motion_prompt_keys(monkeypatch, tmp_path):
    from pathlib import Path
    from types import SimpleNamespace

    import faceanim.training.build as build

    seen = []
    monkeypatch.setattr(build, "build_trainer",
                        lambda cfg, run_dir=None: seen.append(cfg) or SimpleNamespace(run_dir=Path("r"), train=lambda: None))
    assert main(["toon", "train-motion", "--prompt-keys", "smile,laugh,tilt_left"]) == 0
    assert seen[0].prompts == ["smiling", "laughing", "tilting head to the left"]
    assert main(["toon", "train-motion", "--prompt-keys", "smile,dancing"]) == 2
    bundle = PACKAGED / "toonface"  # defaults: the shipped bundle's networks, a run folder under runs/
    assert seen[0].cond_clip == seen[0].loss_clip == str(bundle / "motion" / "clip")  # one CLIP for both
    assert seen[0].generator == str(bundle / "generator") and seen[0].out_dir == "runs/toonface/motion"
    monkeypatch.chdir(tmp_path)
    assert main(["toon", "train-motion", "--clip", "a/clip", "--loss-clip", "b/clip"]) == 2  # checked: not there
    (tmp_path / "a" / "clip").mkdir(parents=True)
    (tmp_path / "b" / "clip").mkdir(parents=True)
    assert main(["toon", "train-motion", "--clip", "a/clip", "--loss-clip", "b/clip", "--device", "cpu"]) == 0
    assert (seen[-1].cond_clip, seen[-1].loss_clip, seen[-1].device) == ("a/clip", "b/clip", "cpu")
    assert main(["toon", "train-motion", "--loss-clip", "a/clip", "--loss-clip", "b/clip"]) == 0  # an ensemble
    assert seen[-1].loss_clip == ["a/clip", "b/clip"] and seen[-1].cond_clip.endswith("motion/clip")


def test_expression_weights_mark_the_animated_pixels_and_weight_the_loss(tmp_path):
    import torch

    from faceanim.models.stylegan2 import Generator, GeneratorConfig
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.recipes import expression_mask, generator_batch
    from faceanim.toon.renderer import render
    from faceanim.toon.train_generator import GeneratorTrainConfig, GeneratorTrainer

    faces = ToonParams.sample(2, seed=4)
    smiling = faces.replace(smile=1.0)
    mask = expression_mask(smiling, render(smiling, size=64))
    assert mask.shape == (2, 1, 64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    rows = mask[:, 0].sum(-1).nonzero()[:, 1]
    assert 0 < mask.mean() < 0.1 and rows.float().mean() > 32  # a smile changes little, in the lower half
    assert expression_mask(faces.neutral(), render(faces.neutral(), size=64)).sum() == 0
    z, x = generator_batch(3, torch.Generator().manual_seed(0))
    z2, x2, w = generator_batch(3, torch.Generator().manual_seed(0), expression_weight=9.0)
    assert torch.equal(z, z2) and torch.equal(x, x2) and set(w.unique().tolist()) <= {1.0, 10.0}

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=z.shape[1], w_dim=16, img_resolution=8, channel_base=64, channel_max=16,
                                  mapping_layers=2))
    target = torch.tanh(torch.randn(4, 3, 8, 8))
    zz = torch.randn(4, z.shape[1])
    tr = GeneratorTrainer(G, None, GeneratorTrainConfig(), tmp_path, eval_batch=(zz, target))
    G.requires_grad_(False).eval()
    torch.manual_seed(1)
    plain, _ = tr.loss(zz, target)
    torch.manual_seed(1)
    uniform, _ = tr.loss(zz, target, torch.full((4, 1, 8, 8), 3.0))  # uniform weights: normalized away
    assert torch.allclose(plain, uniform, atol=1e-6)
    weight = torch.ones(4, 1, 8, 8)
    weight[:, :, :4] = 11.0
    torch.manual_seed(1)
    weighted, _ = tr.loss(zz, target, weight)
    torch.manual_seed(1)
    out = G(zz)
    wn = weight / weight.mean()
    err = out - target
    pooled = torch.nn.functional.avg_pool2d
    ref = ((err.square() * wn).mean() + 0.5 * (err.abs() * wn).mean()
           + 0.5 * ((pooled(out, 2) - pooled(target, 2)).abs() * pooled(wn, 2)).mean())
    assert torch.allclose(weighted, ref, atol=1e-6)
    assert "psnr_changed" not in tr.evaluate()
    tr.eval_batch = (zz, target, weight)
    torch.manual_seed(1)
    ev = tr.evaluate()
    mse_top = (G(zz).clamp(-1, 1) - target)[:, :, :4].square().mean()
    assert ev["psnr_changed"] == pytest.approx(float(10 * torch.log10(4 / mse_top)), abs=0.05)


def test_same_face_groups_are_one_identity_with_four_confusable_keys():
    import random

    import torch
    from faceanim.toon.captions import VOCABULARY
    from faceanim.toon.clip_data import CONFUSABLE, same_face_groups

    def key_of(text: str) -> str:
        phrase = text.split(" is ", 1)[1]
        return next(k for k, v in VOCABULARY.items() if phrase in (v["train"].pred or v["train"].with_))

    from faceanim.toon.renderer import render

    params, texts = same_face_groups(4, torch.Generator().manual_seed(0), random.Random(0))
    images = render(params, size=32)
    assert images.shape == (16, 3, 32, 32) and len(texts) == 16
    pairs = {frozenset(p) for p in CONFUSABLE}
    for j in range(4):
        group = images[4 * j:4 * j + 4]
        corner = group[:, :, :3, :3]
        assert torch.equal(corner, corner[:1].expand_as(corner))  # one background: one identity
        assert all(not torch.equal(group[a], group[b]) for a in range(4) for b in range(a + 1, 4))
        keys = [key_of(t) for t in texts[4 * j:4 * j + 4]]
        assert len(set(keys)) == 4 and frozenset(keys[:2]) in pairs and frozenset(keys[2:]) in pairs


def test_focus_keys_show_one_key_alone_on_a_neutral_face():
    import torch

    from faceanim.toon.captions import PROMPT_TARGETS
    from faceanim.toon.factors import ATTRIBUTE, EXPRESSION, SLICES
    from faceanim.toon.latent import decode
    from faceanim.toon.recipes import generator_batch

    keys = ("wink", "cry", "gaze_left", "age")
    z, images = generator_batch(40, torch.Generator().manual_seed(3), focus_keys=keys, focus_share=0.5)
    assert z.shape[0] == images.shape[0] == 40
    v = decode(z).vector
    moving = EXPRESSION + ATTRIBUTE
    picked = set()
    for row in v[:20]:
        active = [i for i in moving if abs(float(row[i])) > 1e-4]
        assert len(active) == 1, active                      # one key alone, on an otherwise neutral face
        (i,) = active
        key = next(k for k in keys if SLICES[PROMPT_TARGETS[k][0]].start == i)
        factor, target = PROMPT_TARGETS[key]
        assert 0.3 - 1e-4 <= float(row[i]) / target <= 1 + 1e-4
        picked.add(key)
    assert picked == set(keys)
    # the rest of the batch is the usual distribution; no focus keys leaves the batch as it always was
    plain = generator_batch(8, torch.Generator().manual_seed(3))
    again = generator_batch(8, torch.Generator().manual_seed(3), focus_keys=(), focus_share=0.5)
    assert torch.equal(plain[0], again[0]) and torch.equal(plain[1], again[1])
    only = decode(generator_batch(6, torch.Generator().manual_seed(3), focus_keys=("wink",), focus_share=1.0)[0])
    assert (only.vector[:, SLICES["wink"].start] >= 0.3 - 1e-4).all()  # a whole batch of the focus keys


def test_train_generator_focus_options_are_checked(tmp_path, capsys):
    assert main(["toon", "train-generator", "-o", str(tmp_path / "g"), "--focus-keys", "wink,dancing"]) == 2
    assert "dancing" in capsys.readouterr().err
    assert main(["toon", "train-generator", "-o", str(tmp_path / "g"), "--focus-keys", "wink",
                 "--focus-share", "0"]) == 2
    assert not (tmp_path / "g").exists()


def test_train_motion_paraphrases_list_training_wordings(monkeypatch):
    from pathlib import Path
    from types import SimpleNamespace

    import faceanim.training.build as build
    from faceanim.toon.captions import VOCABULARY

    seen = []
    monkeypatch.setattr(build, "build_trainer",
                        lambda cfg, run_dir=None: seen.append(cfg) or SimpleNamespace(run_dir=Path("r"), train=lambda: None))
    assert main(["toon", "train-motion", "--prompt-keys", "smile,eyes_closed", "--paraphrases"]) == 0
    smile, closed = seen[0].prompts
    assert smile.split(" | ") == ["smiling", "grinning", "happy"]
    assert closed.split(" | ")[0] == "closing eyes" and "keeping their eyes shut" in closed
    heldout = {w for k in VOCABULARY for w in VOCABULARY[k]["heldout"].all()}
    assert not heldout & set(smile.split(" | ") + closed.split(" | "))


def test_region_masks_cover_what_the_renderer_draws_for_each_prompt():
    from faceanim.data.regions import get_region_masks
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.latent import Z_DIM, encode, sample_identity_z
    from faceanim.toon.renderer import render

    masks_of = get_region_masks("toonface")  # registered by the plugin
    z = sample_identity_z(4, Z_DIM, torch.Generator().manual_seed(0))
    m = masks_of(z, ["going grey", "grey_hair", "winking", "dancing"], 64)
    assert m.shape == (4, 1, 64, 64) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert m[3].min() == 1  # a prompt it does not know may change everything
    assert 0.02 < m[2].mean() < m[0].mean() < 0.6  # a wink is smaller than a head of grey hair
    # the mask holds every pixel that the prompt's own rendering changes, on that face
    p = ToonParams.sample(4, rng=torch.Generator().manual_seed(0))
    assert torch.allclose(encode(p), z)
    grey = (render(p.replace(grey_hair=1.0), size=64) - render(p, size=64)).abs().amax(1, keepdim=True) > 0.04
    assert grey[0].any() and (m[0][grey[0]] == 1).all() and not (m[1][grey[1]] == 0).any()


def test_target_latents_write_the_prompts_factor_and_keep_the_rest():
    from faceanim.data.targets import get_target_latents
    from faceanim.toon.captions import PROMPT_TARGETS
    from faceanim.toon.factors import SLICES
    from faceanim.toon.latent import Z_DIM, decode, sample_identity_z

    target_of = get_target_latents("toonface")  # registered by the plugin
    z = sample_identity_z(3, Z_DIM, torch.Generator().manual_seed(1))
    z_t, known = target_of(z, ["going grey", "wink", "dancing"])
    assert known.tolist() == [True, True, False] and torch.equal(z_t[2], z[2])
    before, after = decode(z).vector, decode(z_t).vector
    for row, key in ((0, "grey_hair"), (1, "wink")):
        factor, target = PROMPT_TARGETS[key]
        i = SLICES[factor].start
        assert after[row, i] == pytest.approx(target, abs=1e-5) and before[row, i] != pytest.approx(target, abs=1e-3)
        rest = [j for j in range(before.shape[1]) if j != i]
        assert torch.allclose(after[row, rest], before[row, rest], atol=1e-5)  # nothing else about the face moves

"""The ToonFace build commands end to end with a handful of steps: clip → generator → motion → bundle → animate."""

from __future__ import annotations

import json
import os

from faceanim.cli.main import main


def test_toon_build_chain(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEANIM_NO_PROGRESS", "1")
    assert main(["toon", "render", "--n", "4", "--out", "grid.png"]) == 0
    assert main(["toon", "train-clip", "--out", "clip", "--steps", "2", "--batch-size", "8", "--eval-per-key", "2"]) == 0
    ev = json.loads((tmp_path / "clip" / "zero_shot.json").read_text())
    assert set(ev) == {"heldout_template", "motion_template", "heldout_synonyms"}
    assert main(["toon", "train-generator", "--out", "gen", "--steps", "2", "--batch-size", "4", "--eval-size", "8"]) == 0
    assert main(["toon", "eval-generator", "gen/generator", "--n", "8"]) == 0
    assert "psnr_mean_db" in capsys.readouterr().out
    # fine-tune the CLIP on a mix of renders and the generator's own drawings (a pool drawn once), blurred in part
    assert main(["toon", "train-clip", "--out", "clip_ft", "--steps", "2", "--batch-size", "8", "--eval-per-key", "2",
                 "--init-from", "clip/clip", "--generator", "gen/generator", "--generator-mix", "0.5",
                 "--generator-pool", "8", "--blur", "0.5"]) == 0
    assert (tmp_path / "clip_ft" / "clip" / "config.json").is_file()
    capsys.readouterr()
    assert main(["toon", "eval-clip", "clip_ft/clip", "--generator", "gen/generator", "--per-key", "2"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert set(ev) == {"renderer", "generator"} and "top1_mean" in ev["generator"]["motion_template"]
    assert main(["toon", "train-clip", "--out", "clip_bad", "--steps", "2", "--generator-mix", "0.5"]) != 0
    assert main(["toon", "train-motion", "--generator", "gen/generator", "--clip", "clip/clip", "--out-dir", "motion",
                 "--steps", "2", "--set", "sample_every=0"]) == 0
    run = next((tmp_path / "motion").iterdir())
    assert main(["toon", "build-bundle", "--generator", "gen/generator", "--motion", str(run / "motion_model"),
                 "--out", "bundle"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["fp16_vs_fp32_generator_psnr_db"] > 40 and report["bundle_mb"] < 40
    assert main(["animate", "--bundle", "bundle", "-p", "smiling", "-n", "4", "-o", "smile.mp4"]) == 0
    assert os.path.getsize(tmp_path / "smile.mp4") > 0
    assert main(["info", "bundle"]) == 0
    assert "inside motion/" in capsys.readouterr().out


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


def test_train_motion_prompt_keys(monkeypatch):
    from types import SimpleNamespace
    from pathlib import Path

    import faceanim.training.build as build

    seen = []
    monkeypatch.setattr(build, "build_trainer",
                        lambda cfg, run_dir=None: seen.append(cfg) or SimpleNamespace(run_dir=Path("r"), train=lambda: None))
    assert main(["toon", "train-motion", "--prompt-keys", "smile,laugh,tilt_left"]) == 0
    assert seen[0].prompts == ["smiling", "laughing", "tilting head to the left"]
    assert main(["toon", "train-motion", "--prompt-keys", "smile,dancing"]) == 2

"""From public checkpoints to a human-face bundle in one command (issue 22, point 4): `faceanim recipe ffhq`, end to
end on tiny stand-in files served from 127.0.0.1 — an NVlabs pickle on a file server, two open_clip CLIPs on a
stand-in Hub — with tiny training overrides; interrupted and resumed; then the animate command it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from faceanim.cli.main import main
from faceanim.recipes import EXPRESSIONS, RECIPES, expected_time
from faceanim.training.trainer import Trainer
from http_helpers import serve
from hub_helpers import point_hf_at, stand_in_hub
from test_clip_pretrained import hub_files
from test_clip import random_open_clip
from test_convert_nvlabs import CASES, build_generator, snapshot, write_pickle

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "steps=4", "--set", "checkpoint_every=2", "--set", "sample_every=0", "--set", "num_items=64",
        "--set", "motion.h_dim=16", "--set", "motion.mapper_hidden=32", "--set", "log_every=1",
        "--set", "pretrained=null", "--set", "cond_clip=hf-hub:faceanim-test/clip-rn",
        "--set", "loss_clip=hf-hub:faceanim-test/clip-vit"]


def test_recipe_follows_the_papers_config():
    """configs/ffhq_paper.yaml (image mode) and the recipe (latent mode) agree on every shared setting."""
    paper = yaml.safe_load((ROOT / "configs" / "ffhq_paper.yaml").read_text())
    train = RECIPES["ffhq"].train
    for key in ("cond_clip", "loss_clip", "template", "batch_size", "num_frames", "steps", "lr_encoder", "lr_mapper",
                "lr_recurrent", "betas", "motion", "checkpoint_every", "sample_every"):
        assert train[key] == paper[key], key
    assert {k: v for k, v in train["loss"].items() if not k.startswith("lpips")} == \
        {k: v for k, v in paper["loss"].items() if not k.startswith("lpips")}
    assert train["loss"]["lpips"] == 0.0  # no source image in latent mode
    lines = (ROOT / "configs" / "prompts" / "expressions.txt").read_text().splitlines()
    assert list(EXPRESSIONS) == [ln for ln in lines if ln and not ln.startswith("#")]
    assert train["mode"] == "latent" and train["pretrained"] == "openai" and RECIPES["ffhq"].generator == "nvlabs:ffhq"
    text = "\n".join(expected_time(2000))
    assert "under 60 min" in text and "20 h to 25 h" in text  # the paper's GPU figure; 36–45 s per step on CPU


@pytest.fixture
def servers(tmp_path, monkeypatch):
    case = CASES["ada-4"]
    pkl = write_pickle(tmp_path / "ffhq.pkl", snapshot(case, build_generator(case, seed=1), build_generator(case, 2)))
    monkeypatch.setenv("FACEANIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    with serve({"/stylegan2-ada-pytorch/pretrained/ffhq.pkl": pkl.read_bytes()}) as files, stand_in_hub() as hub:
        for i, kind in enumerate(("rn", "vit")):
            sha = f"{i + 1}" * 40
            hub.repos[f"faceanim-test/clip-{kind}"] = {"refs": {"main": sha}, "commits": {
                sha: hub_files(random_open_clip(kind, seed=i, fp16_exact=False), kind)}}
        point_hf_at(monkeypatch, tmp_path / "hf", hub.url)
        yield files, hub


def test_recipe_end_to_end_interrupted_resumed_then_animate(servers, tmp_path, monkeypatch, capsys):
    files, hub = servers
    args = ["recipe", "ffhq", "--set", f"generator={files('/stylegan2-ada-pytorch/pretrained/ffhq.pkl')}", *TINY]

    real_step = Trainer.train_step

    def interrupted(self, step):
        if step == 3:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    assert main(args) == 130
    out = capsys.readouterr().out
    assert out.index("on a GPU: under") < out.index("on CPU:") < out.index("[1/4] generator:")
    assert "[3/4] motion model: training 4 steps" in out
    work = tmp_path / "home" / "recipes" / "ffhq"
    assert (work / "run" / "checkpoints" / "latest").is_dir() and not (tmp_path / "home" / "bundles").exists()
    n_files, n_hub = len(files.requests), len(hub.requests)

    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[1/4] generator: " in out and "(done)" in out
    assert "[3/4] motion model: resuming" in out and "at step 2 of 4" in out
    assert out.strip().splitlines()[-1] == "animate a photo with:  faceanim animate me.jpg -p smiling -b ffhq"
    assert len(files.requests) == n_files and len(hub.requests) == n_hub  # nothing downloaded twice
    steps = [json.loads(ln)["step"] for ln in (work / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 3, 4]  # step 3 ran, step 4 was interrupted; resumed from the step-2 checkpoint

    bundle = tmp_path / "home" / "bundles" / "ffhq"
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["name"] == "ffhq" and info["alignment"] == "ffhq" and info["template"] == "The person is {}."
    assert info["supported_prompts"] == list(EXPRESSIONS)  # what it was trained on (faceanim info lists them)
    assert "faceanim recipe ffhq" in (bundle / "MODEL_CARD.md").read_text()

    assert main(args) == 2  # a finished bundle is not overwritten without --force
    assert "already exists" in capsys.readouterr().err

    video = tmp_path / "smiling.gif"
    assert main(["animate", "-p", "smiling", "-b", "ffhq", "-n", "3", "-o", str(video)]) == 0
    assert video.stat().st_size > 0

    # the command it prints, on a real photo (FFHQ alignment with dlib, then the projector; 2 steps here)
    pytest.importorskip("dlib")
    from PIL import Image
    from skimage import data as skimage_data

    photo = tmp_path / "me.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    monkeypatch.chdir(tmp_path)
    assert main(["animate", "me.jpg", "-p", "smiling", "-b", "ffhq", "-n", "3", "--invert-steps", "2"]) == 0
    assert (tmp_path / "animation.mp4").stat().st_size > 0


def test_dry_run_states_the_plan_and_downloads_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEANIM_HOME", str(tmp_path / "home"))
    assert main(["recipe", "ffhq", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "on a GPU: under 60 min" in out and "on CPU:   20 h to 25 h" in out
    assert "generator: nvlabs:ffhq; CLIPs: RN50 / ViT-B-32 (openai); 17 prompts" in out
    assert not (tmp_path / "home").exists()
    assert main(["recipe", "ffhq", "--dry-run", "--set", "bogus=1"]) == 2
    assert "unknown training option(s): bogus" in capsys.readouterr().err

"""The shipped ToonFace bundle: found by name, loads, and `faceanim animate` with no other argument writes a video."""

from __future__ import annotations

import json

import imageio.v3 as iio
import torch

from faceanim.bundles import PACKAGED, available_bundles, read_bundle_info
from faceanim.cli.main import main


def test_default_bundle_is_shipped_and_small():
    assert "toonface" in available_bundles()
    folder = PACKAGED / "toonface"
    info = read_bundle_info(folder)
    assert info.name == "toonface" and info.z_sampler == "toonface" and (folder / "MODEL_CARD.md").is_file()
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size <= 40e6, size
    assert json.loads((folder / "generator" / "config.json").read_text())["img_resolution"] == 128


def test_quick_start_command_writes_a_video(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["animate", "--prompt", "The cartoon person is laughing", "--out", "laugh.mp4"]) == 0
    frames = iio.imread(tmp_path / "laugh.mp4")
    assert frames.shape == (16, 128, 128, 3)
    assert "bundle toonface" in capsys.readouterr().out
    assert frames[0].std() > 10  # a drawn face, not a blank frame


def test_default_bundle_moves_the_face_and_depends_on_the_prompt():
    from faceanim.pipelines import AnimationPipeline

    pipe = AnimationPipeline.from_bundle()
    a = pipe("smiling", seed=1, num_frames=8, rng=torch.Generator().manual_seed(0))
    b = pipe("crying", seed=1, num_frames=8, rng=torch.Generator().manual_seed(0))
    assert torch.equal(a.latents[0], b.latents[0])           # same start: the seed's face
    assert (a.latents[-1] - a.latents[0]).abs().max() > 1e-3  # it moves
    assert (a.latents[-1] - b.latents[-1]).abs().max() > 1e-3  # differently for another prompt


def test_evaluate_scores_the_default_bundle_with_its_own_evaluator(tmp_path, monkeypatch):
    """The bundle ships its ground-truth evaluator: `faceanim evaluate` scores ToonFace with no --evaluator."""
    from faceanim.toon.evaluator import ToonEvaluator

    assert "evaluator" in read_bundle_info(PACKAGED / "toonface").components
    ToonEvaluator.from_pretrained(PACKAGED / "toonface" / "evaluator")  # loads, fp16 stored → float32
    monkeypatch.setenv("FACEANIM_NO_PROGRESS", "1")
    out = tmp_path / "ev"
    assert main(["evaluate", "--methods", "ours", "-p", "laugh", "--faces", "2", "--frames", "6",
                 "--real", "8", "--grid-faces", "0", "--bootstrap", "100", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["domain"] == "toon" and res["features"]["evaluator"].startswith("the bundle's")
    assert res["features"]["identity"].startswith("toon")
    assert {"toon_success", "toon_identity_drift"} <= set(res["methods"]["ours"]["overall"])

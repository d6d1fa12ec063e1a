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

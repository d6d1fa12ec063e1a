"""``faceanim results`` (issue 7): the whole results page from one command on the tiny bundle — comparison,
ablations trained from the bundle, the page's numbers equal to the stages' results.json, resuming, bad suites."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from faceanim.cli.main import main
from faceanim.errors import FaceanimError
from faceanim.evaluation.suite import SUITES, SuiteConfig, ablation_findings, comparison_findings

from tiny_models import PROMPTS, tiny_bundle

SUITE = {
    "name": "tiny",
    "comparison": {"methods": ["ours", "mocogan"], "prompts": PROMPTS[:2], "faces": 2, "frames": 4,
                   "identity": "clip", "grid_faces": 1, "bootstrap": 200},
    "ablation_eval": {"prompts": PROMPTS[:2], "faces": 2, "frames": 4, "identity": "clip", "grid_faces": 0,
                      "bootstrap": 200},
    "train": {"steps": 2, "batch_size": 2, "prompts": PROMPTS[:4], "set": ["motion.h_dim=16", "log_every=1"]},
    "ablations": [{"name": "recipe", "description": "reference"},
                  {"name": "no-contrast", "set": ["loss.contrastive=0"]}],
}


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    bundle = tiny_bundle(tmp)
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump({**SUITE, "bundle": str(bundle)}))
    return tmp, path


def test_results_command_writes_the_page_from_the_stages(suite_run, capsys, monkeypatch):
    tmp, suite = suite_run
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out, page = tmp / "out", tmp / "docs" / "RESULTS.md"
    page.parent.mkdir()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["results", "--suite", str(suite), "--out", str(out), "--page", str(page), "-q"]) == 0
        assert torch.get_num_threads() == 2  # the caller's count is restored
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    text = (out / "RESULTS.md").read_text()
    assert page.read_text() == text and text.strip() in printed  # the page is what the command printed
    for stage in ("comparison", "ablations/shipped/eval", "ablations/recipe/eval", "ablations/no-contrast/eval"):
        assert (out / stage / "results.json").is_file() and (out / stage / "stage.json").is_file()
    assert (out / "ablations/recipe/train/motion_model/config.json").is_file()
    assert (out / "ablations/recipe/train/checkpoints/latest/state.json").is_file()
    # the contrastive switch reached the loss: that run never logged a contrastive term
    logged = [json.loads(line) for line in (out / "ablations/no-contrast/train/log.jsonl").read_text().splitlines()]
    assert logged and all("contrastive" not in r for r in logged)
    assert any("contrastive" in json.loads(line) for line in
               (out / "ablations/recipe/train/log.jsonl").read_text().splitlines())
    # every number of the comparison table is the stage's results.json value, formatted
    comp = json.loads((out / "comparison/results.json").read_text())
    row = next(line for line in text.splitlines() if line.startswith("| mean W+ step per frame"))
    for method in ("ours", "mocogan"):
        assert f"{comp['methods'][method]['overall']['latent_step']['mean']:.3g}" in row
    abl = json.loads((out / "ablations/no-contrast/eval/results.json").read_text())
    assert abl["methods"]["ours"]["overall"]["latent_step"]["mean"] == 0.0  # no contrastive loss → no motion
    assert "**no-contrast**: the model does not move" in text
    assert re.search(r"\*\*[\d.]+ min in all\*\*", text)
    assert "with 1 thread." in text  # the suite's default thread count, whatever the caller's
    for name in ("shipped", "recipe", "no-contrast"):
        assert re.search(rf"^\| {name} \|", text, re.M)


def test_results_reuses_finished_stages(suite_run, capsys, monkeypatch):
    tmp, suite = suite_run
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out = tmp / "out"
    if not (out / "RESULTS.md").is_file():
        pytest.skip("needs the first test's run")
    before = (out / "ablations/recipe/eval/stage.json").read_text()
    mtime = (out / "ablations/recipe/train/motion_model/model.safetensors").stat().st_mtime
    (out / "ablations/no-contrast/eval/stage.json").unlink()  # as if interrupted during that stage's evaluation
    assert main(["results", "--suite", str(suite), "--out", str(out), "-q"]) == 0
    log = capsys.readouterr().err
    assert "[recipe] reused" in log and "[no-contrast] running" in log and "reusing trained" in log
    assert (out / "ablations/recipe/eval/stage.json").read_text() == before
    assert (out / "ablations/recipe/train/motion_model/model.safetensors").stat().st_mtime == mtime
    # other evaluation settings: every evaluation runs again on the same trained models; another training
    # setting for one run: that run retrains
    data = yaml.safe_load(suite.read_text())
    data["ablation_eval"]["faces"] = 1
    data["ablations"][1]["set"] = ["loss.contrastive=0", "loss.w_reg=2"]
    changed = tmp / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    assert main(["results", "--suite", str(changed), "--out", str(out), "-q"]) == 0
    log = capsys.readouterr().err
    assert "[comparison] reused" in log and "[shipped] the bundle or the stage's settings changed" in log
    assert "[recipe] reusing trained" in log and "[no-contrast] reusing trained" not in log
    assert (out / "ablations/recipe/train/motion_model/model.safetensors").stat().st_mtime == mtime
    assert len(json.loads((out / "ablations/recipe/eval/results.json").read_text())["seeds"]) == 1


def test_findings_follow_fixed_rules():
    def s(mean, lo, hi):
        return {"mean": mean, "low": lo, "high": hi, "n": 8}

    res = {"methods": {"ours": {"overall": {"toon_success": s(0.6, 0.4, 0.8), "acd": s(0.3, 0.2, 0.4)}, "per_prompt": {}},
                       "styleclip": {"overall": {"toon_success": s(0.0, 0.0, 0.0), "acd": s(0.25, 0.1, 0.35)}}}}
    lines = comparison_findings(res)
    assert any("best `ours`" in x and "clear of every other" in x for x in lines if "reached" in x)
    assert any("best `styleclip`" in x and "overlap with ours" in x for x in lines if "ACD" in x)
    rows = {"recipe": {"methods": {"ours": {"overall": {"toon_success": s(0.6, 0.4, 0.8), "latent_step": s(1, 1, 1),
                                                        "acd": s(0.3, 0.25, 0.35)}}}},
            "small": {"methods": {"ours": {"overall": {"toon_success": s(0.1, 0.0, 0.2), "latent_step": s(1, 1, 1),
                                                       "acd": s(0.32, 0.3, 0.34)}}}}}
    (line,) = ablation_findings(rows, "recipe")
    assert "toon_success 0.6 → 0.1 (worse)" in line and "acd" not in line  # acd intervals overlap


def test_packaged_suite_is_valid_and_bad_suites_fail_cleanly(tmp_path, capsys):
    cfg = SuiteConfig.from_file(SUITES / "toonface.yaml")
    assert cfg.bundle == "toonface" and {r.name for r in cfg.ablations} >= {"no-contrast", "batch2", "batch8",
                                                                           "no-path-reg", "path-first-order"}
    assert set(cfg.comparison["methods"]) == {"ours", "styleclip", "mocogan"} and cfg.comparison["steps"] == 300
    with pytest.raises(FaceanimError, match="unknown key"):
        SuiteConfig.from_dict({"name": "x", "ablatons": []})
    with pytest.raises(FaceanimError, match="unknown evaluation option"):
        SuiteConfig.from_dict({"comparison": {"facez": 3}})
    assert cfg.threads == 1
    with pytest.raises(FaceanimError, match="threads"):
        SuiteConfig.from_dict({"threads": -1})
    with pytest.raises(FaceanimError, match="distinct"):
        SuiteConfig.from_dict({"train": {"steps": 1}, "ablations": [{"name": "a"}, {"name": "a"}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    for args in (["--suite", str(bad)], ["--suite", str(tmp_path / "missing.yaml")]):
        assert main(["results", *args, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("faceanim: error:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_suite_loss_clip_trains_the_ablations_and_is_checked_first(suite_run, tmp_path, capsys, monkeypatch):
    """``train.loss_clip``: the ablations' contrastive loss uses that CLIP (the ToonFace recipe trains with a loss
    CLIP that is not the bundle's); a path that is not a CLIP folder fails in one line before any stage runs."""
    import torch

    from faceanim.encoders.clip import CLIPEncoder
    from tiny_models import CLIP_VIT

    tmp, _ = suite_run
    monkeypatch.setenv("TQDM_DISABLE", "1")
    torch.manual_seed(5)
    CLIPEncoder.from_config(CLIP_VIT).save_pretrained(tmp_path / "other_clip")
    data = {**SUITE, "bundle": str(tmp / "tiny-bundle"), "comparison": None, "shipped": False,
            "ablations": SUITE["ablations"][:1], "train": {**SUITE["train"], "loss_clip": str(tmp_path / "other_clip")}}
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["results", "--suite", str(suite), "--out", str(out), "-q"]) == 0
    trained = yaml.safe_load((out / "ablations/recipe/train/config.yaml").read_text())
    assert trained["loss_clip"] == str(tmp_path / "other_clip")
    assert trained["cond_clip"].endswith("motion/clip")  # conditioning stays the bundle's
    assert f"(loss CLIP: `{tmp_path / 'other_clip'}`)" in (out / "RESULTS.md").read_text()
    capsys.readouterr()
    data["train"]["loss_clip"] = str(tmp_path / "no_such_clip")
    suite.write_text(yaml.safe_dump(data))
    assert main(["results", "--suite", str(suite), "--out", str(tmp_path / "out2"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.loss_clip" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out2").exists()

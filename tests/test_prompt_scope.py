"""What a bundle can animate: supported prompts in bundle.json, the far-prompt note and its calibration."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from faceanim.bundles import PACKAGED, Bundle, read_bundle_info
from faceanim.cli.main import main
from faceanim.errors import CheckpointError
from faceanim.pipelines.prompt_scope import MARGIN, calibrate_threshold, far_prompt_notes


class AngleCLIP:
    """Text "embeddings" on the unit circle: a phrase's angle (degrees) is looked up, so similarities are cosines
    of known angle differences. Records the template it was called with."""

    def __init__(self, angles: dict[str, float]):
        self.angles, self.templates = angles, set()

    def encode_text(self, prompts, template=None):
        self.templates.add(template)
        a = torch.tensor([math.radians(self.angles[p]) for p in prompts])
        return torch.stack([a.cos(), a.sin()], dim=1)


def test_far_prompt_notes_name_the_nearest_supported_prompts():
    clip = AngleCLIP({"smiling": 0, "laughing": 20, "old": 90, "grinning": 10, "riding a bicycle": 200})
    notes = far_prompt_notes(clip, "T {}", ["grinning", "riding a bicycle"], ["smiling", "laughing", "old"],
                             threshold=0.9, bundle_name="b", show=2)
    assert len(notes) == 1 and "'riding a bicycle'" in notes[0] and "\n" not in notes[0]
    assert "Nearest: 'old', 'smiling'" in notes[0]  # 110° and 160° away; laughing is 180° away
    assert clip.templates == {"T {}"}
    # nothing declared: no note, no encoding
    assert far_prompt_notes(clip, None, ["riding a bicycle"], [], 0.9, "b") == []
    assert far_prompt_notes(clip, None, ["riding a bicycle"], ["smiling"], None, "b") == []


def test_calibration_rule_fit_half_negatives_and_report_rates():
    supported = ["smiling"]
    pos = {f"p{i}": 5.0 * i for i in range(10)}        # 0°..45°: cos 1 .. 0.707
    neg = {f"n{i}": 50.0 + 10 * i for i in range(10)}  # 50°..140°: cos 0.643 .. -0.77
    clip = AngleCLIP({"smiling": 0.0, **pos, **neg})
    result = calibrate_threshold(clip, None, supported, {"pos": list(pos)}, {"neg": list(neg)}, seed=3)
    again = calibrate_threshold(clip, None, supported, {"pos": list(pos)}, {"neg": list(neg)}, seed=3)
    assert result.to_dict() == again.to_dict()  # the split is a function of the seed
    # the threshold is just above the most similar negative of the fit half, which is never above n0's cos 50°
    assert result.threshold <= round(math.cos(math.radians(50)) + MARGIN, 4)
    assert result.pass_rate["neg"]["fit"] == 0.0
    assert result.pass_rate["pos"]["fit"] == 1.0 and result.pass_rate["pos"]["report"] == 1.0
    assert result.counts == {"pos": 10, "neg": 10}
    with pytest.raises(ValueError):
        calibrate_threshold(clip, None, supported, {"pos": list(pos)}, {"neg": []})


def test_bundle_json_declares_supported_prompts_and_checks_them(tmp_path):
    info = Bundle.open("toonface").info
    assert info.supported_prompts and set(info.example_prompts) <= set(info.supported_prompts)
    assert 0 < info.prompt_threshold < 1
    folder = tmp_path / "b"
    shutil.copytree(PACKAGED / "toonface", folder, ignore=shutil.ignore_patterns("*.safetensors"))
    data = json.loads((folder / "bundle.json").read_text())
    (folder / "bundle.json").write_text(json.dumps({**data, "example_prompts": ["juggling"]}))
    with pytest.raises(CheckpointError, match="juggling"):
        read_bundle_info(folder)
    (folder / "bundle.json").write_text(json.dumps({**data, "prompt_threshold": 3}))
    with pytest.raises(CheckpointError, match="prompt_threshold"):
        read_bundle_info(folder)


def test_animate_prints_one_note_for_a_far_prompt_and_still_runs(tmp_path, capsys):
    out = tmp_path / "x.gif"
    assert main(["animate", "-p", "smiling", "-p", "riding a bicycle", "-n", "2", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "'riding a bicycle'" in notes[0] and "Nearest:" in notes[0], err
    assert out.stat().st_size > 0
    assert main(["animate", "-p", "smiling", "-n", "2", "-o", str(out)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_info_lists_supported_prompts(capsys):
    assert main(["info", "toonface"]) == 0
    text = capsys.readouterr().out
    assert "supported prompts: " + ", ".join(Bundle.open("toonface").info.supported_prompts) in text


def test_calibrate_prompts_command(tmp_path, capsys):
    folder = tmp_path / "toon"
    shutil.copytree(PACKAGED / "toonface", folder)
    pos, neg = tmp_path / "para.txt", tmp_path / "unrelated.txt"
    pos.write_text("grinning\nhappy\nelderly\n")
    neg.write_text("riding a bicycle\na bowl of soup\nquantum physics\nplaying chess\n")
    report = tmp_path / "cal.json"
    assert main(["bundle", "calibrate-prompts", str(folder), "-P", str(pos), "-N", str(neg), "-o", str(report),
                 "--write"]) == 0
    text = capsys.readouterr().out
    result = json.loads(report.read_text())
    assert f"threshold {result['threshold']:.3f}" in text and "unrelated" in text and "para" in text
    assert json.loads((folder / "bundle.json").read_text())["prompt_threshold"] == result["threshold"]
    assert result["pass_rate"]["unrelated"]["fit"] == 0.0
    # --write needs a folder (it edits BUNDLE/bundle.json), checked before any model loads
    assert main(["bundle", "calibrate-prompts", "toonface", "-P", str(pos), "-N", str(neg), "--write"]) == 2
    assert "--write needs BUNDLE as a folder" in capsys.readouterr().err

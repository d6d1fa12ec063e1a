"""Hub ids (issue 22, point 1): `faceanim bundle push`, `faceanim animate -b hf:ORG/NAME`,
`AnimationPipeline.from_pretrained("ORG/NAME", revision=…)` — against a stand-in Hub on 127.0.0.1 (HF_ENDPOINT)
and offline (HF_HUB_OFFLINE=1) against the Hugging Face cache in a temporary HF_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from faceanim.cli.main import main
from faceanim.errors import FaceanimError
from faceanim.hub import parse_hub_id, push_bundle, resolve_pretrained
from faceanim.pipelines import AnimationPipeline
from hub_helpers import point_hf_at, stand_in_hub
from tiny_models import tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("hubbundle"))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with stand_in_hub() as h:
        point_hf_at(monkeypatch, tmp_path / "hf-home", h.url)
        yield h


def test_hub_ids_are_parsed():
    assert parse_hub_id("hf:org/name") == ("org/name", None)
    assert parse_hub_id("hf:org/name@v1.0") == ("org/name", "v1.0")
    with pytest.raises(FaceanimError, match="not a Hub id"):
        parse_hub_id("hf:justaname")
    assert resolve_pretrained("toonface") == "toonface"  # an installed name is never a Hub id
    with pytest.raises(FaceanimError, match="applies to Hub ids only"):
        resolve_pretrained("toonface", revision="main")


def test_push_then_animate_from_the_hub_then_offline(bundle, hub, tmp_path, monkeypatch, capsys):
    assert main(["bundle", "push", str(bundle), "faceanim-test/tiny"]) == 0
    out = capsys.readouterr().out
    assert "pushed" in out and "faceanim animate -p smiling -b hf:faceanim-test/tiny" in out
    files = hub.files("faceanim-test/tiny")
    assert json.loads(files["bundle.json"])["name"] == "tiny"
    assert "generator/model.safetensors" in files and "motion/config.json" in files
    readme = files["README.md"].decode()
    assert readme.startswith("---\nlibrary_name: faceanim") and "# tiny" in readme  # the model card, as the Hub shows

    video = tmp_path / "hub.gif"
    assert main(["animate", "-p", "smiling", "-n", "3", "-b", "hf:faceanim-test/tiny", "-o", str(video)]) == 0
    assert video.stat().st_size > 0
    assert any(path.startswith("/faceanim-test/tiny/resolve/") for _, path in hub.requests)

    # a second revision: main moves on, the first commit stays reachable by its hash
    first = hub.repos["faceanim-test/tiny"]["refs"]["main"]
    info = json.loads((bundle / "bundle.json").read_text())
    changed = tmp_path / "changed"
    import shutil

    shutil.copytree(bundle, changed)
    (changed / "bundle.json").write_text(json.dumps({**info, "fps": 5}))
    push_bundle(changed, "faceanim-test/tiny", commit_message="fps 5")
    assert AnimationPipeline.from_pretrained("faceanim-test/tiny").info.fps == 5
    old = AnimationPipeline.from_pretrained("faceanim-test/tiny", revision=first)
    assert old.info.fps == info["fps"]

    # offline: the same ids come from the cache in HF_HOME, with no request
    point_hf_at(monkeypatch, tmp_path / "hf-home", offline=True)
    n = len(hub.requests)
    pipe = AnimationPipeline.from_pretrained("hf:faceanim-test/tiny")
    assert pipe.info.fps == 5 and len(hub.requests) == n
    assert main(["info", "hf:faceanim-test/tiny"]) == 0
    assert "bundle tiny" in capsys.readouterr().out
    assert main(["animate", "-p", "smiling", "-b", "hf:faceanim-test/other", "-o", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert "hf:faceanim-test/other is not in the Hugging Face cache" in err and "HF_HUB_OFFLINE is set" in err
    assert len(err.strip().splitlines()) == 1


def test_hub_errors_are_one_line(bundle, hub, tmp_path, capsys):
    assert main(["info", "hf:faceanim-test/missing"]) == 2
    assert "no bundle hf:faceanim-test/missing on the Hub" in capsys.readouterr().err
    push_bundle(bundle, "faceanim-test/tiny")
    assert main(["info", "hf:faceanim-test/tiny@nope"]) == 2
    assert "no revision 'nope'" in capsys.readouterr().err
    not_bundle = tmp_path / "plain"
    not_bundle.mkdir()
    assert main(["bundle", "push", str(not_bundle), "faceanim-test/x"]) == 2
    assert "bundle.json" in capsys.readouterr().err


def test_prefilled_cache_offline_without_any_server(bundle, tmp_path, monkeypatch):
    """The layout huggingface_hub's cache uses (models--ORG--NAME/{refs,snapshots}), written by hand."""
    import shutil

    point_hf_at(monkeypatch, tmp_path / "hf", offline=True)
    repo = tmp_path / "hf" / "hub" / "models--someone--faces"
    sha = "a" * 40
    shutil.copytree(bundle, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    pipe = AnimationPipeline.from_pretrained("someone/faces", torch_dtype=torch.float32)
    assert pipe.info.name == "tiny"
    with pytest.raises(FaceanimError, match="not supported yet"):
        AnimationPipeline.from_pretrained("someone/faces", torch_dtype=torch.float16)

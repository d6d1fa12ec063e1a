"""CLIP by name, as open_clip names it (issue 22, point 2): ``cond_clip: RN50`` + ``pretrained: openai`` or an
``hf-hub:`` id go through open_clip's own pretrained loading and cache; offline, files already in the HF cache or
in ``~/.cache/clip`` are found; when nothing is found, one line says which file to put where."""

from __future__ import annotations

import hashlib
import io
import json

import open_clip
import pytest
import torch
from safetensors.torch import save as save_safetensors

from faceanim.errors import CheckpointError
from faceanim.training.build import load_clip
from hub_helpers import point_hf_at, stand_in_hub
from test_clip import TEXT_CFG, VISION_CFGS, random_open_clip, save_openai_archive

PROMPTS = ["a smiling face", "a crying face"]


def text_features(model, prompts=PROMPTS):
    return model.encode_text(open_clip.tokenize(prompts, context_length=TEXT_CFG["context_length"]), normalize=True)


def hub_files(model, kind: str = "rn") -> dict[str, bytes]:
    """An open_clip Hub repository: open_clip_config.json + open_clip_model.safetensors."""
    config = {"model_cfg": {"embed_dim": 32, "vision_cfg": VISION_CFGS[kind], "text_cfg": TEXT_CFG, "quick_gelu": True},
              "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "attn_mask"}
    return {"open_clip_config.json": json.dumps(config).encode(), "open_clip_model.safetensors": save_safetensors(state)}


def test_hf_hub_id_downloads_through_open_clip_then_loads_offline(tmp_path, monkeypatch):
    model = random_open_clip("rn", seed=3, fp16_exact=False)
    with stand_in_hub() as hub:
        sha = "c" * 40
        hub.repos["faceanim-test/tiny-clip"] = {"refs": {"main": sha}, "commits": {sha: hub_files(model)}}
        point_hf_at(monkeypatch, tmp_path / "hf", hub.url)
        enc = load_clip("hf-hub:faceanim-test/tiny-clip", None)
        assert any("/faceanim-test/tiny-clip/resolve/" in p for _, p in hub.requests)
        point_hf_at(monkeypatch, tmp_path / "hf", offline=True)
        n = len(hub.requests)
        again = load_clip("hf-hub:faceanim-test/tiny-clip", None)
        assert len(hub.requests) == n  # from the cache
    with torch.no_grad():
        ref = text_features(model)
        torch.testing.assert_close(enc.model.encode_text(open_clip.tokenize(PROMPTS, context_length=16),
                                                         normalize=True), ref)
        torch.testing.assert_close(again.encode_text(PROMPTS), ref)
    assert enc.config.mean == (0.5, 0.5, 0.5) and enc.config.quick_gelu  # the repository's preprocessing
    # a motion model saves it natively; a bundle then runs it without open_clip
    enc.save_pretrained(tmp_path / "native")
    from faceanim.encoders.clip import CLIPEncoder

    native = CLIPEncoder.from_pretrained(tmp_path / "native")
    assert native.impl == "faceanim"
    with torch.no_grad():
        torch.testing.assert_close(native.encode_text(PROMPTS), ref)


def test_openai_tag_offline_finds_openais_archive_in_dot_cache_clip(tmp_path, monkeypatch):
    """RN50 / openai: open_clip would fetch it from the Hub (offline: impossible); the archive OpenAI's `clip`
    package left in ~/.cache/clip is found, checked against the SHA-256 in its URL, and read by faceanim."""
    model = random_open_clip("rn", seed=4, fp16_exact=True)
    home = tmp_path / "home"
    (home / ".cache" / "clip").mkdir(parents=True)
    archive = save_openai_archive(model, home / ".cache" / "clip" / "RN50.pt")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FACEANIM_HOME", str(tmp_path / "fa"))
    point_hf_at(monkeypatch, tmp_path / "hf", offline=True)
    # the tiny archive stands in for OpenAI's: its checksum goes where open_clip's table has the real one
    real = open_clip.get_pretrained_cfg("RN50", "openai")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED["RN50"], "openai",
                        {**real, "url": real["url"].replace(real["url"].split("/")[-2], digest)})
    enc = load_clip("RN50", None, pretrained="openai")
    assert enc.config.name == "RN50" and enc.config.quick_gelu
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_text(PROMPTS), text_features(model), atol=2e-3, rtol=0)
    # a file whose checksum does not match is not taken for OpenAI's
    archive.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="put RN50.pt from https://"):
        load_clip("RN50", None, pretrained="openai")


def test_nothing_found_says_which_file_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    point_hf_at(monkeypatch, tmp_path / "hf", offline=True)
    with pytest.raises(CheckpointError) as info:
        load_clip("RN50", None, pretrained="openai")
    msg = str(info.value)
    url = open_clip.get_pretrained_cfg("RN50", "openai")["url"]
    assert "\n" not in msg
    assert f"put RN50.pt from {url} in {tmp_path / 'home' / '.cache' / 'clip'}/" in msg
    assert "timm/resnet50_clip.openai" in msg
    with pytest.raises(CheckpointError, match="no pretrained tag 'nope' for RN50 .*openai"):
        load_clip("RN50", None, pretrained="nope")
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        load_clip("hf-hub:faceanim-test/absent", None)


def test_train_config_accepts_pretrained_and_hub_ids(tmp_path):
    from faceanim.training.config import TrainConfig

    cfg = TrainConfig.from_dict({"generator": "nvlabs:ffhq", "cond_clip": "RN50", "loss_clip": "hf-hub:org/clip",
                                 "pretrained": "openai", "mode": "latent", "prompts": ["smiling"]})
    cfg.check_paths()  # neither a named source, a tag'd name nor an hf-hub: id is a missing path
    assert cfg.pretrained == "openai"


def test_name_and_tag_download_through_open_clips_own_loading(tmp_path, monkeypatch):
    """A tag open_clip publishes on the Hub: create_model(name, pretrained=tag) fetches it into the HF cache.
    A tiny architecture and tag are registered in open_clip's tables for the test (real ones are 100 M+ weights)."""
    from open_clip import factory, pretrained

    model = random_open_clip("vit", seed=5, fp16_exact=False)
    monkeypatch.setitem(factory._MODEL_CONFIGS, "tiny-vit", {"embed_dim": 32, "vision_cfg": VISION_CFGS["vit"],
                                                             "text_cfg": TEXT_CFG})
    monkeypatch.setitem(pretrained._PRETRAINED, "tiny-vit", {"openai": pretrained._pcfg(
        hf_hub="faceanim-test/tiny-vit/", quick_gelu=True)})
    with stand_in_hub() as hub:
        sha = "d" * 40
        hub.repos["faceanim-test/tiny-vit"] = {"refs": {"main": sha}, "commits": {sha: hub_files(model, "vit")}}
        point_hf_at(monkeypatch, tmp_path / "hf", hub.url)
        enc = load_clip("tiny-vit", None, pretrained="openai")
        assert any("/faceanim-test/tiny-vit/resolve/" in p for _, p in hub.requests)
    assert enc.config.quick_gelu  # the tag's activation, whatever the architecture's config says
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_text(PROMPTS), text_features(model))

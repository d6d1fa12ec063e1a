"""One vocabulary and one way into a bundle: seed ranges, bounded options, the Bundle object, the plugin registries,
and config errors that name their key."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from faceanim.bundles import Bundle
from faceanim.cli.main import main
from faceanim.errors import FaceanimError
from faceanim.pipelines.job import AnimateJob, parse_seeds

from test_animate_cli import _err
from tiny_models import tiny_bundle, tiny_config


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(tiny_bundle(tmp_path_factory.mktemp("b")))


@pytest.mark.parametrize("text, seeds", [("3", (3,)), ("0-3,7", (0, 1, 2, 3, 7)), ("5,1-2,5", (5, 1, 2)),
                                         (" 2 - 4 ", (2, 3, 4))])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "3-1", "-2", "1-x", "0-999999"])
def test_parse_seeds_refuses(text):
    with pytest.raises(FaceanimError):
        parse_seeds(text)


def test_seed_range_writes_one_video_per_seed(bundle, tmp_path, capsys):
    out = tmp_path / "face_{seed}/"
    assert main(["animate", "-b", bundle, "-p", "smiling", "-n", "3", "--seed", "2-3,7", "-o", str(out)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["face_2", "face_3", "face_7"]
    lines = capsys.readouterr().out
    assert lines.count("wrote ") == 3 and "seed 7" in lines
    # each seed is its own face: the first frames differ, and seed 3 equals a single-seed run
    first = {s: np.asarray(Image.open(tmp_path / f"face_{s}" / "frame_0000.png")) for s in (2, 3)}
    assert not np.array_equal(first[2], first[3])
    assert main(["animate", "-b", bundle, "-p", "smiling", "-n", "3", "--seed", "3", "-o", str(tmp_path / "one/")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / "frame_0002.png")),
                          np.asarray(Image.open(tmp_path / "face_3" / "frame_0002.png")))


def test_seed_range_needs_seed_in_the_name(bundle, tmp_path, capsys):
    assert main(["animate", "-b", bundle, "-p", "smiling", "--seed", "0-1", "-o", str(tmp_path / "x.mp4")]) == 2
    assert "{seed}" in _err(capsys) and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, needle", [
    (["--strength", "50"], "--strength"),
    (["--seed", "x"], "--seed"),
    (["--size", "8"], "--size"),
    (["--batch-size", "257"], "--batch-size"),
    (["--face-index", "2"], "--face-index applies to a photo"),
    (["--latent", "/no/such.safetensors"], "no such file"),
])
def test_animate_options_are_checked_before_loading(bundle, tmp_path, capsys, args, needle):
    assert main(["animate", "-b", bundle, "-p", "smiling", "-o", str(tmp_path / "x.gif"), *args]) == 2
    assert needle in _err(capsys)
    assert not list(tmp_path.iterdir())


def test_job_check_refuses_an_image_mode_bundle_without_a_photo(bundle, tmp_path):
    import shutil

    photo_bundle = tmp_path / "photo-bundle"
    shutil.copytree(bundle, photo_bundle)
    cfg = json.loads((photo_bundle / "motion" / "config.json").read_text())
    (photo_bundle / "motion" / "config.json").write_text(json.dumps({**cfg, "mode": "image"}))
    with pytest.raises(FaceanimError, match="animates photos"):
        AnimateJob(prompts=("smiling",), bundle=str(photo_bundle), out=str(tmp_path / "x.gif")).check()


def test_bundle_object(bundle):
    b = Bundle.open(bundle)
    assert b.name == "tiny" and Bundle.open(b) is b
    assert b.path("generator") == b.folder / "generator" and b.path("cond_clip") == b.folder / "motion" / "clip"
    assert b.has("loss_clip") and b.path("loss_clip") == b.folder / "loss_clip"
    assert not b.has("encoder") and not b.has("evaluator")
    with pytest.raises(FaceanimError, match="has no encoder"):
        b.path("encoder")
    assert b.generator_resolution == 16 and b.motion_mode == "latent" and b.info.alignment == "ffhq"
    assert b.load_generator().img_resolution == 16
    assert "bundle tiny" in b.describe()
    with pytest.raises(FaceanimError, match="unknown bundle"):
        Bundle.open("no-such-bundle")


def test_bundle_alignment_is_checked(bundle, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    info = json.loads((bad / "bundle.json").read_text())
    (bad / "bundle.json").write_text(json.dumps({**info, "alignment": "sideways"}))
    with pytest.raises(FaceanimError, match="alignment must be one of"):
        Bundle.open(bad)


def test_default_bundle_is_a_registered_plugin():
    """ToonFace reaches the core only through its entry point: its z-sampler, metrics and domain register."""
    from faceanim.data.z_samplers import get_z_sampler
    from faceanim.evaluation.domains import domain_of
    from faceanim.evaluation.registry import get_metrics
    from faceanim.plugins import load_plugins

    assert "toonface" in load_plugins()
    assert get_z_sampler("toonface").__module__ == "faceanim.toon.latent"
    assert {"toon_truth", "toon_reference"} <= set(get_metrics())
    assert domain_of(Bundle.open("toonface").info).name == "toon"
    assert domain_of(Bundle.open().info).name == "toon" and Bundle.open().info.alignment == "center-crop"
    with pytest.raises(ValueError, match="unknown latent sampler"):
        get_z_sampler("no-such-sampler")


def test_info_usage_shows_bundle_as_optional(capsys):
    assert main(["info", "--help"]) == 0
    assert "info [OPTIONS] [BUNDLE]" in capsys.readouterr().out


def test_train_names_the_config_key_of_a_missing_path(tmp_path, capsys):
    cfg = tiny_config(tmp_path, images=str(tmp_path / "nope"), latents=str(tmp_path / "l.pt"), mode="image")
    assert main(["train", "--config", str(cfg), "--dry-run"]) == 2
    assert "config key `images`" in _err(capsys)


def test_usage_errors_are_one_line(capsys):
    assert main(["animate", "-p", "smiling", "--frames", "1"]) == 2
    assert _err(capsys) == "faceanim: error: --frames: 1 is not in the range 2<=x<=1024."
    assert main(["animate"]) == 2
    assert "Missing option '--prompt'" in _err(capsys)


@pytest.mark.parametrize("grid, ping_pong", [(False, False), (False, True), (True, False), (True, True)])
def test_frames_bar_counts_what_is_rendered(bundle, grid, ping_pong):
    """The frames bar's total is the number of frames the pipeline really renders (a 3-prompt timeline: 46, not 48)."""
    import torch

    from faceanim.pipelines import AnimationPipeline

    job = AnimateJob(prompts=("smiling", "crying", "angry"), grid=grid, ping_pong=ping_pong, bundle=bundle)
    pipe = AnimationPipeline.from_bundle(bundle)
    rendered = []
    call = pipe.batch if grid else pipe
    call(list(job.prompts), num_frames=16, ping_pong=ping_pong, rng=torch.Generator().manual_seed(0),
         progress=rendered.append)
    assert job.frames_to_render(16) == sum(rendered)
    if not grid and not ping_pong:
        assert sum(rendered) == 46

"""diffusers conventions on the pipeline's output (issue 22, point 5): output_type "pt" | "np" | "pil", frames clamped
to the valid range, ``out.save(path)`` through faceanim.outputs, ``pipe.set_progress_bar_config``."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.errors import FaceanimError
from faceanim.pipelines import AnimationPipeline
from tiny_models import tiny_bundle


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return AnimationPipeline.from_pretrained(tiny_bundle(tmp_path_factory.mktemp("conv")))


def test_output_types_agree_and_are_clamped(pipe):
    pt = pipe("smiling", seed=3, num_frames=4)
    raw = pipe.G.synthesis(pt.latents, noise_mode="const")
    assert raw.abs().max() > 1  # the generator's own range is wider
    torch.testing.assert_close(pt.frames, raw.clamp(-1, 1))
    arr = pipe("smiling", seed=3, num_frames=4, output_type="np").frames
    assert isinstance(arr, np.ndarray) and arr.shape == (4, 16, 16, 3) and arr.dtype == np.float32
    assert arr.min() >= 0 and arr.max() <= 1 and arr.min() == 0 and arr.max() == 1
    np.testing.assert_allclose(arr, ((pt.frames + 1) / 2).permute(0, 2, 3, 1).numpy(), atol=1e-6)
    pil = pipe("smiling", seed=3, num_frames=4, output_type="pil").frames
    assert len(pil) == 4 and all(isinstance(im, Image.Image) and im.size == (16, 16) for im in pil)
    assert np.abs(np.asarray(pil[2]).astype(int) - np.round(arr[2] * 255).astype(int)).max() == 0
    grid = pipe.batch(["smiling", "crying"], seed=3, num_frames=3, output_type="pil").frames
    assert len(grid) == 2 and len(grid[0]) == 3
    with pytest.raises(FaceanimError, match="output_type must be one of pt, np, pil"):
        pipe("smiling", seed=3, num_frames=4, output_type="latent")


def test_save_writes_every_output_type_the_same(pipe, tmp_path):
    from faceanim.utils.images import load_image

    outs = {t: pipe("smiling", seed=2, num_frames=3, output_type=t) for t in ("pt", "np", "pil")}
    strips = {}
    for t, out in outs.items():
        path = out.save(tmp_path / f"{t}.png")
        strips[t] = np.asarray(Image.open(path))
    assert np.array_equal(strips["pt"], strips["np"]) and np.array_equal(strips["pt"], strips["pil"])
    video = outs["pt"].save(tmp_path / "x.mp4")
    assert video.stat().st_size > 0
    frames = outs["np"].save(tmp_path / "frames/")
    assert sorted(p.name for p in frames.iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    grid = pipe.batch(["smiling", "crying"], seed=3, num_frames=3).save(tmp_path / "grid.gif", fps=5)
    assert Image.open(grid).n_frames == 3
    assert outs["pt"].fps == pipe.info.fps


def test_progress_bar_config(pipe, capsys):
    pipe.set_progress_bar_config(disable=False, desc="synth", file=None)
    pipe("smiling", seed=1, num_frames=3)
    assert "synth" in capsys.readouterr().err
    pipe.set_progress_bar_config(disable=True)
    pipe("smiling", seed=1, num_frames=3)
    assert capsys.readouterr().err == ""
    calls = []
    pipe("smiling", seed=1, num_frames=3, progress=calls.append)  # a callback replaces the bar
    assert sum(calls) == 3

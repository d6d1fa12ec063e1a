"""`faceanim animate` end to end on a tiny bundle, every output format, and its bad-input errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from faceanim.cli.main import main
from faceanim.outputs import load_latents_file

from tiny_models import tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(tiny_bundle(tmp_path_factory.mktemp("b")))


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


def test_animate_mp4_and_latents_reuse(bundle, tmp_path, capsys):
    out, lat = tmp_path / "smile.mp4", tmp_path / "smile.safetensors"
    assert main(["animate", "--bundle", bundle, "--prompt", "smiling", "--frames", "6", "--fps", "5",
                 "--out", str(out), "--save-latents", str(lat), "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "6 frames" in text and "time: load" in text
    assert out.stat().st_size > 0
    codes = load_latents_file(lat)
    assert codes.shape[0] == 6
    # continue from the saved code with another prompt
    out2 = tmp_path / "next.gif"
    assert main(["animate", "--bundle", bundle, "-p", "crying", "-n", "4", "--latent", str(lat), "-o", str(out2)]) == 0
    with Image.open(out2) as im:
        assert im.n_frames == 4


def test_animate_timeline_grid_png_folder_pingpong(bundle, tmp_path, capsys):
    assert main(["animate", "-b", bundle, "-p", "crying", "-p", "pouting", "-n", "4", "-o", str(tmp_path / "f/")]) == 0
    assert len(list((tmp_path / "f").glob("frame_*.png"))) == 7  # 4 + 3 (the join frame is not repeated)
    assert main(["animate", "-b", bundle, "-p", "smiling", "-p", "angry", "--grid", "-n", "3",
                 "-o", str(tmp_path / "grid.png")]) == 0
    assert main(["animate", "-b", bundle, "-p", "smiling", "-n", "4", "--ping-pong", "-o", str(tmp_path / "loop/")]) == 0
    assert len(list((tmp_path / "loop").glob("frame_*.png"))) == 6


def test_animate_is_deterministic(bundle, tmp_path):
    for name in ("a", "b"):
        assert main(["animate", "-b", bundle, "-p", "smiling", "-n", "3", "-s", "9", "-o", str(tmp_path / f"{name}/")]) == 0
    a = np.asarray(Image.open(tmp_path / "a" / "frame_0002.png"))
    b = np.asarray(Image.open(tmp_path / "b" / "frame_0002.png"))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("args,needle", [
    (["-p", "  "], "empty"),
    (["-p", "word " * 60], "tokens"),
    (["-p", "smiling", "-n", "0"], "--frames"),
    (["-p", "smiling", "-n", "100000"], "--frames"),
    (["-p", "smiling", "--fps", "0"], "--fps"),
    (["-p", "smiling", "-o", "out.avi"], ".mp4"),
    (["-p", "smiling", "-o", "/no/such/dir/x.mp4"], "does not exist"),
])
def test_animate_bad_inputs(bundle, tmp_path, capsys, args, needle):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["animate", "-b", bundle, *args]) == 2
        assert needle in _err(capsys)
        assert not [p for p in tmp_path.iterdir()]  # nothing half-written
    finally:
        os.chdir(cwd)


def test_animate_unknown_bundle_and_bad_image(tmp_path, capsys):
    assert main(["animate", "-b", "nope-bundle", "-p", "smiling", "-o", str(tmp_path / "x.mp4")]) == 2
    assert "unknown bundle" in _err(capsys)
    bad = tmp_path / "face.jpg"
    bad.write_text("not an image")
    assert main(["animate", str(bad), "-p", "smiling", "-o", str(tmp_path / "x.mp4")]) == 2
    assert "not an image" in _err(capsys)
    assert not (tmp_path / "x.mp4").exists()


def test_toon_motion_grid_table_holds_the_animations_last_frames(bundle, tmp_path, capsys):
    """`faceanim toon motion-grid`: faces × prompts; each cell is that face's animation's last frame (computed here
    directly with the pipeline), the first column the face itself; a non-PNG output fails in one line."""
    import torch

    from faceanim.pipelines import AnimationPipeline

    out = tmp_path / "table.png"
    assert main(["toon", "motion-grid", "-b", bundle, "-p", "smiling", "-p", "crying", "--faces", "2",
                 "--seed", "5", "-n", "3", "-o", str(out)]) == 0
    assert "2 faces × 2 prompts" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out).convert("RGB"))
    pipe = AnimationPipeline.from_bundle(bundle)
    video = pipe.batch(["smiling", "crying"], seed=6, num_frames=3).frames  # the last row: seed 5 + 1
    want = [video[0, 0], video[0, -1], video[1, -1]]
    h, w = want[0].shape[1:]
    assert sheet.shape[1] == 2 + 3 * w + 2 * 2 + 2  # border, 3 tiles 2 px apart, border
    y0 = sheet.shape[0] - 2 - h
    for c, frame in enumerate(want):
        x0 = 2 + c * (w + 2)
        expect = ((frame.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.abs(sheet[y0:y0 + h, x0:x0 + w].astype(int) - expect.astype(int)).max() <= 1
    assert not np.array_equal(sheet[y0:y0 + h, 2:2 + w], sheet[y0:y0 + h, 2 + w + 2:2 + 2 * w + 2])  # it moved
    assert main(["toon", "motion-grid", "-b", bundle, "-p", "smiling", "-o", str(tmp_path / "t.mp4")]) == 2
    assert "use .png" in _err(capsys) and not (tmp_path / "t.mp4").exists()
    assert main(["toon", "motion-grid", "-b", bundle, "-p", "smiling", "-o", str(tmp_path / "t.png"),
                 "--video", str(tmp_path / "t.avi")]) == 2
    assert ".avi" in _err(capsys) and not (tmp_path / "t.png").exists()


def test_toon_motion_grid_video_plays_every_cell(bundle, tmp_path, capsys):
    """`motion-grid --video x.gif`: the same faces × prompts table, moving; its last frame shows the PNG table's
    last frames (up to the GIF palette) and its first frame the faces (the tiny bundle barely moves them; the
    layout itself is checked in test_outputs)."""
    out, gif = tmp_path / "table.png", tmp_path / "table.gif"
    assert main(["toon", "motion-grid", "-b", bundle, "-p", "smiling", "-p", "crying", "--faces", "2",
                 "--seed", "5", "-n", "4", "-o", str(out), "--video", str(gif)]) == 0
    assert "the same table, moving" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    im = Image.open(gif)
    assert im.n_frames == 4
    frames = []
    for t in range(4):
        im.seek(t)
        frames.append(np.asarray(im.convert("RGB")).astype(int))
    h = (sheet.shape[1] - 2 - 2 - 2 * 2) // 3  # square tiles: border, three columns, border
    y_png, y_gif = sheet.shape[0] - 2 - h, frames[0].shape[0] - 2 - h  # the last row of each
    for c in range(2):  # prompt c: PNG column c + 1, GIF column c
        png_cell = sheet[y_png:y_png + h, 2 + (c + 1) * (h + 2):2 + (c + 1) * (h + 2) + h]
        last = frames[-1][y_gif:y_gif + h, 2 + c * (h + 2):2 + c * (h + 2) + h]
        first = frames[0][y_gif:y_gif + h, 2 + c * (h + 2):2 + c * (h + 2) + h]
        face = sheet[y_png:y_png + h, 2:2 + h]
        assert np.abs(last - png_cell).mean() < 6 and np.abs(first - face).mean() < 6  # GIF palette error ≈ 4

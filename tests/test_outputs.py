"""Output writers: every format decodes back to what was written; failures leave nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from faceanim.data.latents import LATENTS_FORMAT
import torch
from PIL import Image

from faceanim import outputs
from faceanim.errors import FaceanimError
from faceanim.outputs import (check_output_path, load_latents_file, load_latents_metadata, save_latents,
                              write_animation, write_grid_video, write_video_table)
from faceanim.utils.images import to_uint8

GAP = outputs.GRID_GAP


def pattern(t: int = 6, h: int = 48, w: int = 64) -> torch.Tensor:
    """Float [T, 3, H, W] in [-1, 1]: smooth gradients that move, plus a saturated block (tests colour handling)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    frames = []
    for k in range(t):
        r = torch.sin(3 * xs + 0.5 * k)
        g = ys * 0.9
        b = torch.full_like(xs, -0.8 + 0.3 * k)
        frame = torch.stack([r, g, b])
        frame[:, h // 4:h // 2, w // 4:w // 2] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # pure red
        frames.append(frame)
    return torch.stack(frames).clamp(-1, 1)


def decode_mp4(path: Path) -> tuple[np.ndarray, dict]:
    """Decode with PyAV (its own libav build: an independent check) or else imageio-ffmpeg."""
    try:
        import av
    except ImportError:
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        frames = np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader])
        return frames, {"codec": meta["codec"], "pix_fmt": meta["pix_fmt"].split("(")[0], "fps": meta["fps"]}
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        info = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "fps": float(stream.average_rate)}
        frames = np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)])
    return frames, info


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------------------------ mp4


def test_mp4_round_trip(tmp_path):
    frames = pattern(t=6, h=48, w=64)
    out = write_animation(frames, tmp_path / "a.mp4", fps=12)
    decoded, info = decode_mp4(out)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["fps"] == pytest.approx(12)
    assert decoded.shape == (6, 48, 64, 3)
    err = np.abs(decoded.astype(float) - to_uint8(frames).numpy())
    assert err.mean() < 3 and err[:, 14:22, 18:30].mean() < 6  # whole frame; inside the red block
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # index first (+faststart): browsers play while loading
    assert leftovers(tmp_path) == ["a.mp4"]
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~_umask()


def test_mp4_odd_size_and_upscale(tmp_path):
    frames = pattern(t=3, h=45, w=63)
    decoded, _ = decode_mp4(write_animation(frames, tmp_path / "odd.mp4"))
    assert decoded.shape == (3, 46, 64, 3)  # padded by repeating the last row / column
    src = to_uint8(frames).numpy().astype(float)
    assert np.abs(decoded[:, :45, :63] - src).mean() < 5  # not resampled (odd block edges cost some chroma)
    assert np.abs(decoded[:, :45, 63] - src[:, :, 62]).mean() < 6

    decoded, _ = decode_mp4(write_animation(pattern(t=2, h=32, w=32), tmp_path / "big.mp4", size=96))
    assert decoded.shape == (2, 96, 96, 3)


def test_mp4_interrupt_kills_encoder_and_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "a.mp4").write_bytes(b"old video")
    started = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    fail_after(monkeypatch, 3, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        write_animation(pattern(t=8), tmp_path / "a.mp4")
    assert len(started) == 1 and started[0].poll() is not None
    assert leftovers(tmp_path) == ["a.mp4"] and (tmp_path / "a.mp4").read_bytes() == b"old video"


def test_mp4_encoder_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "MP4_PRESET", "no-such-preset")
    with pytest.raises(FaceanimError, match="ffmpeg could not write") as info:
        write_animation(pattern(t=3), tmp_path / "a.mp4")
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path) == []


def test_mp4_without_libx264_fails_at_check(tmp_path, monkeypatch):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    outputs._ffmpeg.cache_clear()
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: "/bin/true")  # lists no encoders
    try:
        with pytest.raises(FaceanimError, match="no libx264"):
            check_output_path(tmp_path / "a.mp4")
    finally:
        outputs._ffmpeg.cache_clear()


# ------------------------------------------------------------------------------------------------- gif, png, folder


def test_gif_round_trip(tmp_path):
    frames = pattern(t=5)
    out = write_animation(frames, tmp_path / "a.gif", fps=10)
    with Image.open(out) as im:
        assert (im.n_frames, im.size, im.info["loop"]) == (5, (64, 48), 0)
        got, durations = [], []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
            got.append(np.asarray(im.convert("RGB")))
    assert durations == [100] * 5
    # 256 colours, dithered: single pixels err, local means (what the eye sees) stay close
    err = torch.from_numpy(np.stack(got).astype(np.float32) - to_uint8(frames).numpy()).permute(0, 3, 1, 2)
    assert torch.nn.functional.avg_pool2d(err, 4).abs().mean() < 4


def test_gif_timing_keeps_the_average_rate(tmp_path):
    assert outputs._gif_durations(4, 16) == [60, 60, 70, 60]  # 62.5 ms in 10 ms steps: 250 ms in all
    assert sum(outputs._gif_durations(48, 16)) == 3000
    with pytest.raises(FaceanimError, match="GIF cannot play faster"):
        write_animation(pattern(t=2), tmp_path / "a.gif", fps=60)


@pytest.mark.parametrize("name", ["frames/", "frames"])
def test_png_folder_exact(tmp_path, name):
    frames = pattern(t=4)
    out = write_animation(frames, str(tmp_path / name))
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{k:04d}.png" for k in range(4)]
    for k in range(4):
        assert np.array_equal(np.asarray(Image.open(out / f"frame_{k:04d}.png")), to_uint8(frames[k]).numpy())
    assert leftovers(tmp_path) == ["frames"]


def test_png_folder_rewrite_and_uint8_input(tmp_path):
    write_animation(pattern(t=5), tmp_path / "frames")
    frames = torch.randint(0, 256, (2, 7, 9, 3), dtype=torch.uint8)
    write_animation(frames, tmp_path / "frames")  # replaces the earlier run: no stale frame_0002.png…
    assert leftovers(tmp_path / "frames") == ["frame_0000.png", "frame_0001.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "frames" / "frame_0001.png")), frames[1].numpy())
    assert leftovers(tmp_path) == ["frames"]


def test_png_sheet(tmp_path):
    frames = pattern(t=3, h=20, w=30)
    sheet = np.asarray(Image.open(write_animation(frames, tmp_path / "strip.png")))
    assert sheet.shape == (20 + 2 * GAP, 3 * 30 + 4 * GAP, 3)
    x = GAP + 2 * (30 + GAP)
    assert np.array_equal(sheet[GAP:GAP + 20, x:x + 30], to_uint8(frames[2]).numpy())


# ------------------------------------------------------------------------------------------------------------- grid


def test_grid_tiles_and_labels(tmp_path):
    videos = torch.stack([pattern(t=3, h=40, w=40), -pattern(t=3, h=40, w=40)])
    plain = write_grid_video(videos, tmp_path / "plain", fps=10)
    frame = np.asarray(Image.open(plain / "frame_0002.png"))
    assert frame.shape == (40 + 2 * GAP, 2 * 40 + 3 * GAP, 3)
    for n in range(2):
        x = GAP + n * (40 + GAP)
        assert np.array_equal(frame[GAP:GAP + 40, x:x + 40], to_uint8(videos[n, 2]).numpy())

    labelled = write_grid_video(videos, tmp_path / "labelled", fps=10, labels=["smiling", "a very long prompt "
                                                                               "that cannot fit under a tile"])
    frame = np.asarray(Image.open(labelled / "frame_0000.png"))
    assert frame.shape[1] == 2 * 40 + 3 * GAP and frame.shape[0] > 40 + 2 * GAP
    below = frame[GAP + 40:frame.shape[0] - GAP]
    for n in range(2):
        x = GAP + n * (40 + GAP)
        assert (below[:, x:x + 40] < 100).any()  # black text under each tile
    assert np.array_equal(frame[GAP:GAP + 40, GAP:GAP + 40], to_uint8(videos[0, 0]).numpy())

    decoded, _ = decode_mp4(write_grid_video(videos, tmp_path / "grid.mp4", fps=10, labels=["a", "b"], size=64))
    assert decoded.shape[0] == 3 and decoded.shape[2] == 2 * 64 + 3 * GAP and decoded.shape[1] % 2 == 0

    sheet = np.asarray(Image.open(write_grid_video(videos, tmp_path / "grid.png", labels=["a", "b"])))
    assert sheet.shape[1] == 3 * 40 + 4 * GAP and sheet.shape[0] > 2 * 40 + 3 * GAP  # a row per video

    with pytest.raises(ValueError, match="labels"):
        write_grid_video(videos, tmp_path / "x.gif", labels=["one"])


def test_video_table_places_every_cell_at_every_frame(tmp_path):
    """Rows × columns of animations, labels above the columns: each cell of each frame is its own video's frame
    (flat colours, so the GIF palette keeps them exact)."""
    colour = lambda r, c, t: (40 * r + 10, 60 * c + 20, 50 * t + 30)  # noqa: E731
    rows = [torch.stack([torch.tensor(colour(r, c, 0), dtype=torch.uint8).expand(3, 12, 16, 3).clone() for c in range(3)])
            for r in range(2)]
    for r in range(2):
        for c in range(3):
            for t in range(3):
                rows[r][c, t] = torch.tensor(colour(r, c, t), dtype=torch.uint8)
    path = write_video_table(rows, tmp_path / "t.gif", fps=5, column_labels=["a", "b", "c"])
    im = Image.open(path)
    assert im.n_frames == 3
    for t in range(3):
        im.seek(t)
        frame = np.asarray(im.convert("RGB"))
        top = frame.shape[0] - GAP - 2 * 12 - GAP  # the label strip sits above the first row
        assert frame.shape[1] == 3 * 16 + 4 * GAP and top > GAP
        assert (frame[GAP:top - GAP] < 100).any()  # label text
        for r in range(2):
            for c in range(3):
                y, x = top + r * (12 + GAP), GAP + c * (16 + GAP)
                assert (frame[y:y + 12, x:x + 16] == colour(r, c, t)).all()
    with pytest.raises(FaceanimError, match=".png"):
        write_video_table(rows, tmp_path / "t.png")
    with pytest.raises(ValueError, match="same"):
        write_video_table([rows[0], rows[1][:2]], tmp_path / "u.gif")


# ------------------------------------------------------------------------------------------------------- atomicity


def fail_after(monkeypatch, n: int, exc: type[BaseException]) -> None:
    """Make frame preparation raise after ``n`` frames: the failure lands mid-write (frames already sent)."""
    real, calls = outputs._prepare_frame, []

    def prepare(frame, size):
        calls.append(1)
        if len(calls) > n:
            raise exc("simulated failure")
        return real(frame, size)

    monkeypatch.setattr(outputs, "_prepare_frame", prepare)


@pytest.mark.parametrize("name", ["a.mp4", "a.gif", "a.png", "frames/"])
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, name, exc):
    fail_after(monkeypatch, 3, exc)
    with pytest.raises(exc):
        write_animation(pattern(t=6), str(tmp_path / name))
    assert leftovers(tmp_path) == []


def test_failure_keeps_the_previous_output(tmp_path, monkeypatch):
    write_animation(pattern(t=2), tmp_path / "frames")
    before = (tmp_path / "frames" / "frame_0000.png").read_bytes()
    fail_after(monkeypatch, 1, RuntimeError)
    with pytest.raises(RuntimeError):
        write_animation(pattern(t=4), tmp_path / "frames")
    assert leftovers(tmp_path) == ["frames"]
    assert leftovers(tmp_path / "frames") == ["frame_0000.png", "frame_0001.png"]
    assert (tmp_path / "frames" / "frame_0000.png").read_bytes() == before


# ----------------------------------------------------------------------------------------------------------- paths


def test_check_output_path(tmp_path, monkeypatch):
    assert check_output_path(tmp_path / "a.MP4") == ".mp4"
    assert check_output_path(str(tmp_path / "out") + "/") == outputs.FOLDER
    with pytest.raises(FaceanimError, match=r"use \.mp4, \.gif, \.png or a folder/ of PNG frames") as info:
        check_output_path(tmp_path / "a.avi")
    assert "\n" not in str(info.value)
    with pytest.raises(FaceanimError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.gif")
    (tmp_path / "d.gif").mkdir()
    with pytest.raises(FaceanimError, match="existing folder"):
        check_output_path(tmp_path / "d.gif")
    (tmp_path / "f").write_text("x")
    with pytest.raises(FaceanimError, match="not a folder"):
        check_output_path(tmp_path / "f")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FaceanimError, match="holds other files"):
        write_animation(pattern(t=2), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FaceanimError, match="new folder name"):
        check_output_path("./")
    with pytest.raises(FaceanimError, match=r"use \.safetensors"):
        check_output_path("a.mp4", allowed={".safetensors"})
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # root can write anywhere: fake a read-only folder
    with pytest.raises(FaceanimError, match="not writable"):
        check_output_path(tmp_path / "a.gif")


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"float \[T, 3, H, W\]"):
        write_animation(torch.zeros(2, 4, 4, 3), tmp_path / "a.gif")  # float but channels last
    with pytest.raises(ValueError, match="NaN"):
        write_animation(torch.full((2, 3, 4, 4), float("nan")), tmp_path / "a.gif")
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------------------------- latents


def test_latents_round_trip(tmp_path):
    codes = torch.randn(5, 12, 16)
    path = save_latents(codes, tmp_path / "codes.safetensors", {"prompts": "smiling | sad", "bundle": "toonface"})
    assert torch.equal(load_latents_file(path), codes)
    meta = load_latents_metadata(path)
    assert meta["prompts"] == "smiling | sad" and meta["format"] == LATENTS_FORMAT
    assert leftovers(tmp_path) == ["codes.safetensors"]

    torch.save({"w": codes[0]}, tmp_path / "w.pt")
    np.save(tmp_path / "w.npy", codes[0].numpy())
    assert torch.equal(load_latents_file(tmp_path / "w.pt"), codes[0])
    assert torch.equal(load_latents_file(tmp_path / "w.npy"), codes[0])


def test_latents_errors_and_atomicity(tmp_path, monkeypatch):
    with pytest.raises(FaceanimError, match="use .safetensors"):
        save_latents(torch.zeros(1, 2, 3), tmp_path / "codes.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(FaceanimError, match="not a readable"):
        load_latents_file(tmp_path / "junk.safetensors")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FaceanimError, match="not a readable"):
        load_latents_file(tmp_path / "obj.npy")  # no pickles
    with pytest.raises(FaceanimError, match="not found"):
        load_latents_file(tmp_path / "missing.npy")

    import safetensors.torch

    def half_write(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(OSError):
        save_latents(torch.zeros(2, 3, 4), tmp_path / "codes.safetensors")
    assert not [n for n in leftovers(tmp_path) if "codes" in n]  # neither target nor temporary file


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def test_weights_checkpoints_and_latents_get_the_usual_file_mode(tmp_path):
    """safetensors ≥ 0.7 writes files 0600: every file faceanim saves must be readable as a plain open() makes it."""
    from faceanim.models.stylegan2 import Generator, GeneratorConfig
    from faceanim.outputs import save_latents
    from faceanim.training.checkpoint import save_checkpoint

    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8,
                                  mapping_layers=1))
    opt = torch.optim.Adam(G.parameters())
    G(torch.zeros(1, 8)).sum().backward()
    opt.step()
    written = [G.save_pretrained(tmp_path / "gen") / "model.safetensors",
               save_checkpoint(tmp_path / "ck", G, opt, step=1) / "model.safetensors",
               tmp_path / "ck" / "optimizer.safetensors",
               save_latents(torch.zeros(3, G.num_ws, G.w_dim), tmp_path / "codes.safetensors")]
    for path in written:
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask(), path


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_signal_while_the_temporary_is_created_leaves_nothing(tmp_path, monkeypatch, kind):
    """A signal that arrives while atomic_path / atomic_dir creates its temporary waits for the critical section
    and is raised when it ends; the temporary must still be removed (CI once found `.x.gif.*.gif` left behind)."""
    import signal
    import tempfile

    from faceanim.utils import interrupts
    from faceanim.utils.io import atomic_dir, atomic_path

    name = "mkstemp" if kind == "file" else "mkdtemp"
    real = getattr(tempfile, name)

    def create_then_signal(*args, **kwargs):  # SIGTERM just after the temporary exists, as the CI test sends it
        made = real(*args, **kwargs)
        interrupts._handler(signal.SIGTERM, None)
        return made

    monkeypatch.setattr(tempfile, name, create_then_signal)
    opened = []
    with pytest.raises(interrupts.Interrupted):
        with (atomic_path if kind == "file" else atomic_dir)(tmp_path / "x.gif") as tmp:
            opened.append(tmp)
    assert opened == [] and list(tmp_path.iterdir()) == []

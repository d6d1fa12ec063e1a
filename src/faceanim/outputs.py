"""Writing animation results: videos, frame sheets, PNG frame folders and W+ latents — every write atomic.

Where the output goes decides its format:

============================  ==========================================================================
``anim.mp4``                  H.264 (libx264, yuv420p, BT.709-tagged, ``+faststart``): plays in browsers,
                              QuickTime, VLC, phones. Odd sizes are padded by one edge pixel.
``anim.gif``                  looping animated GIF (one palette for all frames, so colours do not flicker)
``anim.png``                  one still image: the frames in a row (a grid: one row per video), for figures
``frames/`` or ``frames``     a folder of ``frame_0000.png``, … (a path ending in ``/`` or without a suffix)
``codes.safetensors``         W+ latents (:func:`save_latents`, :func:`load_latents_file`)
============================  ==========================================================================

Every writer produces its output beside the target under a temporary name and renames it onto the target only
when complete: an error or Ctrl-C mid-write leaves neither a partial target nor a temporary file behind.
Call :func:`check_output_path` before any expensive work so a bad path fails in a second, not after synthesis.

MP4 goes through the ffmpeg binary of ``imageio-ffmpeg`` (a dependency): a static build with libx264 for
every platform, run as a separate process so an encoder crash cannot take the Python process (or a demo server)
with it. Without that package, an ``ffmpeg`` on ``PATH`` (or ``IMAGEIO_FFMPEG_EXE``) is used if it has libx264.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from faceanim.errors import FaceanimError
from faceanim.utils.images import to_uint8
from faceanim.utils.interrupts import critical
from faceanim.data.latents import load_latents_file, load_latents_metadata, save_latents  # noqa: F401 (API)
from faceanim.utils.paths import FOLDER, VIDEO_OUTPUTS, check_output_path, ffmpeg_exe as _ffmpeg, output_kind
from faceanim.utils.io import atomic_dir, atomic_path

__all__ = ["VIDEO_OUTPUTS", "FOLDER", "as_uint8_video", "check_output_path", "load_latents_file",
           "load_latents_metadata", "output_kind", "save_latents", "write_animation", "write_grid_video",
           "write_image_table", "write_video_table"]


MP4_CRF = 18                                  # x264 quality: 18 ≈ visually lossless; files stay ~50 kB/s at 256 px
MP4_PRESET = "medium"                         # x264 speed/size trade-off; encoding is a small share of total time
GIF_MAX_FPS = 50                              # browsers play GIF delays under 20 ms as 100 ms
GRID_GAP = 2                                  # white pixels between and around the tiles of a grid (as make_grid)
FRAME_NAME = "frame_{:04d}.png"
PNG_COMPRESS_LEVEL = 1                        # zlib level: 4-5× faster than PIL's default 6, files ~12% larger



# ----------------------------------------------------------------------------------------------------------------
# Paths


# ----------------------------------------------------------------------------------------------------------------
# Frames


def as_uint8_video(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float ``[T, 3, H, W]`` in [-1, 1] (generator range) or uint8 ``[T, H, W, 3]`` → numpy uint8 ``[T, H, W, 3]``.

    Wrong layouts raise ValueError: they are programming errors, not user input."""
    x = torch.as_tensor(frames)
    if x.ndim == 4 and x.is_floating_point() and x.shape[1] == 3:
        if not bool(torch.isfinite(x).all()):
            raise ValueError("frames contain NaN or infinite values")
        x = to_uint8(x)
    elif not (x.ndim == 4 and x.dtype == torch.uint8 and x.shape[3] == 3):
        raise ValueError(f"frames must be float [T, 3, H, W] in [-1, 1] or uint8 [T, H, W, 3], got "
                         f"{str(x.dtype).removeprefix('torch.')} {list(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"frames are empty: {list(x.shape)}")
    return np.ascontiguousarray(x.cpu().numpy())


def _prepare_frame(frame: np.ndarray, size: int | None) -> np.ndarray:
    """One uint8 ``[H, W, 3]`` frame → its written form: Lanczos-resized so its longer side is ``size``."""
    if size is None or max(frame.shape[:2]) == size:
        return frame
    from PIL import Image

    h, w = frame.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(new, Image.Resampling.LANCZOS))


def _check_size(size: int | None) -> None:
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int or None, got {size!r}")


def _check_fps(fps: float, kind: str) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    if kind == ".gif" and fps > GIF_MAX_FPS:
        raise FaceanimError(f"GIF cannot play faster than {GIF_MAX_FPS} fps (got {fps}); write an .mp4 instead")


# ----------------------------------------------------------------------------------------------------------------
# Public writers


def write_animation(frames: torch.Tensor | np.ndarray, path: str | os.PathLike, fps: float = 10,
                    size: int | None = None) -> Path:
    """Write one animation; the format follows ``path`` (see the module docstring).

    ``frames``: float ``[T, 3, H, W]`` in [-1, 1] or uint8 ``[T, H, W, 3]``. ``size``: resize (Lanczos) so the
    longer side is ``size`` pixels, e.g. 512 for 128 px generator frames. Returns the written path.
    """
    kind = check_output_path(path)
    _check_fps(fps, kind)
    _check_size(size)
    video = as_uint8_video(frames)
    if kind == ".png":
        return _write_sheet([(_prepare_frame(f, size) for f in video)], None, path)
    return _WRITERS[kind]((_prepare_frame(f, size) for f in video), path, fps)


def write_grid_video(videos: torch.Tensor | np.ndarray | Sequence[torch.Tensor], path: str | os.PathLike,
                     fps: float = 10, labels: Sequence[str] | None = None, size: int | None = None) -> Path:
    """Tile several animations side by side into one (e.g. one per prompt, same face), each with an optional label
    underneath; same formats as :func:`write_animation` (``.png``: one row of frames per video, label below it).

    ``videos``: float ``[N, T, 3, H, W]`` in [-1, 1] or uint8 ``[N, T, H, W, 3]`` (or a list of ``[T, …]``).
    ``size`` resizes each tile. Returns the written path.
    """
    kind = check_output_path(path)
    _check_fps(fps, kind)
    _check_size(size)
    if isinstance(videos, (list, tuple)):
        videos = torch.stack([torch.as_tensor(v) for v in videos])
    videos = torch.as_tensor(videos)
    if videos.ndim != 5:
        raise ValueError(f"videos must be [N, T, 3, H, W] or [N, T, H, W, 3], got {list(videos.shape)}")
    clips = [as_uint8_video(v) for v in videos]
    if labels is not None and len(labels) != len(clips):
        raise ValueError(f"{len(labels)} labels for {len(clips)} videos")
    if kind == ".png":
        rows = [(_prepare_frame(f, size) for f in clip) for clip in clips]
        return _write_sheet(rows, labels, path)

    def grid_frames() -> Iterator[np.ndarray]:
        strips = None
        for t in range(clips[0].shape[0]):
            tiles = [_prepare_frame(clip[t], size) for clip in clips]
            if labels:
                strips = strips or _label_strips(labels, tiles[0].shape[1])
                tiles = [np.concatenate([tile, strip]) for tile, strip in zip(tiles, strips)]
            yield _join(tiles, axis=1, gap=GRID_GAP, border=GRID_GAP)

    return _WRITERS[kind](grid_frames(), path, fps)


def write_image_table(rows: Sequence[torch.Tensor], path: str | os.PathLike,
                      column_labels: Sequence[str] | None = None) -> Path:
    """One PNG table: row i shows the images ``rows[i]`` (float ``[C, 3, H, W]`` in [-1, 1] or uint8
    ``[C, H, W, 3]``) left to right, every row the same C columns, with optional labels above the columns (e.g.
    faces × prompts: the source face, then each prompt's last frame). Written atomically; returns the path."""
    check_output_path(path, allowed=(".png",))
    tiles = [as_uint8_video(torch.as_tensor(r)) for r in rows]
    if not tiles or len({t.shape for t in tiles}) != 1:
        raise ValueError(f"rows must be non-empty and all the same shape, got {[list(t.shape) for t in tiles]}")
    if column_labels is not None and len(column_labels) != tiles[0].shape[0]:
        raise ValueError(f"{len(column_labels)} column labels for {tiles[0].shape[0]} columns")
    lines = [list(t) for t in tiles]
    if column_labels:
        lines.insert(0, _label_strips(column_labels, tiles[0].shape[2]))
    return _write_sheet(lines, None, path)


def write_video_table(rows: Sequence[torch.Tensor], path: str | os.PathLike, fps: float = 10,
                      column_labels: Sequence[str] | None = None) -> Path:
    """The moving form of :func:`write_image_table`: row i plays the C animations ``rows[i]`` (float
    ``[C, T, 3, H, W]`` in [-1, 1] or uint8 ``[C, T, H, W, 3]``) side by side, every row the same C columns and T
    frames, with optional labels above the columns (e.g. faces × prompts). ``.mp4`` or ``.gif``; atomic."""
    kind = check_output_path(path, allowed=(".mp4", ".gif"))
    _check_fps(fps, kind)
    clips = [[as_uint8_video(v) for v in torch.as_tensor(r)] for r in rows]
    shapes = {c.shape for row in clips for c in row}
    if not clips or len({len(row) for row in clips}) != 1 or len(shapes) != 1:
        raise ValueError("rows must be non-empty and hold the same number of videos, all the same shape")
    if column_labels is not None and len(column_labels) != len(clips[0]):
        raise ValueError(f"{len(column_labels)} column labels for {len(clips[0])} columns")
    header = (_join(_label_strips(column_labels, clips[0][0].shape[2]), axis=1, gap=GRID_GAP, border=0)
              if column_labels else None)

    def table_frames() -> Iterator[np.ndarray]:
        for t in range(clips[0][0].shape[0]):
            lines = [_join([clip[t] for clip in row], axis=1, gap=GRID_GAP, border=0) for row in clips]
            yield _join([header, *lines] if header is not None else lines, axis=0, gap=GRID_GAP, border=GRID_GAP)

    return _WRITERS[kind](table_frames(), path, fps)


# ----------------------------------------------------------------------------------------------------------------
# Formats: each takes an iterator of uint8 [H, W, 3] frames (consumed inside the atomic block)


def _write_mp4(frames: Iterator[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    exe = _ffmpeg()
    frames = iter(frames)
    first = _pad_even(next(frames))
    h, w = first.shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(rate), "-i", "pipe:0", "-an",
           # Convert with the BT.709 matrix and say so in the stream, so players do not guess the colours.
           "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
                  "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709",
           "-c:v", "libx264", "-preset", MP4_PRESET, "-crf", str(MP4_CRF), "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", "-f", "mp4"]
    with atomic_path(path) as tmp, tempfile.TemporaryFile() as log:
        # Own session / process group: Ctrl-C reaches only Python, which then kills the encoder itself.
        group = {"start_new_session": True} if os.name == "posix" else \
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        proc = None
        try:
            with critical():  # a signal here would orphan an ffmpeg that then writes tmp again after cleanup
                proc = subprocess.Popen([*cmd, str(tmp)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=log, **group)
            try:
                proc.stdin.write(first.tobytes())
                for frame in frames:
                    frame = _pad_even(frame)
                    if frame.shape != first.shape:
                        raise ValueError(f"frame size changed mid-video: {frame.shape} after {first.shape}")
                    proc.stdin.write(frame.tobytes())
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg quit early; its exit code and log say why
            code = proc.wait()
        except BaseException:
            if proc is not None:
                proc.kill()
                proc.wait()
            raise
        finally:
            if proc is not None and proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
        if code != 0:
            log.seek(0)
            lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
            raise FaceanimError(f"ffmpeg could not write {os.fspath(path)}: {lines[-1] if lines else f'exit {code}'}")
    return Path(path)


def _pad_even(frame: np.ndarray) -> np.ndarray:
    # yuv420p stores colour per 2×2 block: width and height must be even. Repeat the last row/column.
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def _write_gif(frames: Iterator[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    from PIL import Image

    with atomic_path(path) as tmp:
        images = [Image.fromarray(f) for f in frames]
        # One palette from a few frames spread over the clip: per-frame palettes make flat areas flicker.
        picks = images[:: max(1, len(images) // 8)][:8]
        sample = Image.new("RGB", (picks[0].width, picks[0].height * len(picks)))
        for i, im in enumerate(picks):
            sample.paste(im, (0, i * im.height))
        palette = sample.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        frames_p = [im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for im in images]
        frames_p[0].save(tmp, format="GIF", save_all=True, append_images=frames_p[1:], loop=0,
                         duration=_gif_durations(len(frames_p), fps))
    return Path(path)


def _gif_durations(n: int, fps: float) -> list[int]:
    """Frame delays in ms. GIF counts in 10 ms steps, so round the running time, not each delay: 16 fps gives
    60, 60, 70, 60, … and 16 frames last exactly 1 s."""
    ticks = [round(k * 100 / fps) for k in range(n + 1)]
    return [10 * max(1, b - a) for a, b in zip(ticks, ticks[1:])]


def _write_png_folder(frames: Iterator[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    from PIL import Image

    target = Path(path)
    with atomic_dir(target) as tmp:
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(tmp / FRAME_NAME.format(i), format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return target


def _write_sheet(rows: Sequence[Iterable[np.ndarray]], labels: Sequence[str] | None, path: str | os.PathLike) -> Path:
    """One PNG: each row holds one video's frames left to right, its label (if any) underneath."""
    from PIL import Image

    with atomic_path(path) as tmp:
        lines = []
        for n, row in enumerate(rows):
            frames = list(row)
            line = _join(frames, axis=1, gap=GRID_GAP, border=0)
            if labels:
                strip = _label_strips([labels[n]], line.shape[1], font_px=_font_px(frames[0].shape[1]), align="left")
                line = np.concatenate([line, strip[0]])
            lines.append(line)
        sheet = _join(lines, axis=0, gap=GRID_GAP, border=GRID_GAP)
        Image.fromarray(sheet).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return Path(path)


_WRITERS = {".mp4": _write_mp4, ".gif": _write_gif, FOLDER: _write_png_folder}


# ----------------------------------------------------------------------------------------------------------------
# Layout


def _join(images: Sequence[np.ndarray], axis: int, gap: int, border: int) -> np.ndarray:
    """Place uint8 ``[H, W, 3]`` images along ``axis`` (0: down, 1: across) on white, ``gap`` apart."""
    other = 1 - axis
    extent = max(im.shape[other] for im in images)
    length = sum(im.shape[axis] for im in images) + gap * (len(images) - 1) + 2 * border
    shape = [0, 0, 3]
    shape[axis], shape[other] = length, extent + 2 * border
    out = np.full(shape, 255, dtype=np.uint8)
    pos = border
    for im in images:
        if axis == 1:
            out[border:border + im.shape[0], pos:pos + im.shape[1]] = im
        else:
            out[pos:pos + im.shape[0], border:border + im.shape[1]] = im
        pos += im.shape[axis] + gap
    return out


def _font_px(tile_w: int) -> int:
    return int(min(28, max(11, round(tile_w / 11))))


def _label_strips(labels: Sequence[str], width: int, font_px: int | None = None,
                  align: str = "center") -> list[np.ndarray]:
    """White uint8 ``[h, width, 3]`` strips, all one height, with black text (two lines at most, then cut with …)."""
    from PIL import Image, ImageDraw, ImageFont

    font_px = font_px or _font_px(width)
    try:
        font = ImageFont.load_default(size=font_px)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    margin = max(2, font_px // 4)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def fits(text: str) -> bool:
        return draw.textlength(text, font=font) <= width - 2 * margin

    wrapped = [_wrap(str(text), fits, max_lines=2) for text in labels]
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    height = 2 * margin + line_h * max(len(lines) for lines in wrapped)
    strips = []
    for lines in wrapped:
        im = Image.new("RGB", (width, height), (255, 255, 255))
        pen = ImageDraw.Draw(im)
        for i, line in enumerate(lines):
            x = margin if align == "left" else (width - pen.textlength(line, font=font)) / 2
            pen.text((x, margin + i * line_h), line, fill=(0, 0, 0), font=font)
        strips.append(np.asarray(im))
    return strips


def _wrap(text: str, fits, max_lines: int) -> list[str]:
    words, lines = text.split(), []
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and fits(f"{line} {words[0]}"):
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words:
        lines[-1] = f"{lines[-1]} {' '.join(words)}"
    if lines and not fits(lines[-1]):
        cut = lines[-1]
        while cut and not fits(cut + "…"):
            cut = cut[:-1]
        lines[-1] = cut.rstrip() + "…"
    return lines or [""]


# ----------------------------------------------------------------------------------------------------------------
# ffmpeg

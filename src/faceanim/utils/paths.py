"""Where outputs go: which format a path asks for, and whether it can receive it — checked before any model loads
(this module imports neither torch nor numpy)."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Iterable

from faceanim.errors import FaceanimError

FOLDER = "/"                                  # the output kind of a folder of PNG frames
VIDEO_OUTPUTS = (".mp4", ".gif", ".png", FOLDER)
_KIND_NAMES = {".mp4": ".mp4", ".gif": ".gif", ".png": ".png", FOLDER: "a folder/ of PNG frames",
               ".safetensors": ".safetensors"}


def output_kind(path: str | os.PathLike) -> str:
    """The format a path asks for: its lower-case suffix, or ``FOLDER`` for a path ending in ``/`` or without one."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or not Path(text).suffix:
        return FOLDER
    return Path(text).suffix.lower()


def check_output_path(path: str | os.PathLike, allowed: Iterable[str] | None = None) -> str:
    """Check that ``path`` can receive an output, before any expensive work; returns its kind (see :func:`output_kind`).

    ``allowed`` are the accepted kinds (default: ``VIDEO_OUTPUTS``). Raises a one-line :class:`FaceanimError` for an
    unsupported suffix, a missing or unwritable parent folder, a folder where a file should go (or the reverse), a
    frame folder that already holds other files, and an ``.mp4`` without a usable ffmpeg.
    """
    allowed = tuple(VIDEO_OUTPUTS if allowed is None else allowed)
    kind = output_kind(path)
    if kind not in allowed:
        names = [_KIND_NAMES.get(k, k) for k in allowed]
        listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
        raise FaceanimError(f"unsupported output {os.fspath(path)!r}: use {listed}")
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        raise FaceanimError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FaceanimError(f"output folder is not writable: {parent}")
    if kind == FOLDER:
        _check_frame_folder(target)
    elif target.is_dir():
        raise FaceanimError(f"output {target} is an existing folder, not a file")
    if kind == ".mp4":
        ffmpeg_exe()
    return kind


def _check_frame_folder(target: Path) -> None:
    # The whole folder is replaced on success, so it must hold nothing but frames of an earlier run.
    if target.name in ("", ".", "..") or _contains(target, Path.cwd()):
        raise FaceanimError(f"give a new folder name for the frames, not {os.fspath(target)!r}")
    if target.exists():
        if not target.is_dir():
            raise FaceanimError(f"output {target} exists and is not a folder")
        others = [p.name for p in target.iterdir() if not (p.name.startswith("frame_") and p.suffix == ".png")]
        if others:
            raise FaceanimError(f"output folder {target} already holds other files ({others[0]}, …); "
                                "choose a new or empty folder")


def _contains(folder: Path, inner: Path) -> bool:
    try:
        inner.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of an ffmpeg with libx264 (checked once per process); one-line FaceanimError otherwise."""
    import shutil

    try:
        import imageio_ffmpeg
    except ImportError:
        exe = os.environ.get("IMAGEIO_FFMPEG_EXE") or shutil.which("ffmpeg")
        if exe is None:
            raise FaceanimError("writing .mp4 needs ffmpeg: pip install imageio-ffmpeg (or write a .gif)") from None
    else:
        try:
            exe = imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError as exc:
            raise FaceanimError(f"no ffmpeg binary found ({exc}); reinstall imageio-ffmpeg") from None
    try:
        listing = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FaceanimError(f"cannot run ffmpeg at {exe} ({exc})") from None
    if " libx264 " not in listing.stdout:
        raise FaceanimError(f"ffmpeg at {exe} has no libx264 encoder; pip install imageio-ffmpeg for one that has")
    return exe

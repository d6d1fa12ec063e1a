"""What :class:`~faceanim.pipelines.animation.AnimationPipeline` returns, in diffusers' conventions: frames as
``output_type`` asks ("pt", "np" or "pil"), clamped to the valid range, and ``out.save(path)`` through
:mod:`faceanim.outputs`' writers (MP4, GIF, PNG strip or a folder of PNG frames)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from faceanim.errors import FaceanimError

OUTPUT_TYPES = ("pt", "np", "pil")


@dataclass
class AnimationOutput:
    frames: Any                   # by output_type — "pt": float tensor [T, 3, H, W] in [-1, 1] (batch(): [N, T, …]);
                                  # "np": float32 array [T, H, W, 3] in [0, 1] (batch(): [N, T, …]);
                                  # "pil": list of T PIL images (batch(): a list of N such lists)
    latents: torch.Tensor         # W+ per frame, [T, num_ws, w_dim]  (batch(): [N, T, num_ws, w_dim])
    prompts: list[str]            # the prompts, as given
    segment_starts: list[int] = field(default_factory=list)  # first frame of each prompt of a timeline
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "motion", "synthesis"
    fps: int = 10                 # frames per second save() writes by default (the bundle's)

    def save(self, path: str | os.PathLike, fps: float | None = None, size: int | None = None,
             labels: Sequence[str] | None = None) -> Path:
        """Write the frames: ``.mp4``, ``.gif``, ``.png`` (a strip) or a ``folder/`` of PNG frames, atomically.
        A batch() output becomes one grid video, labelled with its prompts (``labels`` to change them).
        ``size``: scale frames so that the long side is ``size`` px. Returns the written path."""
        from faceanim.outputs import write_animation, write_grid_video

        video = as_uint8(self.frames)
        fps = self.fps if fps is None else fps
        if video.ndim == 5:
            return write_grid_video(video, path, fps=fps, labels=list(self.prompts) if labels is None else labels,
                                    size=size)
        return write_animation(video, path, fps=fps, size=size)


def check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise FaceanimError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")


def convert_frames(frames: torch.Tensor, output_type: str) -> Any:
    """Generator frames ``[..., 3, H, W]`` (any range) → clamped frames of ``output_type`` (see AnimationOutput)."""
    check_output_type(output_type)
    x = frames.detach().float().clamp_(-1, 1)
    if output_type == "pt":
        return x
    arr = ((x + 1) / 2).movedim(-3, -1).cpu().numpy()  # [..., H, W, 3] in [0, 1]
    if output_type == "np":
        return arr
    from PIL import Image

    as_u8 = np.round(arr * 255).astype(np.uint8)
    if as_u8.ndim == 4:
        return [Image.fromarray(f) for f in as_u8]
    return [[Image.fromarray(f) for f in clip] for clip in as_u8]


def as_uint8(frames: Any) -> np.ndarray:
    """Frames of any output_type → uint8 ``[(N,) T, H, W, 3]`` for the writers."""
    if isinstance(frames, torch.Tensor):
        return np.round(((frames.detach().float().clamp(-1, 1) + 1) * 127.5).movedim(-3, -1).cpu().numpy()
                        ).astype(np.uint8)
    if isinstance(frames, np.ndarray):
        if frames.dtype == np.uint8:
            return frames
        return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    if isinstance(frames, (list, tuple)) and frames:
        if isinstance(frames[0], (list, tuple)):
            return np.stack([as_uint8(list(clip)) for clip in frames])
        return np.stack([np.asarray(im.convert("RGB")) for im in frames])
    raise ValueError(f"cannot write frames of type {type(frames).__name__}")


def progress_bar(total: int, config: dict[str, Any]):
    """A tqdm bar over synthesized frames; ``config``: what ``set_progress_bar_config`` received (tqdm keywords).
    Shown on interactive terminals unless ``disable`` says otherwise."""
    from tqdm.auto import tqdm

    kwargs = {"desc": "frames", "unit": "frame", "leave": False, "disable": None, **config}
    return tqdm(total=total, **kwargs)

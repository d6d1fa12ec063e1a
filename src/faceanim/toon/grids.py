"""Picture tables: random renders (``faceanim toon render``) and a faces × prompts table of a latent-mode bundle
(``faceanim toon motion-grid``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from faceanim.errors import FaceanimError


def render_grid(out: str | os.PathLike, faces: int = 16, seed: int = 0, size: int = 128, columns: int = 8) -> Path:
    """Render ``faces`` random faces of the training distribution (``recipes.training_params``, seed ``seed``) into
    a PNG grid ``columns`` wide (empty cells white)."""
    from faceanim.outputs import check_output_path
    from faceanim.toon.recipes import training_params
    from faceanim.toon.renderer import render
    from faceanim.utils.images import save_grid

    if faces < 1:
        raise FaceanimError(f"faces must be at least 1, got {faces}")
    check_output_path(out, allowed=(".png",))
    imgs = render(training_params(faces, torch.Generator().manual_seed(seed)), size=size)
    cols = min(faces, columns)
    rows = (faces + cols - 1) // cols
    pad = rows * cols - faces
    if pad:
        imgs = torch.cat([imgs, torch.ones(pad, *imgs.shape[1:])])
    save_grid(imgs.reshape(rows, cols, *imgs.shape[1:]), out)
    return Path(out)


@dataclass
class MotionGridResult:
    path: Path
    faces: int
    prompts: list[str]
    frames: int
    video: Path | None = None


def motion_grid(out: str | os.PathLike, bundle: str | None = None, prompts: list[str] | None = None, faces: int = 6,
                seed: int = 0, frames: int | None = None, device: str | torch.device = "cpu",
                progress: bool = True, video: str | os.PathLike | None = None) -> MotionGridResult:
    """A faces × prompts table of a latent-mode bundle: row i is the face of seed ``seed + i``, its first column
    that face, then the last frame of its animation for each prompt (as ``faceanim animate --seed S -p PROMPT``).
    Prompts default to the bundle's example prompts, ``frames`` to its frame count. ``video`` (``.mp4`` or
    ``.gif``): also the moving table, every cell its whole animation, at the bundle's frame rate."""
    from faceanim.bundles import Bundle
    from faceanim.outputs import as_uint8_video, check_output_path, write_image_table, write_video_table
    from faceanim.pipelines import AnimationPipeline

    check_output_path(out, allowed=(".png",))
    if video is not None:
        check_output_path(video, allowed=(".mp4", ".gif"))
    bundle = Bundle.open(bundle)
    info = bundle.info
    if info.mode != "latent":
        raise FaceanimError(f"bundle {info.name} animates photos; motion-grid draws faces from its generator")
    prompts = list(prompts or ()) or list(info.example_prompts)
    if not prompts:
        raise FaceanimError("give prompts with -p (the bundle lists no example prompts)")
    pipe = AnimationPipeline.from_bundle(bundle, device=device)
    n = frames or info.num_frames
    rows, clips = [], []  # per face: the shared first frame, then each prompt's last frame; the whole animations
    seeds = range(seed, seed + faces)
    if progress:
        from tqdm.auto import tqdm

        seeds = tqdm(seeds, desc="faces", unit="face", leave=False)
    for s in seeds:
        anims = pipe.batch(prompts, seed=s, num_frames=n).frames.cpu()  # [P, T, 3, H, W]
        rows.append(torch.cat([anims[:1, 0], anims[:, -1]]))
        if video is not None:
            clips.append(torch.stack([torch.from_numpy(as_uint8_video(a)) for a in anims]))
    path = write_image_table(rows, out, column_labels=["face", *prompts])
    moving = write_video_table(clips, video, fps=info.fps, column_labels=prompts) if video is not None else None
    return MotionGridResult(Path(path), faces, prompts, n, moving)

"""Image tensors ↔ files."""

from __future__ import annotations

import os

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` in [-1, 1] → uint8 ``[..., H, W, 3]`` (clamped, rounded)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu()


def make_grid(frames: torch.Tensor, pad: int = 2) -> torch.Tensor:
    """``[rows, cols, 3, H, W]`` → one image ``[3, rows·(H+pad), cols·(W+pad)]`` in [-1, 1]."""
    rows, cols, c, h, w = frames.shape
    grid = frames.new_full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), 1.0)
    for r in range(rows):
        for k in range(cols):
            y, x = pad + r * (h + pad), pad + k * (w + pad)
            grid[:, y:y + h, x:x + w] = frames[r, k]
    return grid


def save_grid(frames: torch.Tensor, path: str | os.PathLike) -> torch.Tensor:
    """Write a frame grid PNG atomically; returns the grid as uint8 ``[3, H, W]`` (for TensorBoard)."""
    from PIL import Image

    from faceanim.utils.io import atomic_path

    grid = make_grid(frames.detach().cpu().float())
    arr = to_uint8(grid)
    with atomic_path(path) as tmp:
        Image.fromarray(arr.numpy()).save(tmp, format="PNG")
    return arr.permute(2, 0, 1)

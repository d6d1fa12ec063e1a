"""W+ codes in files, and the sources of w_s: real images with their inverted W+ codes (e.g. e4e on CelebA-HQ), or
codes sampled through the generator's mapping network (generator-only domains).

The one home of latent files: :func:`save_latents` / :func:`load_latents_file` (a video's or a face's codes, as
``faceanim animate --save-latents`` / ``--latent`` use them) and :func:`load_latents` (a training set's codes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from faceanim.errors import FaceanimError

LATENTS_SUFFIX = ".safetensors"
LATENTS_KEY = "latents"                       # tensor name inside a latents file
LATENTS_FORMAT = "faceanim.latents"           # value of the ``format`` metadata entry
LATENTS_BY_NAME_FORMAT = "faceanim.latents-by-name"  # … of a training set's codes: image stem → [num_ws, w_dim]
LATENT_INPUTS = (LATENTS_SUFFIX, ".pt", ".npy")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def save_latents(latents: torch.Tensor, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write W+ codes — ``[T, num_ws, w_dim]`` per frame (a grid: ``[N, T, num_ws, w_dim]``; one code:
    ``[num_ws, w_dim]``) — as float32 safetensors under ``latents``, with string ``metadata`` (prompts, bundle…).
    """
    from faceanim.utils.io import atomic_path, save_safetensors
    from faceanim.utils.paths import check_output_path

    check_output_path(path, allowed=(LATENTS_SUFFIX,))
    x = torch.as_tensor(latents).detach().to("cpu", torch.float32).contiguous()
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"latents must be [T, num_ws, w_dim] (or [N, T, …] / [num_ws, w_dim]), got {list(x.shape)}")
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["format"] = LATENTS_FORMAT
    with atomic_path(path) as tmp:
        save_safetensors({LATENTS_KEY: x}, tmp, metadata=meta)
    return Path(path)


def save_latents_by_name(codes: Mapping[str, torch.Tensor], path: str | os.PathLike,
                         metadata: Mapping[str, str] | None = None) -> Path:
    """Write a training set's codes as image name (stem) → W+ ``[num_ws, w_dim]``, float32 safetensors (what
    ``faceanim invert DIR`` writes and :func:`load_latents` / :class:`ImageLatentDataset` read), atomically."""
    from faceanim.utils.io import atomic_path, save_safetensors
    from faceanim.utils.paths import check_output_path

    check_output_path(path, allowed=(LATENTS_SUFFIX,))
    tensors = {str(k): torch.as_tensor(v).detach().to("cpu", torch.float32).contiguous() for k, v in codes.items()}
    if not tensors or any(v.ndim != 2 for v in tensors.values()):
        raise ValueError("codes must be a non-empty mapping name → [num_ws, w_dim]")
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["format"] = LATENTS_BY_NAME_FORMAT
    with atomic_path(path) as tmp:
        save_safetensors(tensors, tmp, metadata=meta)
    return Path(path)


def load_latents_file(path: str | os.PathLike) -> torch.Tensor:
    """Read W or W+ codes as float32: a ``.safetensors`` from :func:`save_latents` (or holding one tensor), a
    ``.pt`` (loaded with ``weights_only=True``: a tensor, or a dict with ``latents``/``latent``/``w``/``ws``), or a
    ``.npy`` (no pickles). Any unreadable file raises a one-line FaceanimError; the shape is checked by its user."""
    from faceanim.utils.io import read_tensor_file

    path = Path(path)
    if path.suffix.lower() not in LATENT_INPUTS:
        raise FaceanimError(f"unsupported latent file {os.fspath(path)!r}: use {', '.join(LATENT_INPUTS)}")
    found = read_tensor_file(path, "latent")
    x = _pick_tensor(found, path)
    if not x.is_floating_point() or x.ndim not in (1, 2, 3, 4):
        raise FaceanimError(f"{path} holds {str(x.dtype).removeprefix('torch.')} {list(x.shape)}, not W/W+ codes")
    if not bool(torch.isfinite(x).all()):
        raise FaceanimError(f"{path} holds NaN or infinite values")
    return x.to(torch.float32)


def load_latents_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata written by :func:`save_latents` (empty for files from elsewhere)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise FaceanimError(f"{path} is not a readable safetensors file ({exc})") from None


def _pick_tensor(found: object, path: Path) -> torch.Tensor:
    if isinstance(found, torch.Tensor):
        return found
    if isinstance(found, dict):
        for key in (LATENTS_KEY, "latent", "w", "ws"):
            if isinstance(found.get(key), torch.Tensor):
                return found[key]
        tensors = [v for v in found.values() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return tensors[0]
        raise FaceanimError(f"{path} holds {sorted(map(str, found))}; expected one tensor or a '{LATENTS_KEY}' entry")
    raise FaceanimError(f"{path} holds a {type(found).__name__}, not a tensor")


def load_latents(path: str | os.PathLike) -> dict[str, torch.Tensor] | torch.Tensor:
    """Read inverted codes: a tensor ``[N, num_ws, w_dim]`` (images matched in sorted-name order) or a mapping
    image name → ``[num_ws, w_dim]``. Accepts ``.safetensors``, ``.pt`` (read with weights_only) and ``.npy``/``.npz``."""
    from faceanim.utils.io import read_tensor_file

    data = read_tensor_file(path, "latents")
    if isinstance(data, dict) and isinstance(data.get(LATENTS_KEY), torch.Tensor) and len(data) == 1:
        data = data[LATENTS_KEY]
    if isinstance(data, torch.Tensor):
        data = data.float()
    if not isinstance(data, (dict, torch.Tensor)):
        raise FaceanimError(f"{path}: expected a tensor [N, num_ws, w_dim] or a dict name → tensor")
    return data


class ImageLatentDataset(torch.utils.data.Dataset):
    """Aligned face images with their inverted codes; item: ``{"image": [3, R, R] in [-1, 1], "w_inv": [num_ws, w_dim], "name"}``."""

    def __init__(self, image_dir: str | os.PathLike, latents: str | os.PathLike, image_size: int,
                 num_ws: int | None = None, w_dim: int | None = None):
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise FaceanimError(f"image folder not found: {image_dir}")
        files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise FaceanimError(f"no images ({', '.join(IMAGE_EXTS)}) in {image_dir}")
        codes = load_latents(latents)
        if isinstance(codes, torch.Tensor):
            if codes.shape[0] != len(files):
                raise FaceanimError(f"{latents} holds {codes.shape[0]} codes for {len(files)} images in {image_dir}")
            pairs = list(zip(files, codes))
        else:
            by_name = {k: v for k, v in codes.items()}
            pairs = []
            for f in files:
                key = f.name if f.name in by_name else f.stem
                if key in by_name:
                    pairs.append((f, by_name[key]))
            if not pairs:
                raise FaceanimError(f"no image in {image_dir} has a code in {latents} (keys are file names or stems)")
        shape = tuple(pairs[0][1].shape)
        if len(shape) != 2 or (num_ws and shape[0] != num_ws) or (w_dim and shape[1] != w_dim):
            raise FaceanimError(f"codes in {latents} have shape {list(shape)}, the generator needs [{num_ws}, {w_dim}]")
        self.items = pairs
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict:
        from PIL import Image

        path, code = self.items[idx]
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (self.image_size, self.image_size):
                im = im.resize((self.image_size, self.image_size), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.float32)
        image = torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0
        return {"image": image, "w_inv": code.float(), "name": path.name}


class SampledLatents:
    """w_s = truncate(mapping(z)) with z drawn from a seed per item: item ``i`` is always the same face.

    ``z_sampler`` names how z is drawn (:mod:`faceanim.data.z_samplers`): "gaussian" for StyleGAN2 checkpoints.
    """

    def __init__(self, generator, num_items: int = 100_000, truncation_psi: float = 0.7, seed: int = 0,
                 z_sampler: str = "gaussian"):
        from faceanim.data.z_samplers import get_z_sampler

        self.G, self.num_items, self.psi, self.seed = generator, num_items, truncation_psi, seed
        self.sample_z = get_z_sampler(z_sampler)

    def __len__(self) -> int:
        return self.num_items

    def z(self, indices: list[int]) -> torch.Tensor:
        """The generator inputs ``[len(indices), z_dim]`` of these items (on the CPU)."""
        return torch.cat([self.sample_z(1, self.G.z_dim, torch.Generator().manual_seed(self.seed * 7_919 + i))
                          for i in indices])

    @torch.no_grad()
    def codes(self, indices: list[int]) -> torch.Tensor:
        """W+ codes ``[len(indices), num_ws, w_dim]`` on the generator's device."""
        return self.codes_of(self.z(indices))

    @torch.no_grad()
    def codes_of(self, z: torch.Tensor) -> torch.Tensor:
        """W+ codes ``[n, num_ws, w_dim]`` of generator inputs ``z`` ``[n, z_dim]``, truncated as the items' are
        (e.g. a target face's, :mod:`faceanim.data.targets`), on the generator's device."""
        device = self.G.w_avg.device
        z = z.to(device)
        c = torch.zeros(z.shape[0], self.G.c_dim, device=device) if self.G.c_dim else None
        return self.G.to_wplus(self.G.truncate(self.G.mapping(z, c), self.psi)).contiguous()

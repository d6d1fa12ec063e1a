"""Sources of w_s: real images with their inverted W+ codes (e.g. e4e on CelebA-HQ), or codes sampled
through the generator's mapping network (generator-only domains)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from faceanim.errors import FaceanimError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def load_latents(path: str | os.PathLike) -> dict[str, torch.Tensor] | torch.Tensor:
    """Read inverted codes: a tensor ``[N, num_ws, w_dim]`` (images matched in sorted-name order) or a mapping
    image name → ``[num_ws, w_dim]``. Accepts ``.safetensors``, ``.pt`` (read with weights_only) and ``.npy``/``.npz``."""
    from faceanim.utils.io import read_tensor_file

    data = read_tensor_file(path, "latents")
    if isinstance(data, dict) and isinstance(data.get("latents"), torch.Tensor) and len(data) == 1:
        data = data["latents"]
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

    ``z_sampler`` names how z is drawn (:mod:`faceanim.latent_samplers`): "gaussian" for StyleGAN2 checkpoints.
    """

    def __init__(self, generator, num_items: int = 100_000, truncation_psi: float = 0.7, seed: int = 0,
                 z_sampler: str = "gaussian"):
        from faceanim.latent_samplers import get_z_sampler

        self.G, self.num_items, self.psi, self.seed = generator, num_items, truncation_psi, seed
        self.sample_z = get_z_sampler(z_sampler)

    def __len__(self) -> int:
        return self.num_items

    @torch.no_grad()
    def codes(self, indices: list[int]) -> torch.Tensor:
        """W+ codes ``[len(indices), num_ws, w_dim]`` on the generator's device."""
        device = self.G.w_avg.device
        z = torch.cat([self.sample_z(1, self.G.z_dim, torch.Generator().manual_seed(self.seed * 7_919 + i))
                       for i in indices]).to(device)
        c = torch.zeros(len(indices), self.G.c_dim, device=device) if self.G.c_dim else None
        return self.G.to_wplus(self.G.truncate(self.G.mapping(z, c), self.psi)).contiguous()

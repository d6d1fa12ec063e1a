"""Image tensors ↔ files."""

from __future__ import annotations

import os

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` in [-1, 1] → uint8 ``[..., H, W, 3]`` (clamped, rounded)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu()


def save_grid(frames: torch.Tensor, path: str | os.PathLike) -> torch.Tensor:
    """Write a frame grid ``[rows, cols, 3, H, W]`` in [-1, 1] as a PNG atomically (white 2-px gaps, torchvision's
    ``make_grid``); returns the grid as uint8 ``[3, H, W]`` (for TensorBoard)."""
    from PIL import Image
    from torchvision.utils import make_grid

    from faceanim.utils.io import atomic_path

    rows, cols = frames.shape[:2]
    grid = make_grid(frames.detach().cpu().float().reshape(rows * cols, *frames.shape[2:]), nrow=cols, padding=2,
                     pad_value=1.0)
    arr = to_uint8(grid)
    with atomic_path(path) as tmp:
        Image.fromarray(arr.numpy()).save(tmp, format="PNG")
    return arr.permute(2, 0, 1)


def gaussian_blur(images: torch.Tensor, sigma: float | torch.Tensor, radius: int | None = None) -> torch.Tensor:
    """Gaussian blur with one σ (px) per image: ``[B, C, H, W]``, σ a float or ``[B]`` → ``[B, C, H, W]``.

    The kernel is ``exp(-x² / 2σ²)`` on the integers ``-radius … radius`` (default ``⌈3·max σ⌉``, at least 1),
    normalized to sum 1, applied as one 2-D convolution with reflected borders — torchvision's
    ``gaussian_blur(img, kernel_size=2·radius+1, sigma=σ)`` for every image at once, in pure torch. σ = 0 leaves
    an image unchanged (σ is clamped to 1e-3, whose kernel is a unit impulse)."""
    import math

    import torch.nn.functional as F

    b, c, h, w = images.shape
    sigma = torch.as_tensor(sigma, dtype=images.dtype).expand(b)
    r = max(1, math.ceil(3 * float(sigma.max()))) if radius is None else int(radius)
    x = torch.linspace(-r, r, 2 * r + 1, dtype=images.dtype, device=images.device)
    pdf = torch.exp(-0.5 * (x / sigma.to(images.device).clamp_min(1e-3)[:, None]).pow(2))
    k1 = pdf / pdf.sum(1, keepdim=True)                         # [B, 2r+1]
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, 0)  # [B·C, 2r+1, 2r+1]
    y = F.pad(images.reshape(1, b * c, h, w), (r, r, r, r), mode="reflect")
    return F.conv2d(y, k2[:, None], groups=b * c).reshape(b, c, h, w)


MAX_IMAGE_PIXELS = 64_000_000  # refuse larger inputs (decompression bombs); 8k × 8k


def load_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS):
    """Open an image file as RGB PIL image: EXIF orientation applied; grayscale, palette, alpha (composited on
    white), CMYK and 16-bit inputs converted. Unreadable or oversized files raise a one-line FaceanimError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from faceanim.errors import FaceanimError

    if not os.path.isfile(path):
        raise FaceanimError(f"image not found: {path}")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(path) as im:
            if im.width * im.height > max_pixels:
                raise FaceanimError(f"{path}: {im.width}x{im.height} is larger than the limit of {max_pixels:,} pixels")
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                import numpy as np

                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray((arr / max(arr.max(), 1) * 255).round().astype("uint8"))
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            return im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FaceanimError(f"{path}: image is larger than the limit of {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise FaceanimError(f"{path} is not an image file PIL can read") from None
    except OSError as exc:
        raise FaceanimError(f"{path}: unreadable or truncated image ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def image_to_tensor(image, size: int | None = None) -> torch.Tensor:
    """A face image → ``[1, 3, S, S]`` float in [-1, 1].

    ``image``: a PIL image, an image file path (read with :func:`load_image`), a uint8 array ``[H, W, 3]``, or a
    float tensor ``[3, H, W]`` / ``[1, 3, H, W]`` already in [-1, 1]. Non-square images are center-cropped to a
    square; ``size`` resizes (antialiased bilinear) to ``size × size``.
    """
    import numpy as np
    import torch.nn.functional as F

    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, torch.Tensor):
        x = image.detach().float()
        if x.ndim == 3:
            x = x.unsqueeze(0)
    else:
        arr = np.array(image.convert("RGB") if hasattr(image, "convert") else image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"expected an RGB image, got an array {arr.dtype} {list(arr.shape)}")
        x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 127.5 - 1
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"expected one RGB image [1, 3, H, W], got {list(x.shape)}")
    h, w = x.shape[-2:]
    if h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = x[..., top:top + side, left:left + side]
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x

"""A photo → a face crop ready for inversion: FFHQ alignment (dlib) or, for images that already are aligned crops
(``no_align``; ToonFace renders), the centered square; and the geometry to paste frames back.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faceanim.errors import FaceanimError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from faceanim.align.ffhq import AlignedFace

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp")
FFHQ_SIZE = 1024            # default crop side of `faceanim align` without --bundle (the FFHQ layout)
MIN_INVERSION_SIZE = 256    # faces are aligned at least this large for inversion (e4e reads 256×256)


@dataclass
class PreparedFace:
    """A face ready for inversion, and where it came from."""

    image: "Image.Image"           # square crop: FFHQ-aligned, or the center square with --no-align
    photo: "Image.Image"           # the original image (RGB)
    quad: "np.ndarray"             # [4, 2] source pixels of the crop's TL, BL, BR, TR corners (for paste-back)
    aligned: "AlignedFace | None"  # detection and landmarks; None without alignment

    def paste_back(self, frames, feather: float = 0.1) -> list["Image.Image"]:
        """Composite aligned frames (uint8 ``[T, H, W, 3]`` or PIL images) into the original photo."""
        from faceanim.align.ffhq import paste_back

        return paste_back(self.photo, frames, self.quad, feather=feather)


# -- shared steps ------------------------------------------------------------------------------------------------------
def check_image_output(path: str | None, option: str) -> None:
    """Fail before any work if ``path`` cannot receive an image."""
    if path is None:
        return
    from faceanim.outputs import check_output_path

    if Path(path).suffix.lower() not in IMAGE_OUTPUTS:
        raise FaceanimError(f"{option} {path!r}: use {', '.join(IMAGE_OUTPUTS)}")
    check_output_path(path, allowed=(Path(path).suffix.lower(),))


def save_image(image: "Image.Image", path: str) -> None:
    from faceanim.utils.io import atomic_path

    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[Path(path).suffix.lower()]
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **({"quality": 95} if fmt != "PNG" else {}))


def require_alignment() -> None:
    """dlib and the landmark model, or one line saying how to get them."""
    hint = 'pip install "faceanim[align]" (or pass --no-align if the image already is an aligned face crop)'
    try:
        import dlib  # noqa: F401
    except ImportError:
        raise FaceanimError(f"face alignment needs dlib: {hint}") from None
    from faceanim.align.ffhq import default_landmarks_path

    if default_landmarks_path() is None:
        raise FaceanimError(f"face alignment needs the dlib 68-point landmark model: {hint}")


def align_photo(photo: "Image.Image", name: str, size: int, face_index: int = 0,
                ) -> "AlignedFace":
    """Detect faces (largest first) and FFHQ-align number ``face_index`` to ``size``²; one-line errors."""
    from faceanim.align.ffhq import FaceAligner

    require_alignment()
    aligner = FaceAligner()
    faces = aligner.detect(photo)
    if not faces:
        raise FaceanimError(f"no face found in {name} (the detector needs a real, roughly frontal face; for an "
                            "already aligned crop pass --no-align)")
    if not 0 <= face_index < len(faces):
        n = len(faces)
        raise FaceanimError(f"--face-index {face_index} is out of range: {n} face{'s' if n != 1 else ''} found in "
                            f"{name} (valid: 0..{n - 1}, largest first)")
    return aligner.align(photo, output_size=size, face_index=face_index, faces=faces)


def center_square(photo: "Image.Image", size: int) -> tuple["Image.Image", "np.ndarray"]:
    """The centered square of ``photo`` resized to ``size``², and its quad in source pixels (for paste-back)."""
    import numpy as np
    from PIL import Image

    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    crop = photo.crop((left, top, left + side, top + side))
    if side != size:
        crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    # Quads are in pixel-centre coordinates: the crop's outer corner (left, top) is pixel (left − ½, top − ½).
    x0, y0, x1, y1 = left - 0.5, top - 0.5, left + side - 0.5, top + side - 0.5
    return crop, np.array([[x0, y0], [x0, y1], [x1, y1], [x1, y0]], dtype=np.float64)


def prepare_face(photo: "Image.Image", name: str, size: int, no_align: bool = False, face_index: int = 0,
                 alignment: str = "ffhq") -> PreparedFace:
    """The face of ``photo`` (read with :func:`faceanim.utils.images.load_image`; ``name`` names it in errors) as a
    ``size``² crop, the way the bundle states (``alignment``): "ffhq" aligns it (dlib), "center-crop" takes the
    centred square, "none" takes a square image as it is. ``no_align`` (an already aligned crop) center-crops."""
    if alignment == "none" and photo.width != photo.height:
        raise FaceanimError(f"{name} is {photo.width}x{photo.height}: this bundle takes square images as they are "
                            "(alignment: none)")
    if no_align or alignment != "ffhq":
        crop, quad = center_square(photo, size)
        return PreparedFace(crop, photo, quad, None)
    aligned = align_photo(photo, name, size, face_index)
    return PreparedFace(aligned.image, photo, aligned.quad, aligned)


def check_steps(steps: int | None, option: str) -> None:
    if steps is not None and not 1 <= steps <= 100_000:
        raise FaceanimError(f"{option} must be between 1 and 100000, got {steps}")

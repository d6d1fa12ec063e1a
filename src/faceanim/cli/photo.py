"""`faceanim align` and `faceanim invert`, and the photo steps `faceanim animate` shares with them.

A photo becomes a generator input in two steps: FFHQ alignment (dlib landmarks; :mod:`faceanim.align`) and
inversion into W+ (:class:`faceanim.inversion.Inverter`: e4e when the bundle has an encoder, else the
projector). ``--no-align`` skips the first step for images that already are aligned crops, such as ToonFace
renders (dlib's detector finds real human faces only): they are center-cropped to a square and resized.

Nothing heavy is imported at module level: the ``faceanim`` command starts without torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from faceanim.errors import FaceanimError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from faceanim.align import AlignedFace

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp")
FFHQ_SIZE = 1024            # default crop side of `faceanim align` without --bundle (the FFHQ layout)
MIN_INVERSION_SIZE = 256    # faces are aligned at least this large for inversion (e4e reads 256×256)
TOON_BUNDLE = "toonface"


@dataclass
class PreparedFace:
    """A face ready for inversion, and where it came from."""

    image: "Image.Image"           # square crop: FFHQ-aligned, or the center square with --no-align
    photo: "Image.Image"           # the original image (RGB)
    quad: "np.ndarray"             # [4, 2] source pixels of the crop's TL, BL, BR, TR corners (for paste-back)
    aligned: "AlignedFace | None"  # detection and landmarks; None with --no-align

    def paste_back(self, frames, feather: float = 0.1) -> list["Image.Image"]:
        """Composite aligned frames (uint8 ``[T, H, W, 3]`` or PIL images) into the original photo."""
        from faceanim.align import paste_back

        return paste_back(self.photo, frames, self.quad, feather=feather)


# -- shared steps ------------------------------------------------------------------------------------------------------
def bundle_facts(bundle: str | None) -> tuple[str, int]:
    """(name, generator resolution) of a bundle, read from its JSON files without loading any weights."""
    from faceanim.bundles import read_bundle_info, resolve_bundle
    from faceanim.utils.io import read_config

    folder = resolve_bundle(bundle)
    info = read_bundle_info(folder)
    config = read_config(folder / info.components.get("generator", "generator"), "stylegan2-generator")
    return info.name, int(config["img_resolution"])


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


def _require_alignment() -> None:
    """dlib and the landmark model, or one line saying how to get them."""
    hint = 'pip install "faceanim[align]" (or pass --no-align if the image already is an aligned face crop)'
    try:
        import dlib  # noqa: F401
    except ImportError:
        raise FaceanimError(f"face alignment needs dlib: {hint}") from None
    from faceanim.align import default_landmarks_path

    if default_landmarks_path() is None:
        raise FaceanimError(f"face alignment needs the dlib 68-point landmark model: {hint}")


def align_photo(photo: "Image.Image", name: str, size: int, face_index: int = 0,
                bundle_name: str | None = None) -> "AlignedFace":
    """Detect faces (largest first) and FFHQ-align number ``face_index`` to ``size``²; one-line errors."""
    from faceanim.align import FaceAligner

    _require_alignment()
    aligner = FaceAligner()
    faces = aligner.detect(photo)
    if not faces:
        if bundle_name == TOON_BUNDLE:
            raise FaceanimError(f"no face found in {name}: dlib's detector finds real human faces, not cartoon ones; "
                                "ToonFace renders already are aligned crops, so pass --no-align")
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
                 bundle_name: str | None = None) -> PreparedFace:
    """Align the face of ``photo`` (read with :func:`faceanim.utils.images.load_image`; ``name`` names it in
    errors), or center-crop it with ``no_align``, to ``size``²."""
    if no_align:
        crop, quad = center_square(photo, size)
        return PreparedFace(crop, photo, quad, None)
    aligned = align_photo(photo, name, size, face_index, bundle_name)
    return PreparedFace(aligned.image, photo, aligned.quad, aligned)


def check_steps(steps: int | None, option: str) -> None:
    if steps is not None and not 1 <= steps <= 100_000:
        raise FaceanimError(f"{option} must be between 1 and 100000, got {steps}")


# -- commands ----------------------------------------------------------------------------------------------------------
@click.command()
@click.argument("photo", type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, help="Aligned crop: .png, .jpg or .webp.")
@click.option("--size", type=int, default=None,
              help=f"Side of the crop in pixels [default: the --bundle generator's resolution, else {FFHQ_SIZE}].")
@click.option("--bundle", "-b", default=None, help="Bundle whose generator resolution sets the default --size.")
@click.option("--face-index", default=0, help="Which face when there are several (0 = the largest).")
@click.option("--save-transform", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Also write the crop geometry (.json): quad, aligned→source matrix, landmarks.")
def align(photo: str, out: str, size: int | None, bundle: str | None, face_index: int,
          save_transform: str | None) -> None:
    """Detect the face in PHOTO and write its FFHQ-aligned crop (the layout StyleGAN2 and e4e expect)."""
    check_image_output(out, "--out")
    if save_transform is not None:
        from faceanim.outputs import check_output_path

        check_output_path(save_transform, allowed=(".json",))
    if size is not None and not 16 <= size <= 4096:
        raise FaceanimError(f"--size must be between 16 and 4096, got {size}")
    from faceanim.utils.images import load_image

    picture = load_image(photo)
    bundle_name = None
    if bundle is not None:
        bundle_name, resolution = bundle_facts(bundle)
        size = size or resolution
    face = prepare_face(picture, photo, size or FFHQ_SIZE, face_index=face_index, bundle_name=bundle_name)
    aligned = face.aligned
    save_image(face.image, out)
    if save_transform is not None:
        from faceanim.utils.io import atomic_path

        geometry = {
            "source": os.fspath(photo), "source_size": list(aligned.source_size), "output_size": aligned.output_size,
            "face_index": aligned.face_index, "box": list(aligned.face.box), "score": aligned.face.score,
            "quad": aligned.quad.tolist(), "aligned_to_source": aligned.transform.tolist(),
            "landmarks": aligned.landmarks.tolist(),
        }
        with atomic_path(save_transform) as tmp:
            tmp.write_text(json.dumps(geometry, indent=1) + "\n")
    left, top, right, bottom = aligned.face.box
    click.echo(f"wrote {out}: {aligned.output_size}x{aligned.output_size} crop of face {aligned.face_index} "
               f"(box {right - left}x{bottom - top} px at {left},{top}) of {photo}")
    if save_transform is not None:
        click.echo(f"  geometry → {save_transform}")


@click.command()
@click.argument("image", type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, help="W+ code [num_ws, w_dim] (.safetensors), for `animate --latent`.")
@click.option("--bundle", "-b", default=None, help="Bundle name or folder (default: toonface).")
@click.option("--method", default="auto", type=click.Choice(["auto", "e4e", "projector"]),
              help="auto: the bundle's e4e encoder if it has one, else the optimization projector.")
@click.option("--encoder", default=None, type=click.Path(path_type=str),
              help="An e4e encoder to use instead of the bundle's: native folder or official e4e_ffhq_encode.pt.")
@click.option("--steps", default=None, type=int, help="Projector steps [default: 300].")
@click.option("--space", default="w", type=click.Choice(["w", "wplus"]),
              help="Projector space: w (one code, edits well) or wplus (one per layer, closer fit).")
@click.option("--no-align", is_flag=True, help="IMAGE already is an aligned face crop (e.g. a ToonFace render).")
@click.option("--face-index", default=0, help="Which face when there are several (0 = the largest).")
@click.option("--reconstruction", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Also write G(w), the generator's rendering of the code (.png, .jpg or .webp).")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda", "mps"]))
def invert(image: str, out: str, bundle: str | None, method: str, encoder: str | None, steps: int | None, space: str,
           no_align: bool, face_index: int, reconstruction: str | None, device: str) -> None:
    """Find the W+ code of the bundle's generator that reproduces the face in IMAGE.

    IMAGE is aligned first (dlib; see `faceanim align`) unless --no-align. The code is written with the
    inversion method and source in its metadata; `faceanim animate --latent OUT` animates it.
    """
    import torch
    from PIL import Image

    from faceanim.inversion import ProjectorConfig
    from faceanim.outputs import check_output_path, save_latents
    from faceanim.pipelines import AnimationPipeline
    from faceanim.training.build import pick_device
    from faceanim.utils.images import load_image, to_uint8
    from faceanim.utils.perf import tune_allocator

    tune_allocator()
    check_output_path(out, allowed=(".safetensors",))
    check_image_output(reconstruction, "--reconstruction")
    check_steps(steps, "--steps")
    if method == "e4e" and (steps is not None or space != "w"):
        raise FaceanimError("--steps and --space set the projector; they do not apply to --method e4e")
    photo = load_image(image)
    bundle_name, resolution = bundle_facts(bundle)
    face = prepare_face(photo, image, max(resolution, MIN_INVERSION_SIZE), no_align, face_index, bundle_name)
    config = ProjectorConfig(steps=steps or ProjectorConfig.steps, space=space)
    pipe = AnimationPipeline.from_bundle(bundle, device=pick_device(device), inversion=method,
                                         projector_config=config, encoder=encoder)
    inverter = pipe.inverter
    inverter.progress = True
    result = inverter.invert(face.image)
    w_plus = result.w_plus.detach().cpu()
    if not bool(torch.isfinite(w_plus).all()):
        raise FaceanimError("inversion diverged (non-finite code); try fewer --steps or --space w")
    meta = {"source": os.fspath(image), "bundle": pipe.name, "method": result.method,
            "aligned": "no" if no_align else f"face {face_index}"}
    if result.method == "projector":
        meta.update(space=space, steps=str(config.steps), perceptual=inverter.perceptual_name)
    save_latents(w_plus, out, meta)
    if reconstruction is not None:
        save_image(Image.fromarray(to_uint8(result.reconstruction[0]).numpy()), reconstruction)
    how = (f"the projector ({config.steps} steps in {'W+' if space == 'wplus' else 'W'}, perceptual: "
           f"{inverter.perceptual_name})" if result.method == "projector" else "e4e")
    click.echo(f"inverted {image} with {how} in {result.seconds:.1f} s: reconstruction MSE {result.mse:.4f}")
    click.echo(f"  W+ code {list(w_plus.shape)} → {out}")
    if reconstruction is not None:
        click.echo(f"  reconstruction → {reconstruction}")


def register(cli: click.Group) -> None:
    cli.add_command(align)
    cli.add_command(invert)

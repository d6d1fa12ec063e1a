"""`faceanim align` and `faceanim invert` (the photo steps themselves: :mod:`faceanim.align.prepare`).

A photo becomes a generator input in two steps: FFHQ alignment (dlib landmarks; :mod:`faceanim.align`) and
inversion into W+ (:class:`faceanim.inversion.Inverter`: e4e when the bundle has an encoder, else the
projector). ``--no-align`` skips the first step for images that already are aligned crops, such as ToonFace
renders (dlib's detector finds real human faces only): they are center-cropped to a square and resized.

Nothing heavy is imported at module level: the ``faceanim`` command starts without torch.
"""

from __future__ import annotations

import json
import os

import click

from faceanim.align.prepare import (FFHQ_SIZE, MIN_INVERSION_SIZE, check_image_output, check_steps, prepare_face,
                                    save_image)
from faceanim.errors import FaceanimError


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

    from faceanim.bundles import Bundle

    picture = load_image(photo)
    if bundle is not None:
        b = Bundle.open(bundle)
        size = size or b.generator_resolution
    face = prepare_face(picture, photo, size or FFHQ_SIZE, face_index=face_index)
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

    from faceanim.bundles import Bundle
    from faceanim.inversion import ProjectorConfig
    from faceanim.outputs import check_output_path, save_latents
    from faceanim.pipelines import AnimationPipeline
    from faceanim.utils.device import pick_device
    from faceanim.utils.images import load_image, to_uint8

    check_output_path(out, allowed=(".safetensors",))
    check_image_output(reconstruction, "--reconstruction")
    check_steps(steps, "--steps")
    if method == "e4e" and (steps is not None or space != "w"):
        raise FaceanimError("--steps and --space set the projector; they do not apply to --method e4e")
    photo = load_image(image)
    b = Bundle.open(bundle)
    face = prepare_face(photo, image, max(b.generator_resolution, MIN_INVERSION_SIZE), no_align, face_index,
                        b.info.alignment)
    config = ProjectorConfig(steps=steps or ProjectorConfig.steps, space=space)
    pipe = AnimationPipeline.from_bundle(b, device=pick_device(device), inversion=method,
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

"""`faceanim align` and `faceanim invert` (the photo steps themselves: :mod:`faceanim.align.prepare`).

A photo becomes a generator input in two steps: FFHQ alignment (dlib landmarks; :mod:`faceanim.align`) and
inversion into W+ (:class:`faceanim.inversion.Inverter`: e4e when the bundle has an encoder, else the
projector; or, without a bundle, a converted generator ``-g DIR`` with ``--encoder``). Both take a folder of
photos too (:mod:`faceanim.align.folders`, :mod:`faceanim.inversion.folders`). ``--no-align`` skips the first
step for images that already are aligned crops, such as ToonFace renders (dlib's detector finds real human faces
only): they are center-cropped to a square and resized.

Nothing heavy is imported at module level: the ``faceanim`` command starts without torch.
"""

from __future__ import annotations

import click

from faceanim.cli.options import InputPath, device_option, out_option


def _report(result) -> None:
    """Print the lines of a library call; a folder run in which nothing succeeded exits non-zero (its rule)."""
    lines, report = result
    for line in lines:
        click.echo(line)
    if report is not None:
        report.check()


# -- commands ----------------------------------------------------------------------------------------------------------
@click.command()
@click.argument("photo", type=InputPath())
@out_option(required=True, help="Aligned crop (.png, .jpg or .webp); with a folder of photos, a folder of "
                                "<name>.png crops.")
@click.option("--size", type=int, default=None,
              help="Side of the crop in pixels [default: the --bundle generator's resolution, else 1024].")
@click.option("--bundle", "-b", default=None, help="Bundle whose generator resolution sets the default --size.")
@click.option("--face-index", default=0, help="Which face when there are several (0 = the largest).")
@click.option("--save-transform", default=None, type=click.Path(path_type=str),
              help="Also write the crop geometry (.json): quad, aligned→source matrix, landmarks; with a folder of "
                   "photos, a folder of <name>.json.")
def align(photo: str, out: str, size: int | None, bundle: str | None, face_index: int,
          save_transform: str | None) -> None:
    """Detect the face in PHOTO and write its FFHQ-aligned crop (the layout StyleGAN2 and e4e expect).

    PHOTO may be a folder: every photo in it is aligned into the folder --out, with a progress bar. A run can be
    resumed (crops already there are skipped); a photo without a face is skipped and listed at the end. The exit
    code is 0 when at least one photo has its crop, else 2.
    """
    from faceanim.align.folders import align_path

    _report(align_path(photo, out, size, bundle, face_index, save_transform))


@click.command()
@click.argument("image", type=InputPath())
@out_option(required=True, help="W+ code [num_ws, w_dim] (.safetensors), for `animate --latent`; with a folder "
                                "of photos, one file of name → code, for training (`latents:`).")
@click.option("--bundle", "-b", default=None, help="Bundle name or folder (default: toonface).")
@click.option("--generator", "-g", default=None, type=InputPath(),
              help="A converted generator folder (or checkpoint) to invert into, without a bundle; with --encoder.")
@click.option("--method", default="auto", type=click.Choice(["auto", "e4e", "projector"]),
              help="auto: the e4e encoder if there is one (--encoder or the bundle's), else the projector.")
@click.option("--encoder", default=None, type=InputPath(),
              help="An e4e encoder to use instead of the bundle's: official e4e_ffhq_encode.pt or a converted folder.")
@click.option("--steps", default=None, type=int, help="Projector steps [default: 300].")
@click.option("--space", default="w", type=click.Choice(["w", "wplus"]),
              help="Projector space: w (one code, edits well) or wplus (one per layer, closer fit).")
@click.option("--no-align", is_flag=True, help="IMAGE already is an aligned face crop (e.g. a ToonFace render).")
@click.option("--face-index", default=0, help="Which face when there are several (0 = the largest).")
@click.option("--reconstruction", default=None, type=click.Path(path_type=str),
              help="Also write G(w), the generator's rendering of the code (.png, .jpg or .webp); with a folder of "
                   "photos, a folder of <name>.png (off by default: one generator pass per face).")
@device_option
def invert(image: str, out: str, bundle: str | None, generator: str | None, method: str, encoder: str | None,
           steps: int | None, space: str, no_align: bool, face_index: int, reconstruction: str | None,
           device: str) -> None:
    """Find the W+ code of the generator that reproduces the face in IMAGE.

    IMAGE is aligned first (dlib; see `faceanim align`) unless --no-align. The generator is the bundle's, or
    -g DIR with --encoder e4e_ffhq_encode.pt (no bundle needed: the paper's recipe inverts its training faces
    before any motion model exists). IMAGE may be a folder: its photos are inverted into one name → code file
    (resumable: names already in --out are skipped; a face that fails is skipped and listed; exit code 0 when at
    least one face has its code, else 2). `faceanim animate --latent OUT` animates a single code.
    """
    from faceanim.inversion.folders import invert_path

    _report(invert_path(image, out, bundle, generator, encoder, method, steps, space, device, no_align, face_index,
                        reconstruction))


def register(cli: click.Group) -> None:
    cli.add_command(align)
    cli.add_command(invert)

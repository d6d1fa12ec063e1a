"""``faceanim animate``: parse → :class:`faceanim.pipelines.job.AnimateJob` → report."""

from __future__ import annotations

import click

from faceanim.cli.options import InputPath, SeedsType, bundle_option, device_option, frames_option, out_option, prompt_option


@click.command()
@click.argument("image", required=False, type=InputPath(dir_okay=False))
@prompt_option(help="What the face does; bare ('smiling') gets the bundle's template. Repeat for a timeline.")
@frames_option(help="Frames per prompt [default: the bundle's, 16].")
@click.option("--fps", default=None, type=click.IntRange(1, 120), help="Frames per second [default: the bundle's, 10].")
@out_option("animation.mp4", help="Output: .mp4, .gif, .png (a strip) or a folder/ of PNG frames; with several "
                                  "seeds put {seed} in the name.")
@bundle_option()
@click.option("--seed", "-s", "seeds", default="0", type=SeedsType(), show_default=True,
              help="Face (and motion noise) seed without IMAGE or --latent; NVlabs ranges (0-3,7) write one output "
                   "per seed.")
@click.option("--latent", default=None, type=InputPath(dir_okay=False),
              help="Start from a saved W+ code (.safetensors from --save-latents, or .pt/.npy) instead of a seed.")
@click.option("--strength", default=1.0, show_default=True, type=click.FloatRange(0.0, 3.0),
              help="Scale of the motion (0 = still image).")
@click.option("--ping-pong", is_flag=True, help="Play back to the first frame (seamless loop).")
@click.option("--grid", is_flag=True, help="Several prompts side by side from the same face instead of a timeline.")
@click.option("--size", default=None, type=click.IntRange(16, 2048), help="Scale frames to SIZE px (the long side).")
@click.option("--save-latents", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Also write the per-frame W+ codes (.safetensors) for reuse.")
@device_option
@click.option("--batch-size", default=0, show_default=True, type=click.IntRange(0, 256),
              help="Frames synthesized per generator call (0: auto, as many as hold the pixels of 8 frames of "
                   "256 px — 8 up to 256 px, 1 at 1024 px).")
@click.option("--no-align", is_flag=True, help="IMAGE already is an aligned face crop: center-crop it.")
@click.option("--face-index", default=0, type=click.IntRange(0), help="Which face of IMAGE (0 = the largest).")
@click.option("--paste-back", is_flag=True, help="Composite the animated face back into the full IMAGE.")
@click.option("--invert-steps", default=None, type=click.IntRange(1, 100_000),
              help="Projector steps for IMAGE when the bundle has no e4e encoder [default: 300].")
@click.option("--encoder", default=None, type=InputPath(),
              help="e4e encoder for IMAGE instead of the bundle's: e4e_ffhq_encode.pt or a converted e4e folder.")
def animate(image, prompts, frames, fps, out, bundle, seeds, latent, strength, ping_pong, grid, size, save_latents,
            device, batch_size, no_align, face_index, paste_back, invert_steps, encoder) -> None:
    """Animate a face from a text prompt and write a video.

    Without IMAGE, the face comes from --seed (or --latent) in the bundle's generator. With IMAGE (a photo), the
    face is cropped as the bundle states (FFHQ alignment for human faces, unless --no-align), inverted into the
    generator (--encoder or the bundle's e4e encoder, else the projector; --latent skips this), animated, and with --paste-back
    composited into the photo.
    """
    from faceanim.pipelines.job import AnimateJob

    job = AnimateJob(prompts=tuple(prompts), out=out, bundle=bundle, seeds=seeds, image=image, latent=latent,
                     frames=frames, fps=fps, strength=strength, ping_pong=ping_pong, grid=grid, size=size,
                     save_latents=save_latents, device=device, batch_size=batch_size, no_align=no_align,
                     face_index=face_index, paste_back=paste_back, invert_steps=invert_steps, encoder=encoder)
    import sys

    bundle_obj = job.check()  # every mistake that needs no model, before torch loads
    # "loading …" at once on a terminal (torch alone takes seconds to import); pipes get only the results
    log = (lambda line: click.echo(line, err=True)) if sys.stderr.isatty() else (lambda line: None)
    for result in job.run(bundle_obj, log=log, notice=lambda line: click.echo(line, err=True)):
        for line in result.summary():
            click.echo(line)

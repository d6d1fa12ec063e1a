"""The ``faceanim`` command. ``main(argv)`` is callable from tests and returns the exit code."""

from __future__ import annotations

import os
import sys

import click

from faceanim import __version__
from faceanim.errors import FaceanimError

EXIT_USER_ERROR = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="faceanim")
def cli() -> None:
    """Language-guided face animation (Hang et al.) on CPU, Apple MPS or CUDA."""


@cli.command()
@click.argument("src", type=click.Path(dir_okay=True, path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["auto", "rosinality", "e4e", "nvlabs", "native"]),
              default="auto", help="Source format (auto-detected from the file's first bytes).")
@click.option("--lr-mlp", type=float, default=0.01,
              help="Mapping-network learning-rate multiplier of rosinality checkpoints (not stored in them).")
@click.option("--force", is_flag=True, help="Replace DST if it exists.")
def convert(src: str, dst: str, fmt: str, lr_mlp: float, force: bool) -> None:
    """Convert a StyleGAN2 checkpoint SRC into a native model folder DST (config.json + model.safetensors).

    SRC: rosinality .pt (e.g. stylegan2-ffhq-config-f.pt), NVlabs .pkl (stylegan2-ada-pytorch /
    stylegan3 with a StyleGAN2 generator; read without running the code inside), or an e4e .pt (its generator).
    """
    from pathlib import Path

    from faceanim.convert import load_generator
    from faceanim.utils.perf import tune_allocator

    tune_allocator()
    out = Path(dst)
    if out.exists() and not force:
        raise FaceanimError(f"{dst} already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise FaceanimError(f"{dst} exists and is not a folder")
    G, notes, found = load_generator(src, fmt=fmt, lr_mlp=lr_mlp)
    G.save_pretrained(out)
    n_params = sum(p.numel() for p in G.parameters())
    c = G.config
    click.echo(f"converted {found} checkpoint → {out}")
    click.echo(f"  {c.img_resolution}x{c.img_resolution}, W+ {G.num_ws}x{c.w_dim}, z {c.z_dim}"
               f"{f', labels {c.c_dim}' if c.c_dim else ''}, {n_params / 1e6:.1f} M parameters")
    for note in notes:
        click.echo(f"  note: {note}")


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=str),
              help="YAML experiment file (see configs/).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=str),
              help="Continue a run folder from its latest checkpoint (uses the run's saved config).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set steps=500 --set loss.contrastive=0")
@click.option("--dry-run", is_flag=True, help="Build everything, print the resolved config, do not train.")
def train(config_path: str | None, resume_dir: str | None, overrides: tuple[str, ...], dry_run: bool) -> None:
    """Train the motion model (recurrent motion generator + mappers) on a frozen StyleGAN2.

    Runs on one process, or on several with `torchrun --nproc_per_node N -m faceanim train …`.
    """
    from pathlib import Path

    import yaml

    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig
    from faceanim.utils.perf import tune_allocator

    tune_allocator()
    if bool(config_path) == bool(resume_dir):
        raise FaceanimError("give exactly one of --config FILE (new run) or --resume RUN_DIR")
    run_dir = None
    if resume_dir:
        run_dir = Path(resume_dir)
        if not (run_dir / "config.yaml").is_file():
            raise FaceanimError(f"{run_dir} is not a run folder (no config.yaml)")
        config_path = str(run_dir / "config.yaml")
    cfg = TrainConfig.from_yaml(config_path, list(overrides))
    if dry_run:
        click.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    trainer = build_trainer(cfg, run_dir=run_dir)
    if dry_run:
        return
    if resume_dir:
        step = trainer.resume()
        if trainer.dist.is_main:
            click.echo(f"resuming {run_dir} at step {step}")
    elif trainer.dist.is_main:
        click.echo(f"run folder: {trainer.run_dir}")
    trainer.train()
    if trainer.dist.is_main:
        last = trainer.history[-1] if trainer.history else {}
        terms = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step")
        click.echo(f"done: {trainer.step} steps ({terms}); motion model → {trainer.run_dir / 'motion_model'}")


@cli.group()
def bundle() -> None:
    """Create and inspect model bundles (everything one animation needs)."""


@bundle.command("create")
@click.argument("out", type=click.Path(path_type=str))
@click.option("--generator", required=True, help="Native generator folder or any checkpoint `faceanim convert` reads.")
@click.option("--motion", required=True, type=click.Path(exists=True, file_okay=False),
              help="Trained motion model folder (a run's motion_model/).")
@click.option("--loss-clip", default=None, help="CLIP of the contrastive loss (path or cache name), for evaluation.")
@click.option("--encoder", default=None, type=click.Path(exists=True, file_okay=False),
              help="Optional inversion encoder folder (e4e) for real photos.")
@click.option("--name", default=None, help="Bundle name (default: the folder name).")
@click.option("--fps", default=10, help="Default frames per second of videos.")
@click.option("--truncation-psi", default=0.7, help="Truncation of faces sampled from a seed.")
@click.option("--model-card", type=click.Path(exists=True, dir_okay=False), default=None, help="Markdown model card.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def bundle_create(out, generator, motion, loss_clip, encoder, name, fps, truncation_psi, model_card, force) -> None:
    """Assemble a bundle folder OUT, e.g. a converted FFHQ generator + a motion model trained on it."""
    from pathlib import Path

    from faceanim.bundles import BundleInfo, create_bundle, describe_bundle

    info = BundleInfo(name=name or Path(out).name, fps=fps, truncation_psi=truncation_psi)
    card = Path(model_card).read_text() if model_card else None
    create_bundle(out, info, generator, motion, loss_clip, encoder, card, overwrite=force)
    click.echo(describe_bundle(out))


@cli.command()
@click.argument("bundle_name", metavar="BUNDLE", required=False)
def info(bundle_name: str | None) -> None:
    """Describe a bundle (a name such as `toonface`, or a folder). Without BUNDLE: list the known bundles."""
    from faceanim.bundles import available_bundles, describe_bundle, resolve_bundle

    if bundle_name is None:
        found = available_bundles()
        if not found:
            click.echo("no bundles installed")
        for name, path in found.items():
            click.echo(f"{name:<16} {path}")
        return
    click.echo(describe_bundle(resolve_bundle(bundle_name)))


@cli.command()
@click.argument("image", required=False, type=click.Path(path_type=str))
@click.option("--prompt", "-p", "prompts", multiple=True, required=True,
              help="What the face does; bare ('smiling') gets the bundle's template. Repeat for a timeline.")
@click.option("--frames", "-n", default=None, type=int, help="Frames per prompt (default: the bundle's, 16).")
@click.option("--fps", default=None, type=int, help="Frames per second of the video (default: the bundle's, 10).")
@click.option("--out", "-o", default="animation.mp4", help="Output: .mp4, .gif, or a folder of PNG frames (ends with /).")
@click.option("--bundle", "-b", default=None, help="Bundle name or folder (default: toonface).")
@click.option("--seed", "-s", default=0, help="Face (and motion noise) seed when no IMAGE or --latent is given.")
@click.option("--latent", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Start from a saved W+ code (.safetensors from --save-latents, or .pt/.npy) instead of a seed.")
@click.option("--strength", default=1.0, help="Scale of the motion (0 = still image).")
@click.option("--ping-pong", is_flag=True, help="Play back to the first frame (seamless loop).")
@click.option("--grid", is_flag=True, help="Several prompts side by side from the same face instead of a timeline.")
@click.option("--size", default=None, type=int, help="Upscale frames to SIZE×SIZE in the written video.")
@click.option("--save-latents", default=None, type=click.Path(dir_okay=False),
              help="Also write the per-frame W+ codes (.safetensors) for reuse.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda", "mps"]))
@click.option("--batch-size", default=8, help="Frames synthesized per generator call.")
@click.option("--no-align", is_flag=True, help="IMAGE already is an aligned face crop (e.g. a ToonFace render).")
@click.option("--face-index", default=0, help="Which face of IMAGE when there are several (0 = the largest).")
@click.option("--paste-back", is_flag=True, help="Composite the animated face back into the full IMAGE.")
@click.option("--invert-steps", default=None, type=int,
              help="Projector steps for IMAGE when the bundle has no e4e encoder [default: 300].")
def animate(image, prompts, frames, fps, out, bundle, seed, latent, strength, ping_pong, grid, size, save_latents,
            device, batch_size, no_align, face_index, paste_back, invert_steps) -> None:
    """Animate a face from a text prompt and write a video.

    Without IMAGE, the face comes from --seed (or --latent) in the bundle's generator. With IMAGE (a photo),
    the face is aligned (unless --no-align), inverted into the generator (the bundle's e4e encoder, else the
    projector; --latent skips this), animated, and with --paste-back composited into the photo.
    """
    import time

    from tqdm.auto import tqdm

    from faceanim.outputs import check_output_path, save_latents as write_latents, write_animation, write_grid_video
    from faceanim.pipelines import AnimationPipeline
    from faceanim.pipelines.animation import MAX_FRAMES
    from faceanim.training.build import pick_device
    from faceanim.utils.perf import tune_allocator

    t_start = time.perf_counter()
    tune_allocator()
    if frames is not None and not 2 <= frames <= MAX_FRAMES:
        raise FaceanimError(f"--frames must be between 2 and {MAX_FRAMES}, got {frames}")
    if fps is not None and not 1 <= fps <= 120:
        raise FaceanimError(f"--fps must be between 1 and 120, got {fps}")
    if size is not None and not 16 <= size <= 2048:
        raise FaceanimError(f"--size must be between 16 and 2048, got {size}")
    if not 1 <= batch_size <= 256:
        raise FaceanimError("--batch-size must be between 1 and 256")
    if any(not p.strip() for p in prompts):
        raise FaceanimError("--prompt is empty")
    check_output_path(out)
    if save_latents:
        check_output_path(save_latents, allowed={".safetensors"})
    face = None
    if image is None:
        for flag, given in (("--no-align", no_align), ("--paste-back", paste_back),
                            ("--invert-steps", invert_steps is not None), ("--face-index", face_index != 0)):
            if given:
                raise FaceanimError(f"{flag} applies to a photo: give IMAGE")
    else:
        from faceanim.cli.photo import MIN_INVERSION_SIZE, bundle_facts, check_steps, prepare_face
        from faceanim.utils.images import load_image

        check_steps(invert_steps, "--invert-steps")
        # Unreadable / oversized input, no face or a bad --face-index fail here, before any model loads.
        photo = load_image(image)
        bundle_name, resolution = bundle_facts(bundle)
        face = prepare_face(photo, image, max(resolution, MIN_INVERSION_SIZE), no_align, face_index, bundle_name)
    t0 = time.perf_counter()
    projector_config = None
    if invert_steps is not None:
        from faceanim.inversion import ProjectorConfig

        projector_config = ProjectorConfig(steps=invert_steps)
    pipe = AnimationPipeline.from_bundle(bundle, device=pick_device(device), projector_config=projector_config)
    pipe.inverter.progress = True
    t_load = time.perf_counter() - t0
    info = getattr(pipe, "info", None)
    frames = frames or (info.num_frames if info else 16)
    fps = fps or (info.fps if info else 10)
    source = {"seed": seed}
    if latent is not None:
        from faceanim.outputs import load_latents_file

        codes = load_latents_file(latent)
        source = {"latent": codes[-1] if codes.ndim == 3 and codes.shape[0] > 1 else codes}
    if face is not None:
        source["image"] = face.image
        source.pop("seed", None)
    total = frames * len(prompts) if not grid else frames * len(prompts)
    if ping_pong:
        total = total * 2 - 2 if not grid else (2 * frames - 2) * len(prompts)
    kwargs = dict(num_frames=frames, strength=strength, ping_pong=ping_pong, batch_size=batch_size,
                  generator=torch_generator(seed), **source)
    with tqdm(total=total, desc="frames", unit="frame", disable=None) as bar:
        if grid:
            result = pipe.batch(list(prompts), progress=bar.update, **kwargs)
        else:
            result = pipe(list(prompts), progress=bar.update, **kwargs)
    t1 = time.perf_counter()
    video = result.frames
    if paste_back:
        import numpy as np

        from faceanim.outputs import as_uint8_video

        clips = video if grid else video[None]
        video = np.stack([np.stack([np.asarray(f) for f in face.paste_back(as_uint8_video(c))]) for c in clips])
        video = video if grid else video[0]
    if grid:
        write_grid_video(video, out, fps=fps, labels=list(prompts), size=size)
    else:
        write_animation(video, out, fps=fps, size=size)
    if save_latents:
        write_latents(result.latents, save_latents, {"prompts": " | ".join(prompts), "bundle": pipe.name,
                                                       "seed": str(seed)})
    t_write = time.perf_counter() - t1
    n = result.frames.shape[-4] if result.frames.ndim == 5 else result.frames.shape[0]
    height, width = (video.shape[-3:-1] if paste_back else result.frames.shape[-2:])
    if size:
        height, width = (size, round(width * size / height)) if height >= width else (round(height * size / width), size)
    inversion = pipe.inverter.last if face is not None and latent is None else None
    if face is not None:
        what = f"photo {image} ({'no alignment' if no_align else f'face {face_index}'}, "
        what += f"latent {latent})" if latent else f"inverted with {inversion.method}, MSE {inversion.mse:.4f})"
    else:
        what = f"latent {latent}" if latent else f"seed {seed}"
    click.echo(f"wrote {out}: {n} frames{f' x {len(prompts)} prompts' if grid else ''}, {width}x{height}, "
               f"{fps} fps ({n / fps:.1f} s); bundle {pipe.name}, {what}")
    t_invert = inversion.seconds if inversion is not None else 0.0
    click.echo(f"  time: load {t_load:.2f} s, {f'inversion {t_invert:.2f} s, ' if inversion else ''}"
               f"motion {result.timings['motion'] - t_invert:.2f} s, synthesis "
               f"{result.timings['synthesis']:.2f} s, writing {t_write:.2f} s, total {time.perf_counter() - t_start:.2f} s")
    if save_latents:
        click.echo(f"  latents → {save_latents}")


def torch_generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))



def _add_toon() -> None:
    from faceanim.toon.cli import toon

    cli.add_command(toon)


_add_toon()


def _add_evaluate() -> None:
    from faceanim.evaluation.cli import evaluate, results

    cli.add_command(evaluate)
    cli.add_command(results)


_add_evaluate()


def _add_photo() -> None:
    from faceanim.cli.photo import register

    register(cli)


_add_photo()
cli.add_command(__import__("faceanim.cli.demo", fromlist=["demo"]).demo)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line to stderr and return a non-zero code (no traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="faceanim", standalone_mode=False)
    except FaceanimError as exc:
        click.echo(f"faceanim: error: {exc}", err=True)
        return EXIT_USER_ERROR
    except click.exceptions.Abort:
        click.echo("faceanim: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("faceanim: interrupted", err=True)
        return 130
    except MemoryError:
        click.echo("faceanim: error: out of memory (try a smaller batch or resolution)", err=True)
        return 1
    except Exception as exc:  # last resort: one line, traceback only on request
        if os.environ.get("FACEANIM_DEBUG") == "1":
            raise
        click.echo(f"faceanim: internal error: {type(exc).__name__}: {exc} (set FACEANIM_DEBUG=1 for the traceback)",
                   err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

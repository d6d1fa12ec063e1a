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

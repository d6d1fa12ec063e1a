"""``faceanim bundle create``, ``faceanim bundle push`` and ``faceanim info``."""

from __future__ import annotations

import click

from faceanim.cli.options import InputPath


@click.group()
def bundle() -> None:
    """Create and inspect model bundles (everything one animation needs)."""


@bundle.command("create")
@click.argument("out", type=click.Path(path_type=str))
@click.option("--generator", required=True, help="Native generator folder or any checkpoint `faceanim convert` reads.")
@click.option("--motion", required=True, type=InputPath(file_okay=False),
              help="Trained motion model folder (a run's motion_model/).")
@click.option("--loss-clip", default=None, help="CLIP of the contrastive loss (path or cache name), for evaluation.")
@click.option("--encoder", default=None, type=InputPath(file_okay=False),
              help="Optional inversion encoder folder (e4e) for real photos.")
@click.option("--name", default=None, help="Bundle name [default: the folder name].")
@click.option("--fps", default=10, show_default=True, type=click.IntRange(1, 120), help="Default frames per second.")
@click.option("--truncation-psi", default=0.7, show_default=True, help="Truncation of faces sampled from a seed.")
@click.option("--alignment", default="ffhq", show_default=True, type=click.Choice(["ffhq", "center-crop", "none"]),
              help="How photos become crops: FFHQ alignment (dlib), the centred square, or as they are.")
@click.option("--model-card", type=InputPath(dir_okay=False), default=None, help="Markdown model card.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def bundle_create(out, generator, motion, loss_clip, encoder, name, fps, truncation_psi, alignment, model_card,
                  force) -> None:
    """Assemble a bundle folder OUT, e.g. a converted FFHQ generator + a motion model trained on it."""
    from pathlib import Path

    from faceanim.bundles import Bundle, BundleInfo, create_bundle

    info = BundleInfo(name=name or Path(out).name, fps=fps, truncation_psi=truncation_psi, alignment=alignment)
    card = Path(model_card).read_text() if model_card else None
    create_bundle(out, info, generator, motion, loss_clip, encoder, card, overwrite=force)
    click.echo(Bundle.open(out).describe())


@bundle.command("push")
@click.argument("folder", type=InputPath(file_okay=False))
@click.argument("repo_id", metavar="ORG/NAME")
@click.option("--private", is_flag=True, help="Create the repository private (if it does not exist yet).")
@click.option("--revision", default=None, help="Branch to commit to [default: main].")
@click.option("--message", "-m", default=None, help="Commit message.")
def bundle_push(folder, repo_id, private, revision, message) -> None:
    """Upload a bundle FOLDER to the Hugging Face model repository ORG/NAME (uses your `hf auth login` or HF_TOKEN).

    Others then run it with `faceanim animate -b hf:ORG/NAME` or `AnimationPipeline.from_pretrained("ORG/NAME")`.
    """
    from faceanim.hub import push_bundle

    url = push_bundle(folder, repo_id, private=private, revision=revision, commit_message=message)
    click.echo(f"pushed {folder} → {url}")
    click.echo(f"run it with: faceanim animate -p smiling -b hf:{repo_id}")


@click.command()
@click.argument("bundle_name", metavar="[BUNDLE]", required=False)
def info(bundle_name: str | None) -> None:
    """Describe a bundle (a name such as `toonface`, a folder or hf:ORG/NAME). Without BUNDLE: list the known bundles."""
    from faceanim.bundles import Bundle, available_bundles

    if bundle_name is None:
        found = available_bundles()
        if not found:
            click.echo("no bundles installed")
        for name, path in found.items():
            click.echo(f"{name:<16} {path}")
        return
    click.echo(Bundle.open(bundle_name).describe())

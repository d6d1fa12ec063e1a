"""``faceanim bundle create``, ``faceanim bundle push`` and ``faceanim info``."""

from __future__ import annotations

import click

from faceanim.cli.options import ARCH_HELP, InputPath, out_option


@click.group()
def bundle() -> None:
    """Create and inspect model bundles (everything one animation needs)."""


@bundle.command("create")
@click.argument("out", type=click.Path(path_type=str))
@click.option("--generator", required=True, help="Native generator folder or any checkpoint `faceanim convert` reads.")
@click.option("--motion", required=True, type=InputPath(file_okay=False),
              help="Trained motion model folder (a run's motion_model/).")
@click.option("--loss-clip", default=None, help="CLIP of the contrastive loss (path or cache name), for evaluation.")
@click.option("--clip-arch", default=None, metavar="ARCH", help=ARCH_HELP)
@click.option("--encoder", default=None, type=InputPath(),
              help="Optional inversion encoder for real photos: e4e_ffhq_encode.pt (converted) or a native e4e folder.")
@click.option("--name", default=None, help="Bundle name [default: the folder name].")
@click.option("--fps", default=10, show_default=True, type=click.IntRange(1, 120), help="Default frames per second.")
@click.option("--truncation-psi", default=0.7, show_default=True, help="Truncation of faces sampled from a seed.")
@click.option("--alignment", default="ffhq", show_default=True, type=click.Choice(["ffhq", "center-crop", "none"]),
              help="How photos become crops: FFHQ alignment (dlib), the centred square, or as they are.")
@click.option("--model-card", type=InputPath(dir_okay=False), default=None, help="Markdown model card.")
@click.option("--supported-prompts", type=InputPath(dir_okay=False), default=None,
              help="Prompt file (one per line) the motion model was trained and checked on, e.g. the training "
                   "prompts; the first six become the example prompts. Calibrate the far-prompt note afterwards "
                   "with `faceanim bundle calibrate-prompts`.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def bundle_create(out, generator, motion, loss_clip, clip_arch, encoder, name, fps, truncation_psi, alignment,
                  model_card, supported_prompts, force) -> None:
    """Assemble a bundle folder OUT, e.g. a converted FFHQ generator + a motion model trained on it."""
    from pathlib import Path

    from faceanim.bundles import Bundle, BundleInfo, create_bundle

    info = BundleInfo(name=name or Path(out).name, fps=fps, truncation_psi=truncation_psi, alignment=alignment)
    if supported_prompts:
        from faceanim.data.prompts import load_prompts

        info.declare_supported(load_prompts(supported_prompts))
    card = Path(model_card).read_text() if model_card else None
    notes: list[str] = []
    create_bundle(out, info, generator, motion, loss_clip, encoder, card, overwrite=force, clip_arch=clip_arch,
                  notes=notes)
    click.echo(Bundle.open(out).describe())
    for note in notes:
        click.echo(f"  {note}")


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


@bundle.command("calibrate-prompts")
@click.argument("bundle_name", metavar="BUNDLE")
@click.option("--positives", "-P", multiple=True, required=True, type=InputPath(dir_okay=False),
              help="Phrases that should pass (e.g. held-out paraphrases of the supported prompts), one per line; "
                   "repeat for several groups (the file name names the group).")
@click.option("--negatives", "-N", multiple=True, required=True, type=InputPath(dir_okay=False),
              help="Phrases the note must catch (unrelated phrases, motions the bundle does not support); repeatable.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fit / report split.")
@click.option("--write", is_flag=True, help="Store the threshold in BUNDLE/bundle.json (BUNDLE must be a folder).")
@out_option(None, help="Also write the full calibration (rates, passing phrases) to this JSON file.")
def calibrate_prompts(bundle_name, positives, negatives, seed, write, out) -> None:
    """Calibrate the far-prompt note of BUNDLE: the CLIP similarity below which `animate` says a prompt is far
    from every supported prompt. Rule: each group is split in halves (seeded); the threshold is the smallest value
    no negative of the fit half reaches; pass rates are reported on both halves."""
    import json
    from pathlib import Path

    from faceanim.bundles import Bundle
    from faceanim.data.prompts import load_prompts
    from faceanim.pipelines.prompt_scope import calibrate_threshold
    from faceanim.utils.io import atomic_path

    bundle_obj = Bundle.open(bundle_name)
    if not bundle_obj.info.supported_prompts:
        raise click.UsageError(f"bundle {bundle_obj.name} declares no supported_prompts in its bundle.json")
    if write and not Path(bundle_name).is_dir():
        raise click.UsageError("--write needs BUNDLE as a folder path (the file it changes is BUNDLE/bundle.json)")
    groups = lambda files: {Path(f).stem: load_prompts(f) for f in files}  # noqa: E731
    clip = bundle_obj.load_clip("cond_clip")
    result = calibrate_threshold(clip, bundle_obj.info.template, bundle_obj.info.supported_prompts,
                                 groups(positives), groups(negatives), seed=seed)
    for line in result.summary():
        click.echo(line)
    if out:
        with atomic_path(out) as tmp:
            Path(tmp).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if write:
        path = Path(bundle_name) / "bundle.json"
        data = json.loads(path.read_text())
        data["prompt_threshold"] = result.threshold
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
        click.echo(f"wrote prompt_threshold {result.threshold} to {path}")


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

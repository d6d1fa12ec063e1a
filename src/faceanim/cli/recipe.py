"""``faceanim recipe``: from public checkpoints to a bundle in one command (parse → faceanim.recipes → report)."""

from __future__ import annotations

import click

from faceanim.cli.options import device_option


@click.command()
@click.argument("name", metavar="NAME", type=click.Choice(["ffhq"]))
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Bundle folder [default: $FACEANIM_HOME/bundles/NAME, so that `-b NAME` finds it].")
@click.option("--work", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Where downloads, CLIPs and the training run are kept [default: $FACEANIM_HOME/recipes/NAME].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a training option: --set steps=500, --set generator=URL, "
                   "--set cond_clip=hf-hub:ORG/NAME …")
@device_option
@click.option("--dry-run", is_flag=True, help="State the plan and the expected time, download nothing.")
@click.option("--force", is_flag=True, help="Replace the bundle folder if it exists.")
def recipe(name: str, out: str | None, work: str | None, overrides: tuple[str, ...], device: str, dry_run: bool,
           force: bool) -> None:
    """Make a bundle from public checkpoints: `ffhq` downloads NVlabs' StyleGAN2-ADA FFHQ generator (nvlabs:ffhq) and
    OpenAI's CLIP RN50 and ViT-B/32 (open_clip, tag openai), trains the motion model in latent mode with the
    paper's loss weights and prompts (no dataset needed) and writes the bundle. Run the same command again after an
    interruption: finished stages are skipped and training resumes from its latest checkpoint.
    """
    import os

    from faceanim.recipes import expected_time, get_recipe, recipe_config

    if dry_run:
        data = recipe_config(get_recipe(name), overrides)
        for line in expected_time(int(data["steps"])):
            click.echo(line)
        click.echo(f"generator: {data['generator']}; CLIPs: {data['cond_clip']} / {data['loss_clip']} "
                   f"({data.get('pretrained')}); {len(data['prompts'])} prompts")
        return
    from faceanim.bundles import user_bundle_dir
    from faceanim.recipes import run_recipe

    folder = run_recipe(name, out=out, work=work, overrides=overrides, device=device, force=force,
                        log=click.echo, progress=os.environ.get("TQDM_DISABLE", "") in ("", "0"))
    from pathlib import Path

    found = Path(folder).resolve().parent == user_bundle_dir().resolve()
    target = Path(folder).name if found else str(folder)
    click.echo(f"done: bundle {folder}")
    click.echo(f"animate a photo with:  faceanim animate me.jpg -p smiling -b {target}")

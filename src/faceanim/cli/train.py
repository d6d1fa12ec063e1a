"""``faceanim train``: the motion model on a frozen StyleGAN2 (one process or torchrun)."""

from __future__ import annotations

import click

from faceanim.errors import FaceanimError


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=str),
              help="YAML experiment file (see configs/).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=str),
              help="Continue a run folder from its latest checkpoint (uses the run's saved config).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set steps=500 --set loss.contrastive=0")
@click.option("--dry-run", is_flag=True,
              help="Build everything, print the resolved config, do not train (writes nothing).")
def train(config_path: str | None, resume_dir: str | None, overrides: tuple[str, ...], dry_run: bool) -> None:
    """Train the motion model (recurrent motion generator + mappers) on a frozen StyleGAN2.

    Runs on one process, or on several with `torchrun --nproc_per_node N -m faceanim train …`.
    """
    import os
    from pathlib import Path

    import yaml

    from faceanim.evaluation.hooks import training_metrics
    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig

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
    trainer = build_trainer(cfg, run_dir=run_dir, metrics_hook=training_metrics,
                            progress=os.environ.get("TQDM_DISABLE", "") in ("", "0"), dry_run=dry_run)
    if dry_run:
        if trainer.dist.is_main:
            click.echo(f"dry run: nothing written; the run folder would be {trainer.run_dir}")
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

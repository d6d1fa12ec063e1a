"""``faceanim toon train-motion``: the paper's motion model trained in sampled-latent mode (IV-A-1) on a ToonFace
generator, through the core trainer (``faceanim.training``) with the ToonFace recipe (``recipes.motion_train_data``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from faceanim.errors import FaceanimError


@dataclass
class MotionRunConfig:
    out: str = "runs/toonface/motion"           # parent of the numbered run folder
    generator: str | None = None                # generator folder (default: the toonface bundle's)
    clip: str | None = None                     # conditioning CLIP E_t, E_v (default: the toonface bundle's)
    loss_clip: str | list[str] | None = None    # frozen CLIP(s) of the contrastive loss (default: ``clip``; a
                                                # list: an ensemble, the loss averaged over them)
    steps: int = 2000                           # optimisation steps
    batch_size: int = 4
    prompt_keys: list[str] | None = None        # expression keys to train on (default: all)
    paraphrases: bool = False                   # each key's prompt lists its training-vocabulary wordings
    freeze_factors: list[str] | None = None     # identity factors the motion must not change (their mean W
                                                # directions are projected off every offset; MotionConfig)
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)  # further TrainConfig overrides, KEY=VALUE

    def __post_init__(self) -> None:
        from faceanim.toon.captions import EXPRESSION_PROMPTS

        unknown = [k for k in self.prompt_keys or () if k not in EXPRESSION_PROMPTS]
        if unknown:
            raise FaceanimError(f"unknown prompt key(s) {unknown}; known: {', '.join(EXPRESSION_PROMPTS)}")


def motion_train_config(run: MotionRunConfig):
    """The core ``TrainConfig`` of a run: the ToonFace recipe, the defaults resolved, the overrides applied."""
    from faceanim.bundles import Bundle
    from faceanim.toon.recipes import motion_prompts, motion_train_data
    from faceanim.training.config import TrainConfig, apply_overrides

    generator = run.generator or str(Bundle.open("toonface").path("generator"))
    clip = run.clip or str(Bundle.open("toonface").path("cond_clip"))
    data = motion_train_data(generator, clip, motion_prompts(run.prompt_keys, run.paraphrases), run.out, run.steps,
                             run.batch_size, loss_clip=run.loss_clip)
    data["device"] = run.device
    if run.freeze_factors:
        data["frozen_directions"] = str(write_factor_directions(generator, run.freeze_factors, run.out))
    return TrainConfig.from_dict(apply_overrides(data, run.overrides))


def write_factor_directions(generator: str, factors: list[str], out: str) -> Path:
    """``out/frozen_directions.safetensors``: the generator's mean W directions of ``factors``
    (:func:`faceanim.toon.latent.factor_directions`), their names in the file's metadata."""
    from faceanim.models.stylegan2 import Generator
    from faceanim.toon.latent import factor_directions
    from faceanim.utils.io import save_safetensors

    try:
        directions = factor_directions(Generator.from_pretrained(generator), factors)
    except ValueError as exc:
        raise FaceanimError(f"--freeze-factors: {exc}") from None
    path = Path(out) / "frozen_directions.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors({"directions": directions.contiguous()}, path, metadata={"factors": ",".join(factors)})
    return path


def train_motion(run: MotionRunConfig, log=print) -> Path:
    """Train the motion model; returns the run folder (the model is in its ``motion_model/``)."""
    from faceanim.training import build

    trainer = build.build_trainer(motion_train_config(run))
    log(f"run folder: {trainer.run_dir}")
    trainer.train()
    return Path(trainer.run_dir)

"""From public checkpoints to a bundle in one call: ``faceanim recipe ffhq``.

A recipe downloads a generator (a named source such as ``nvlabs:ffhq``, :mod:`faceanim.downloads`) and two
OpenAI CLIPs (through open_clip's pretrained loading, :mod:`faceanim.encoders.pretrained`), trains the motion model
in sampled-latent mode (IV-A-1: no dataset needed) with the paper's loss weights, learning rates and prompt list
(``configs/ffhq_paper.yaml``, whose image-mode data it replaces by sampled faces), and writes a bundle. Every stage
leaves its result in a work folder, so running the same command again skips what is done and resumes training from
its latest checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from faceanim.errors import FaceanimError

# The paper's 17 expression prompts (configs/prompts/expressions.txt; tests/test_recipe.py keeps them equal).
EXPRESSIONS = ("smiling", "laughing", "crying", "angry", "surprised", "shocked", "stunned", "sad", "frowning",
               "pouting", "closing eyes", "winking", "disgusted", "scared", "opening mouth", "blushing", "yawning")

# Time per training step for a 1024 px generator — figures measured or published, with where they come from
# (docs/BENCHMARKS.md, "Training the motion model"): (low, high) seconds per step.
GPU_SECONDS_PER_STEP = (None, 3600 / 2000)   # the paper (IV-A): 2,000 iterations in under 1 h on GPUs
CPU_SECONDS_PER_STEP = (36.0, 45.0)          # measured here: 1024 px, batch 2, 2 cores (docs/BENCHMARKS.md)


@dataclass(frozen=True)
class Recipe:
    name: str                                 # the bundle's name (``faceanim animate -b NAME``)
    generator: str                            # named source, URL or path of the StyleGAN2 checkpoint
    description: str
    train: dict = field(default_factory=dict)  # TrainConfig fields (CLIPs given by open_clip name + tag)
    alignment: str = "ffhq"                   # how photos become crops for this generator
    example_prompts: tuple[str, ...] = ("smiling", "crying", "surprised")


RECIPES: dict[str, Recipe] = {
    "ffhq": Recipe(
        name="ffhq",
        generator="nvlabs:ffhq",
        description="Human faces: NVlabs' StyleGAN2-ADA FFHQ generator (1024 px), OpenAI CLIP RN50 (conditioning, "
                    "fine-tuned) and ViT-B/32 (contrastive loss); motion model trained by `faceanim recipe ffhq` "
                    "in sampled-latent mode with the paper's loss weights and prompts.",
        train={"cond_clip": "RN50", "loss_clip": "ViT-B-32", "pretrained": "openai", "mode": "latent",
               "prompts": list(EXPRESSIONS), "template": "The person is {}.", "truncation_psi": 0.7,
               "batch_size": 4, "num_frames": 4, "steps": 2000, "lr_encoder": 1.0e-5, "lr_mapper": 1.0e-3,
               "lr_recurrent": 1.0e-3, "betas": [0.0, 0.999],
               "loss": {"w_reg": 1.0, "path_reg": 1.0, "contrastive": 0.5, "lpips": 0.0, "path_order": 2,
                        "temperature": 0.07},
               "motion": {"h_dim": 384, "mapper_hidden": 1024, "mapper_input": "code"},
               "checkpoint_every": 100, "sample_every": 250, "name": "ffhq-recipe"},
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise FaceanimError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    return RECIPES[name]


def default_work_dir(name: str) -> Path:
    """``$FACEANIM_HOME/recipes/NAME`` (default ``~/.cache/faceanim/recipes/NAME``): downloads, CLIPs, the run."""
    home = os.environ.get("FACEANIM_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "faceanim") / "recipes" / name


def expected_time(steps: int) -> list[str]:
    """What the recipe states before it starts: the training time on a GPU and on CPU for ``steps`` steps."""
    lo, hi = CPU_SECONDS_PER_STEP
    gpu = GPU_SECONDS_PER_STEP[1] * steps
    return [f"expected training time for {steps} steps with the 1024 px FFHQ generator:",
            f"  on a GPU: under {_duration(gpu)} (the paper: 2,000 steps in under 1 h)",
            f"  on CPU:   {_span(lo * steps, hi * steps)} ({lo:.0f}–{hi:.0f} s per step measured at 1024 px, "
            "batch 2, on 2 cores; see docs/BENCHMARKS.md)",
            "  interrupt at any time: the same command resumes from the latest checkpoint"]


def _span(low: float, high: float) -> str:
    a, b = _duration(low), _duration(high)
    return a if a == b else f"{a} to {b}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} min"
    hours = seconds / 3600
    return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h"


def recipe_config(recipe: Recipe, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The recipe's TrainConfig fields with ``--set KEY=VALUE`` overrides applied (checked by TrainConfig)."""
    import copy

    from faceanim.training.config import TrainConfig, apply_overrides

    data = apply_overrides({"generator": recipe.generator, **copy.deepcopy(recipe.train)}, list(overrides))
    TrainConfig.from_dict({**data, "generator": "x"})  # unknown keys and bad values fail here, before any download
    return data


def run_recipe(name: str, out: str | os.PathLike | None = None, work: str | os.PathLike | None = None,
               overrides: list[str] | tuple[str, ...] = (), device: str = "auto", force: bool = False,
               log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """Run recipe ``name`` end to end; returns the bundle folder (default ``$FACEANIM_HOME/bundles/NAME``, where
    ``faceanim animate -b NAME`` finds it). Stages already done in ``work`` are skipped; training resumes."""
    from faceanim.bundles import user_bundle_dir

    recipe = get_recipe(name)
    data = recipe_config(recipe, overrides)
    out = Path(out) if out is not None else user_bundle_dir() / recipe.name
    work = Path(work) if work is not None else default_work_dir(recipe.name)
    if out.exists() and not force:
        raise FaceanimError(f"{out} already exists (use --force to replace it)")
    for line in expected_time(int(data["steps"])):
        log(line)
    work.mkdir(parents=True, exist_ok=True)

    gen_dir = work / "generator"
    if not (gen_dir / "config.json").is_file():
        from faceanim.convert import convert_checkpoint

        log(f"[1/4] generator: {data['generator']} → {gen_dir}")
        convert_checkpoint(data["generator"], gen_dir, overwrite=True)
    else:
        log(f"[1/4] generator: {gen_dir} (done)")

    clips: dict = {}
    for key, sub in (("cond_clip", "cond"), ("loss_clip", "loss")):
        spec, folder = data[key], work / "clip" / sub
        if isinstance(spec, dict):  # a custom architecture, randomly initialized (tests, experiments)
            clips[key] = spec
        elif key == "loss_clip" and spec == data["cond_clip"]:
            clips[key] = clips["cond_clip"]  # one download; the motion model fine-tunes its own copy
        elif (folder / "config.json").is_file():
            log(f"[2/4] CLIP {spec}: {folder} (done)")
            clips[key] = str(folder)
        else:
            from faceanim.training.build import load_clip

            tag = f" ({data['pretrained']})" if data.get("pretrained") else ""
            log(f"[2/4] CLIP {spec}{tag} → {folder}")
            folder.parent.mkdir(parents=True, exist_ok=True)
            load_clip(spec, data.get("clip_cache"), data.get("pretrained")).save_pretrained(folder)
            clips[key] = str(folder)
    data.update(generator=str(gen_dir), pretrained=None, device=device, out_dir=str(work),
                cond_clip=clips["cond_clip"], loss_clip=clips["loss_clip"])

    motion_dir = _train(data, work / "run", log, progress)

    from faceanim.bundles import BundleInfo, create_bundle

    log(f"[4/4] bundle → {out}")
    prompts = list(data["prompts"]) if isinstance(data["prompts"], list) else []
    examples = [p for p in recipe.example_prompts if not prompts or p in prompts] or prompts[:3]
    info = BundleInfo(name=recipe.name, template=data["template"], truncation_psi=float(data["truncation_psi"]),
                      example_prompts=examples, supported_prompts=prompts, alignment=recipe.alignment,
                      description=recipe.description)
    loss_clip = clips["loss_clip"] if not isinstance(clips["loss_clip"], dict) else None
    out.parent.mkdir(parents=True, exist_ok=True)
    create_bundle(out, info, gen_dir, motion_dir, loss_clip, model_card=_model_card(recipe, data),
                  overwrite=force)
    return out


def _train(data: dict, run_dir: Path, log: Callable[[str], None], progress: bool) -> Path:
    """Train into ``run_dir`` (fixed, so that a second call resumes); returns the motion model folder."""
    import yaml

    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig

    cfg = TrainConfig.from_dict(data)
    done = run_dir / "motion_model"
    saved = run_dir / "config.yaml"
    if saved.is_file():
        before = TrainConfig.from_dict(yaml.safe_load(saved.read_text())).to_dict()
        if {k: v for k, v in before.items() if k != "device"} != {k: v for k, v in cfg.to_dict().items()
                                                                   if k != "device"}:
            raise FaceanimError(f"{run_dir} holds a run with other settings: give the same options as then, or a "
                                "new --work folder")
    if (done / "config.json").is_file() and _trained_steps(run_dir) >= cfg.steps:
        log(f"[3/4] motion model: {done} (done)")
        return done
    trainer = build_trainer(cfg, run_dir=run_dir, progress=progress)
    if trainer.checkpoint_dir.is_dir():
        step = trainer.resume()
        log(f"[3/4] motion model: resuming {run_dir} at step {step} of {cfg.steps}")
    else:
        log(f"[3/4] motion model: training {cfg.steps} steps in {run_dir}")
    trainer.train()
    return done


def _trained_steps(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return 0
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    return int(json.loads(lines[-1]).get("step", 0)) if lines else 0


def _model_card(recipe: Recipe, data: dict) -> str:
    settings = {k: data[k] for k in ("steps", "batch_size", "num_frames", "lr_encoder", "lr_mapper", "lr_recurrent",
                                     "truncation_psi", "template") if k in data}
    return (f"# {recipe.name}\n\n{recipe.description}\n\n"
            f"Made by `faceanim recipe {recipe.name}` from `{recipe.generator}` and open_clip's "
            f"`{recipe.train.get('cond_clip')}` / `{recipe.train.get('loss_clip')}` "
            f"(`{recipe.train.get('pretrained')}`).\n\n"
            f"Training: {json.dumps(settings)}; losses {json.dumps(data.get('loss', {}))}; "
            f"prompts: {', '.join(data['prompts']) if isinstance(data['prompts'], list) else data['prompts']}.\n\n"
            "Not evaluated: run `faceanim evaluate` on it before drawing conclusions. The generator's and CLIP's "
            "licences apply (NVlabs' StyleGAN2-ADA: NVIDIA Source Code License-NC; OpenAI CLIP: MIT).\n")

"""``faceanim toon …``: the reproducible commands that build the ToonFace default bundle.

Each command parses its options, calls one function of :mod:`faceanim.toon` and reports. Run folders default to
``runs/toonface/<what>`` under the current folder; inputs default to the shipped toonface bundle's networks.
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import json

import click

from faceanim.cli.options import (
    bundle_option,
    device_option,
    faces_option,
    frames_option,
    out_option,
    prompt_option,
)


def _device(name: str):
    from faceanim.utils.device import pick_device

    return pick_device(name)


@click.group()
def toon() -> None:
    """Build the ToonFace default bundle: render, train-clip, train-generator, train-motion, build-bundle; and
    train-evaluator, the factor regressor behind the objective metrics; motion-grid, a faces × prompts table."""


@toon.command()
@faces_option(16, help="Faces to render.")
@click.option("--seed", default=0, show_default=True)
@out_option("toon_grid.png", help="Grid PNG.")
@click.option("--size", default=128, show_default=True, type=click.IntRange(8), help="Side of each face (px).")
def render(faces: int, seed: int, out: str, size: int) -> None:
    """Render random faces with expressions into a grid (a look at the training distribution)."""
    from faceanim.toon.grids import render_grid

    click.echo(f"wrote {render_grid(out, faces=faces, seed=seed, size=size)}")


@toon.command("motion-grid")
@bundle_option()
@prompt_option(required=False, help="Columns; repeat for several (default: the bundle's example prompts).")
@click.option("--faces", default=6, show_default=True, type=click.IntRange(1, 64), help="Rows: this many faces.")
@click.option("--seed", default=0, show_default=True, help="Seed of the first row's face (then +1 per row).")
@frames_option(help="Frames per animation; the table shows the last (default: the bundle's).")
@out_option("motion_grid.png", help="PNG table.")
@click.option("--video", default=None, metavar="PATH",
              help="Also write the moving table (.mp4 or .gif): every cell its whole animation.")
@device_option
def motion_grid(bundle: str | None, prompts: tuple[str, ...], faces: int, seed: int, frames: int | None, out: str,
                video: str | None, device: str) -> None:
    """A faces × prompts table of a latent-mode bundle: each row one random face (its seed), the first column that
    face, then the last frame of its animation for each prompt (as `faceanim animate --seed S -p PROMPT`)."""
    from faceanim.toon.grids import motion_grid as table

    res = table(out, bundle=bundle, prompts=list(prompts), faces=faces, seed=seed, frames=frames,
                device=_device(device), video=video)
    click.echo(f"wrote {res.path} ({res.faces} faces × {len(res.prompts)} prompts, frame {res.frames} of {res.frames})")
    if res.video:
        click.echo(f"wrote {res.video} (the same table, moving)")


@toon.command("train-generator")
@out_option("runs/toonface/generator", help="Run folder.")
@click.option("--steps", default=8000, show_default=True, type=click.IntRange(1), help="Optimisation steps.")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.")
@faces_option(256, help="Held-out faces of the periodic PSNR.")
@click.option("--beta1", default=0.0, show_default=True, help="Adam β₁ (β₂ = 0.99).")
@click.option("--mapping-lr-multiplier", default=0.1, show_default=True,
              help="Equalized-LR multiplier of the mapping network (a resumed run is rescaled to it).")
@click.option("--expression-weight", default=0.0, show_default=True,
              help="Extra loss weight on the pixels that expressions and attributes change (0: plain loss).")
@click.option("--init-from", default=None, type=click.Path(exists=True, file_okay=False),
              help="Start a new run from a generator folder or a training checkpoint folder.")
@click.option("--focus-keys", default=None, metavar="KEY,…",
              help="Prompt keys (e.g. wink,cry) shown alone on a neutral face in --focus-share of every batch.")
@click.option("--focus-share", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="With --focus-keys: the share of every batch they take.")
@click.option("--channels", default=None, metavar="RES=N,…",
              help="With --init-from: widen these resolutions to N feature maps, keeping the function "
                   "(e.g. 32=128,64=64).")
def train_generator(out: str, steps: int, batch_size: int, lr: float, seed: int, resume: bool, faces: int,
                    beta1: float, mapping_lr_multiplier: float, expression_weight: float, init_from: str | None,
                    focus_keys: str | None, focus_share: float, channels: str | None) -> None:
    """Train the 128 px StyleGAN2 to reproduce the renderer from encoded factors (supervised, no discriminator)."""
    from faceanim.toon.train_generator import (
        GeneratorRunConfig,
        GeneratorTrainConfig,
        parse_channels,
    )
    from faceanim.toon.train_generator import train_generator as train

    run = GeneratorRunConfig(
        out=out, resume=resume, init_from=init_from, channels=parse_channels(channels) if channels else None,
        mapping_lr_multiplier=mapping_lr_multiplier, eval_faces=faces,
        train=GeneratorTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, betas=(beta1, 0.99),
                                   expression_weight=expression_weight,
                                   focus_keys=tuple(focus_keys.split(",")) if focus_keys else (),
                                   focus_share=focus_share if focus_keys else 0.0))
    res = train(run, log=click.echo)
    click.echo(f"done in {res.seconds:.0f} s; generator → {res.generator_dir}")


@toon.command("eval-generator")
@click.argument("generator", type=click.Path(exists=True, file_okay=False))
@faces_option(1000, help="Held-out faces.")
@click.option("--grid", default=None, help="Also write a comparison grid PNG (renderer row / generator row).")
@click.option("--evaluator", default="bundle", show_default=True,
              help="ToonFace evaluator folder for the per-expression check ('bundle': the toonface bundle's; "
                   "'none': skip).")
@click.option("--faces-per-key", default=32, show_default=True, type=click.IntRange(1),
              help="Held-out identities per expression key.")
@device_option
def eval_generator(generator: str, faces: int, grid: str | None, evaluator: str, faces_per_key: int,
                   device: str) -> None:
    """PSNR of the generator against the renderer on held-out draws (overall, and on the pixels that expressions
    change), and how well it draws each expression: the evaluator's reading of the prompted factor on the
    generator's drawing of it, against its reading on the renderer's. Prints JSON."""
    from faceanim.toon.generator_eval import evaluate_generator

    res = evaluate_generator(generator, faces=faces, evaluator=None if evaluator == "none" else evaluator,
                             faces_per_key=faces_per_key, grid=grid, device=_device(device))
    click.echo(json.dumps(res))
    if grid:
        click.echo(f"wrote {grid}", err=True)  # stdout is the JSON


@toon.command("eval-clip")
@click.argument("clip_dir", metavar="CLIP", type=click.Path(exists=True, file_okay=False))
@click.option("--generator", default=None, type=click.Path(exists=True, file_okay=False),
              help="Also score the ToonFace generator's drawings of the same faces.")
@click.option("--faces-per-key", default=64, show_default=True, type=click.IntRange(1),
              help="Held-out faces per expression key.")
@click.option("--face-set", default=0, show_default=True, type=click.IntRange(0),
              help="Which set of held-out faces: 0 is the one stages are compared on, 1, 2, … are fresh sets.")
@device_option
def eval_clip(clip_dir: str, generator: str | None, faces_per_key: int, face_set: int, device: str) -> None:
    """Zero-shot top-1 of a ToonFace CLIP on held-out renders (and on a generator's drawings of them), as JSON."""
    from faceanim.toon.zero_shot import evaluate_clip

    res = evaluate_clip(clip_dir, generator, faces_per_key=faces_per_key, face_set=face_set, device=_device(device))
    click.echo(json.dumps(res, indent=1))


@toon.command("train-clip")
@out_option("runs/toonface/clip", help="Run folder.")
@click.option("--steps", default=3000, show_default=True, type=click.IntRange(1), help="Optimisation steps.")
@click.option("--batch-size", default=96, show_default=True)
@click.option("--lr", default=5e-4, show_default=True)
@click.option("--image-size", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.")
@click.option("--faces-per-key", default=64, show_default=True, type=click.IntRange(1),
              help="Held-out faces per expression key in the final zero-shot eval.")
@click.option("--short-captions", default=0.0, show_default=True,
              help="Share of captions that name only the strongest expression.")
@click.option("--blur", default=0.0, show_default=True, help="Share of renders blurred (robustness to soft images).")
@click.option("--generator-mix", default=0.0, show_default=True,
              help="Share of images drawn by the generator in --generator (same parameters and captions).")
@click.option("--generator", "generator_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="ToonFace generator folder for --generator-mix (re-read when it changes).")
@click.option("--generator-pool", default=0, show_default=True, type=click.IntRange(0),
              help="Draw this many generator faces once and sample the --generator-mix share from them (0: draw per batch).")
@click.option("--init-from", default=None, type=click.Path(exists=True, file_okay=False),
              help="Start from the weights of a trained CLIP folder (a new run: fresh optimizer and schedule).")
@click.option("--same-face", default=0.0, show_default=True,
              help="Share of each batch made of one identity drawn with four confusable expressions (hard negatives).")
@click.option("--text-noise", default=0.0, show_default=True,
              help="Share of captions with 1-4 random words that no caption uses inserted (robustness to new wording).")
@click.option("--word-shift", default=0.0, show_default=True,
              help="Share of captions whose words are rotated so that any word may start them (position robustness).")
def train_clip(out: str, steps: int, batch_size: int, lr: float, image_size: int, seed: int, resume: bool,
               faces_per_key: int, short_captions: float, blur: float, generator_mix: float,
               generator_dir: str | None, generator_pool: int, init_from: str | None, same_face: float,
               text_noise: float, word_shift: float) -> None:
    """Train the small ToonFace CLIP contrastively on renders + generated captions."""
    from faceanim.toon.clip_data import ClipPairConfig
    from faceanim.toon.train_clip import ClipRunConfig, ClipTrainConfig
    from faceanim.toon.train_clip import train_clip as train

    run = ClipRunConfig(
        out=out, init_from=init_from, resume=resume, eval_faces_per_key=faces_per_key,
        train=ClipTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed),
        data=ClipPairConfig(image_size=image_size, short_captions=short_captions, blur=blur,
                            generator_mix=generator_mix, generator_dir=generator_dir, generator_pool=generator_pool,
                            same_face=same_face, text_noise=text_noise, word_shift=word_shift))
    res = train(run, log=click.echo)
    h = res.zero_shot["heldout_template"]
    click.echo(f"done in {res.seconds:.0f} s; zero-shot top-1 on held-out renders, held-out sentence frames: mean "
               f"{h['top1_mean']:.3f}, worst key {h['top1_min']:.3f} (unseen synonyms: "
               f"{res.zero_shot['heldout_synonyms']['top1_mean']:.3f}); CLIP → {res.clip_dir}")


@toon.command("train-motion")
@click.option("--generator", default=None, type=click.Path(exists=True, file_okay=False),
              help="Generator folder (default: the toonface bundle's).")
@click.option("--clip", "clip_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Conditioning CLIP (E_t, E_v), the one the bundle ships with the motion model "
                   "(default: the toonface bundle's).")
@click.option("--loss-clip", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Frozen CLIP of the contrastive loss (default: --clip). Repeat it for an ensemble: the loss is "
                   "averaged over the CLIPs.")
@out_option("runs/toonface/motion", help="Parent of the numbered run folder.")
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(1), help="Optimisation steps.")
@click.option("--batch-size", default=4, show_default=True)
@click.option("--prompt-keys", default=None,
              help="Comma-separated expression keys to train on (default: all), e.g. smile,laugh,tilt_left.")
@click.option("--paraphrases", is_flag=True,
              help="Each key's prompt lists its training wordings (\"smiling | grinning | happy\"), one drawn per use.")
@click.option("--freeze-factors", default=None, metavar="FACTOR,…",
              help="Identity factors the motion must not change, e.g. eye_size,eye_color: their mean W directions "
                   "in the generator are projected off every motion offset (saved in the motion model).")
@device_option
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Further TrainConfig overrides.")
def train_motion(generator: str | None, clip_dir: str | None, loss_clip: tuple[str, ...], out: str, steps: int,
                 batch_size: int, prompt_keys: str | None, paraphrases: bool, freeze_factors: str | None,
                 device: str, overrides: tuple[str, ...]) -> None:
    """Train the motion model with the paper's settings in sampled-latent mode (IV-A-1) on the ToonFace generator."""
    from faceanim.toon.train_motion import MotionRunConfig
    from faceanim.toon.train_motion import train_motion as train

    keys = [k.strip() for k in prompt_keys.split(",")] if prompt_keys else None
    run = MotionRunConfig(out=out, generator=generator, clip=clip_dir, steps=steps,
                          loss_clip=list(loss_clip) if len(loss_clip) > 1 else (loss_clip or [None])[0],
                          batch_size=batch_size, prompt_keys=keys, paraphrases=paraphrases, device=device,
                          overrides=list(overrides),
                          freeze_factors=[f.strip() for f in freeze_factors.split(",")] if freeze_factors else None)
    run_dir = train(run, log=click.echo)
    click.echo(f"motion model → {run_dir / 'motion_model'}")


@toon.command("build-bundle")
@click.option("--generator", default=None, type=click.Path(exists=True, file_okay=False),
              help="Generator folder (default: the toonface bundle's).")
@click.option("--motion", required=True, type=click.Path(exists=True, file_okay=False),
              help="The motion run's motion_model/ folder.")
@click.option("--out", "-o", required=True, help="Bundle folder to write.")  # out_option(required=True) lets None in
@click.option("--model-card", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--evaluator", default=None, type=click.Path(exists=True, file_okay=False),
              help="The ground-truth evaluator folder (`toon train-evaluator`), shipped for `faceanim evaluate`.")
@click.option("--supported-prompts", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Prompt file (one per line) the motion model was trained and checked on; the first six become "
                   "the example prompts. Calibrate the far-prompt note afterwards with `faceanim bundle "
                   "calibrate-prompts`.")
@click.option("--force", is_flag=True, help="Replace an existing folder, even the installed package's bundle.")
def build_bundle(generator: str | None, motion: str, out: str, model_card: str | None, evaluator: str | None,
                 supported_prompts: str | None, force: bool) -> None:
    """Assemble the ToonFace bundle with fp16 weights, and report how far fp16 moves the outputs (JSON)."""
    from faceanim.data.prompts import load_prompts
    from faceanim.toon.bundle import ToonBundleConfig, build_toon_bundle

    prompts = load_prompts(supported_prompts) if supported_prompts else None
    report = build_toon_bundle(ToonBundleConfig(out=out, motion=motion, generator=generator, evaluator=evaluator,
                                                model_card=model_card, supported_prompts=prompts, force=force))
    click.echo(json.dumps(report))


@toon.command("train-evaluator")
@out_option("runs/toonface/evaluator", help="Run folder.")
@click.option("--steps", default=1800, show_default=True, type=click.IntRange(1),
              help="Optimisation steps (≈10 min on one CPU thread shared with other jobs: 0.31 s/step at batch 64, "
                   "incl. rendering).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.")
@click.option("--width", default=16, show_default=True, help="CNN width (channels after the stem).")
@click.option("--render-size", default=128, show_default=True, help="Resolution training faces are rendered at.")
@click.option("--blur-prob", default=0.5, show_default=True,
              help="Share of renders blurred (σ up to 1.5 px at 128 px).")
@faces_option(1000, help="Held-out faces for the final per-factor errors.")
@click.option("--faces-per-key", default=100, show_default=True, type=click.IntRange(1),
              help="Held-out identities per prompt key in the final metrics.")
def train_evaluator(out: str, steps: int, batch_size: int, lr: float, seed: int, resume: bool, width: int,
                    render_size: int, blur_prob: float, faces: int, faces_per_key: int) -> None:
    """Train the ground-truth evaluator (a CNN reading the factors back from an image) on renders; export
    <out>/evaluator/ and write held-out metrics to <out>/metrics.json."""
    from faceanim.toon.evaluator import EvaluatorConfig
    from faceanim.toon.train_evaluator import EvaluatorRunConfig, EvaluatorTrainConfig
    from faceanim.toon.train_evaluator import train_evaluator as train

    run = EvaluatorRunConfig(out=out, model=EvaluatorConfig(width=width), resume=resume, eval_faces=faces,
                             eval_faces_per_key=faces_per_key,
                             train=EvaluatorTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                                        render_size=render_size, blur_prob=blur_prob))
    res = train(run, log=click.echo)
    s = res.metrics["summary"]
    click.echo(f"done in {res.seconds:.0f} s; held-out MAE identity {s['identity_mae_mean']}, expression "
               f"{s['expression_mae_mean']}, attribute {s['attribute_mae_mean']}; prompt vs neutral accuracy mean "
               f"{s['prompt_accuracy_mean']} (worst {s['prompt_accuracy_min']}; blurred "
               f"{s['blurred_prompt_accuracy_mean']}); evaluator → {res.evaluator_dir}")

"""``faceanim toon …``: the reproducible commands that build the ToonFace default bundle."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

EVAL_SEED = 1_000_000_007  # held-out draws: training batches use seeds seed·1e6+step, far from this one


@click.group()
def toon() -> None:
    """Build the ToonFace default bundle: render, train-clip, train-generator, train-motion, build-bundle; and
    train-evaluator, the factor regressor behind the objective metrics; motion-grid, a faces × prompts table."""


@toon.command()
@click.option("--n", default=16, show_default=True, help="Faces.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", default="toon_grid.png", show_default=True, help="Grid PNG.")
@click.option("--size", default=128, show_default=True)
def render(n: int, seed: int, out: str, size: int) -> None:
    """Render random faces with expressions into a grid (a look at the training distribution)."""
    import torch
    from faceanim.toon.recipes import training_params
    from faceanim.toon.renderer import render as draw
    from faceanim.utils.images import save_grid

    p = training_params(n, torch.Generator().manual_seed(seed))
    imgs = draw(p, size=size)
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    pad = rows * cols - n
    if pad:
        imgs = torch.cat([imgs, torch.ones(pad, *imgs.shape[1:])])
    save_grid(imgs.reshape(rows, cols, *imgs.shape[1:]), out)
    click.echo(f"wrote {out}")


@toon.command("motion-grid")
@click.option("-b", "--bundle", default=None, help="Bundle name or folder (default: toonface).")
@click.option("-p", "--prompt", "prompts", multiple=True, help="Columns (default: the bundle's example prompts).")
@click.option("--faces", default=6, show_default=True, type=click.IntRange(1, 64), help="Rows: this many faces.")
@click.option("--first-seed", default=0, show_default=True, help="Seed of the first row's face (then +1 per row).")
@click.option("-n", "--frames", default=None, type=click.IntRange(2, 256),
              help="Frames per animation; the table shows the last (default: the bundle's).")
@click.option("-o", "--out", default="motion_grid.png", show_default=True, help="PNG table.")
def motion_grid(bundle: str | None, prompts: tuple[str, ...], faces: int, first_seed: int, frames: int | None,
                out: str) -> None:
    """A faces × prompts table of a latent-mode bundle: each row one random face (its seed), the first column that
    face, then the last frame of its animation for each prompt (as `faceanim animate --seed S -p PROMPT`)."""
    import torch
    from tqdm.auto import tqdm

    from faceanim.bundles import read_bundle_info, resolve_bundle
    from faceanim.outputs import check_output_path, write_image_table
    from faceanim.pipelines import AnimationPipeline

    check_output_path(out, allowed=(".png",))
    info = read_bundle_info(resolve_bundle(bundle))
    if info.mode != "latent":
        raise click.UsageError(f"bundle {info.name} animates photos; motion-grid draws faces from its generator")
    prompts = list(prompts) or list(info.example_prompts)
    if not prompts:
        raise click.UsageError("give prompts with -p (the bundle lists no example prompts)")
    pipe = AnimationPipeline.from_bundle(bundle)
    n = frames or info.num_frames
    rows = []  # per face: the shared first frame, then each prompt's last frame
    for seed in tqdm(range(first_seed, first_seed + faces), desc="faces", unit="face", leave=False):
        video = pipe.batch(prompts, seed=seed, num_frames=n).frames  # [P, T, 3, H, W]
        rows.append(torch.cat([video[:1, 0], video[:, -1]]))
    write_image_table(rows, out, column_labels=["face", *prompts])
    click.echo(f"wrote {out} ({faces} faces × {len(prompts)} prompts, frame {n} of {n})")


@toon.command("train-generator")
@click.option("--out", default="work/toonface/generator", show_default=True, help="Run folder.")
@click.option("--steps", default=8000, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.")
@click.option("--eval-size", default=256, show_default=True, help="Held-out draws for the periodic PSNR.")
@click.option("--beta1", default=0.0, show_default=True, help="Adam β₁ (β₂ = 0.99).")
@click.option("--mapping-lr-multiplier", default=0.1, show_default=True,
              help="Equalized-LR multiplier of the mapping network (a resumed run is rescaled to it).")
@click.option("--expression-weight", default=0.0, show_default=True,
              help="Extra loss weight on the pixels that expressions and attributes change (0: plain loss).")
@click.option("--init-from", default=None, type=click.Path(exists=True, file_okay=False),
              help="Start a new run from a generator folder or a training checkpoint folder.")
@click.option("--channels", default=None, metavar="RES=N,…",
              help="With --init-from: widen these resolutions to N feature maps, keeping the function "
                   "(e.g. 32=128,64=64).")
def train_generator(out: str, steps: int, batch_size: int, lr: float, seed: int, resume: bool, eval_size: int,
                    beta1: float, mapping_lr_multiplier: float, expression_weight: float, init_from: str | None,
                    channels: str | None) -> None:
    """Train the 128 px StyleGAN2 to reproduce the renderer from encoded factors (supervised, no discriminator)."""
    import dataclasses
    from functools import partial

    import torch
    from faceanim.models.stylegan2 import Generator, GeneratorConfig
    from faceanim.toon.latent import Z_DIM
    from faceanim.toon.recipes import generator_batch
    from faceanim.toon.train_generator import (GeneratorTrainConfig, GeneratorTrainer, load_generator_run,
                                               rescale_mapping_lr, toon_generator_config)
    from faceanim.utils.perf import tune_allocator

    if channels and not init_from:
        raise click.UsageError("--channels widens a trained generator: give --init-from")
    if init_from and resume:
        raise click.UsageError("--init-from starts a new run; --resume continues one: give one of them")
    tune_allocator()
    torch.manual_seed(seed)
    checkpoint = Path(out) / "checkpoint" / "state.json"
    if resume and checkpoint.is_file():  # the run's own architecture (it may have been widened)
        gcfg = json.loads(checkpoint.read_text())["generator"]
        G = Generator(GeneratorConfig(**{**gcfg, "mapping_lr_multiplier": mapping_lr_multiplier}))
    elif init_from:
        from faceanim.models.stylegan2.surgery import widen

        G0 = load_generator_run(init_from)
        if channels:
            try:
                G0 = widen(G0, {int(k): int(v) for k, v in (x.split("=") for x in channels.split(","))}, seed=seed)
            except ValueError as exc:
                raise click.UsageError(f"--channels: {exc}") from None
        G = Generator(dataclasses.replace(G0.config, mapping_lr_multiplier=mapping_lr_multiplier))
        G.load_state_dict(G0.state_dict())
        rescale_mapping_lr(G, None, G0.config.mapping_lr_multiplier, mapping_lr_multiplier)
        click.echo(f"started from {init_from} (channels {G.config.channels})")
    else:
        G = Generator(toon_generator_config(Z_DIM, mapping_lr_multiplier=mapping_lr_multiplier))
    cfg = GeneratorTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, eval_size=eval_size,
                               betas=(beta1, 0.99), expression_weight=expression_weight)
    # the held-out batch always carries the animated-region mask, for the periodic psnr_changed
    eval_batch = generator_batch(eval_size, torch.Generator().manual_seed(EVAL_SEED), expression_weight=1.0)
    trainer = GeneratorTrainer(G, partial(generator_batch, expression_weight=cfg.expression_weight), cfg, out,
                               eval_batch=eval_batch)
    if resume:
        click.echo(f"resumed at step {trainer.resume()}")
    t0 = time.perf_counter()
    trainer.train()
    export = Path(out) / "generator"
    with torch.no_grad():
        G.mapping.w_avg.copy_(_toon_w_avg(G))
    G.eval().save_pretrained(export)
    click.echo(f"done in {time.perf_counter() - t0:.0f} s; generator → {export}")


def _toon_w_avg(G):
    """Mean W of neutral ToonFace identities (truncation centre for the "toonface" sampler)."""
    import torch
    from faceanim.toon.latent import Z_DIM, sample_identity_z

    z = sample_identity_z(2000, Z_DIM, torch.Generator().manual_seed(EVAL_SEED + 1))
    return G.mapping(z).mean(0)


@toon.command("eval-generator")
@click.argument("generator", type=click.Path(exists=True, file_okay=False))
@click.option("--n", default=1000, show_default=True, help="Held-out draws.")
@click.option("--grid", default=None, help="Also write a comparison grid PNG (renderer row / generator row).")
@click.option("--evaluator", default="bundle", show_default=True,
              help="ToonFace evaluator folder for the per-expression check ('bundle': the default bundle's; "
                   "'none': skip).")
@click.option("--per-key", default=32, show_default=True, help="Held-out identities per expression key.")
def eval_generator(generator: str, n: int, grid: str | None, evaluator: str, per_key: int) -> None:
    """PSNR of the generator against the renderer on held-out draws (overall, and on the pixels that expressions
    change), and how well it draws each expression: the evaluator's reading of the prompted factor on the
    generator's drawing of it, against its reading on the renderer's."""
    import torch
    from faceanim.models.stylegan2 import Generator
    from faceanim.toon.recipes import generator_batch
    from faceanim.toon.train_generator import psnr
    from faceanim.utils.images import save_grid

    G = Generator.from_pretrained(generator)
    z, target, weight = generator_batch(n, torch.Generator().manual_seed(EVAL_SEED + 7), expression_weight=1.0)
    with torch.no_grad():
        fake = torch.cat([G(z[i:i + 50]).clamp(-1, 1) for i in range(0, n, 50)])
    vals = psnr(fake, target)
    mask = (weight > 1).expand_as(target)
    changed = 10 * torch.log10(4.0 / (fake - target)[mask].square().mean())
    res = {"n": n, "psnr_mean_db": round(float(vals.mean()), 2), "psnr_median_db": round(float(vals.median()), 2),
           "psnr_p10_db": round(float(vals.quantile(0.1)), 2), "psnr_changed_pixels_db": round(float(changed), 2)}
    if evaluator != "none":
        res["drawn_level"] = _drawn_levels(G, evaluator, per_key)
    click.echo(json.dumps(res))
    if grid:
        save_grid(torch.stack([target[:8], fake[:8]]), grid)
        click.echo(f"wrote {grid}")


def _drawn_levels(G, evaluator: str, per_key: int) -> dict:
    """Per prompt key: (evaluator reading of the factor on G's drawing, on the renderer's) at the key's target,
    signed towards the target (1 = fully there), on ``per_key`` held-out neutral identities."""
    import torch
    from faceanim.bundles import PACKAGED
    from faceanim.toon.captions import PROMPT_TARGETS
    from faceanim.toon.evaluator import ToonEvaluator
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.latent import encode
    from faceanim.toon.renderer import render

    E = ToonEvaluator.from_pretrained(PACKAGED / "toonface" / "evaluator" if evaluator == "bundle" else evaluator)
    faces = ToonParams.sample(per_key, generator=torch.Generator().manual_seed(EVAL_SEED + 11))
    out = {}
    with torch.no_grad():
        for key, (factor, value) in PROMPT_TARGETS.items():
            p = faces.replace(**{factor: value})
            drawn = E.factor(G(encode(p)).clamp(-1, 1), factor) * (1 if value > 0 else -1) / abs(value)
            rendered = E.factor(render(p, size=G.img_resolution), factor) * (1 if value > 0 else -1) / abs(value)
            out[key] = [round(float(drawn.mean()), 2), round(float(rendered.mean()), 2)]
    return out


CONFUSABLE = (("gaze_left", "gaze_right"), ("pout", "surprise"), ("angry", "sad"), ("smile", "laugh"),
              ("blush", "neutral"), ("eyes_closed", "wink"), ("tilt_left", "tilt_right"), ("grey_hair", "age"),
              ("cry", "sad"), ("gaze_left", "neutral"), ("gaze_right", "neutral"), ("pout", "smile"))


def _same_face_groups(groups: int, g, rng):
    """Parameters of ``4 · groups`` faces + short captions: each group is one neutral identity four times, with
    the keys of two pairs from ``CONFUSABLE`` (looking left / looking right, pouting / surprised, …) at intensity
    U(0.7, 1). Within a group only the expression differs, so the contrastive loss can only tell the four apart
    by it: hard negatives for the keys a CLIP otherwise reads as noise. ``g``: a torch.Generator; ``rng``: a
    random.Random for the wording. Returns (ToonParams, captions)."""
    import torch

    from faceanim.toon.captions import NOUNS, PROMPT_TARGETS, prompt
    from faceanim.toon.factors import SLICES, ToonParams

    params, texts = ToonParams(ToonParams.sample(groups, generator=g).vector.repeat_interleave(4, 0)), []
    level = 0.7 + 0.3 * torch.rand(4 * groups, generator=g)
    for j in range(groups):
        order = torch.randperm(len(CONFUSABLE), generator=g).tolist()
        first = CONFUSABLE[order[0]]
        second = next(CONFUSABLE[i] for i in order[1:] if not set(CONFUSABLE[i]) & set(first))
        female = float(params["lashes"][4 * j]) >= 0.5
        for k, key in enumerate(first + second):  # four distinct keys
            row = 4 * j + k
            if key != "neutral":
                factor, value = PROMPT_TARGETS[key]
                params.vector[row, SLICES[factor].start] = value * float(level[row])
            noun = rng.choice(NOUNS["female" if female else "male"] + NOUNS["any"])
            texts.append(f"The cartoon {noun} is {prompt(key, rng, 'train')}")
    return params, texts


def _clip_pairs(image_size: int, short_captions: float = 0.0, context_length: int = 32, blur: float = 0.0,
                generator_mix: float = 0.0, generator_dir: str | None = None, generator_pool: int = 0,
                same_face: float = 0.0, text_noise: float = 0.0, word_shift: float = 0.0):
    """Renders + captions. A share ``short_captions`` of the captions names only the strongest expression
    ("The cartoon girl is winking"), which concentrates the contrastive signal on what the motion model needs;
    so does any caption too long for the text context (instead of truncating it mid-phrase). A share ``blur`` of
    the renders is Gaussian-blurred (σ uniform in [0.3, 1.2] px at ``image_size``) so that the CLIP also reads the
    softer images of a generator that has not converged to the renderer's sharpness. A share ``generator_mix`` of
    the images is drawn by the ToonFace generator in ``generator_dir`` from the same parameters (captioned alike),
    so that the CLIP reads what that generator actually draws; the folder is re-read when it changes, so a
    generator still in training can be exported into it. With ``generator_pool`` > 0 the generator draws that many
    faces once (a fixed seed) and the batches' generator share is picked from them (≈3× cheaper per step). A share
    ``same_face`` of each batch is made of same-identity groups of four (:func:`_same_face_groups`), the share
    ``generator_mix`` of those groups drawn by the generator (from a pool of ``generator_pool // 4`` groups). A share
    ``text_noise`` of the captions gets 1–4 random words that no caption uses inserted (:func:`add_filler`), so
    that the text tower learns to read the expression phrase in sentence frames it has never seen; a share
    ``word_shift`` has its words rotated so that the phrase can stand first (:func:`shift_words`)."""
    import torch
    import random

    from open_clip.tokenizer import SimpleTokenizer

    from faceanim.toon.captions import NOUNS, active_keys, caption, prompt
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.renderer import render as draw

    tokenizer = SimpleTokenizer()
    cache: dict = {"mtime": None, "G": None}

    def generator():
        from faceanim.models.stylegan2 import Generator

        try:
            mtime = (Path(generator_dir) / "model.safetensors").stat().st_mtime
            if cache["mtime"] != mtime:
                cache["G"], cache["mtime"] = Generator.from_pretrained(generator_dir), mtime
        except (OSError, ValueError):  # the folder is being replaced: keep the generator read last
            if cache["G"] is None:
                raise
        return cache["G"]

    def draw_downsized(z):
        """The generator's drawings of ``z``, resized to the CLIP's input size."""
        with torch.no_grad():
            fake = generator()(z).clamp(-1, 1)
        return torch.nn.functional.interpolate(fake, size=(image_size, image_size), mode="bilinear",
                                               antialias=True, align_corners=False)

    def make_pool():
        from faceanim.toon.latent import encode

        pool_g = torch.Generator().manual_seed(EVAL_SEED - 1)
        params = ToonParams.sample(generator_pool, generator=pool_g, expressions=True, attributes=True)
        z = encode(params)
        cache["pool"] = (params.vector, torch.cat([draw_downsized(z[i:i + 64]) for i in range(0, generator_pool, 64)]))

    def same_face_pool():
        """Generator drawings of ``generator_pool // 4`` same-face groups, drawn once (a fixed seed)."""
        if "groups" not in cache:
            from faceanim.toon.latent import encode

            pool_g = torch.Generator().manual_seed(EVAL_SEED - 2)
            params, texts = _same_face_groups(generator_pool // 4, pool_g, random.Random(EVAL_SEED - 2))
            z = encode(params)
            cache["groups"] = (torch.cat([draw_downsized(z[i:i + 64]) for i in range(0, len(z), 64)]), texts)
        return cache["groups"]

    def pairs(n: int, g: torch.Generator):
        images, texts = grouped_pairs(n, g)
        if text_noise > 0 or word_shift > 0:
            from faceanim.toon.captions import add_filler, shift_words

            rng = random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
            noisy = [shift_words(t, rng) if word_shift > 0 and rng.random() < word_shift else t for t in texts]
            noisy = [add_filler(t, rng) if text_noise > 0 and rng.random() < text_noise else t for t in noisy]
            # a caption the noise makes too long for the text context keeps its clean wording
            texts = [t if t == old or len(tokenizer.encode(t)) + 2 <= context_length else old
                     for t, old in zip(noisy, texts)]
        return images, texts

    def grouped_pairs(n: int, g: torch.Generator):
        groups = int(n * same_face) // 4
        if not groups:
            return mixed_pairs(n, g)
        images, texts = mixed_pairs(n - 4 * groups, g)
        # the generator's share of the groups comes from its pool (or is drawn now), the rest is rendered
        drawn = int(round(groups * generator_mix)) if generator_mix > 0 else 0
        params, group_texts = _same_face_groups(groups - drawn, g, random.Random(int(
            torch.randint(0, 2**31 - 1, (1,), generator=g))))
        parts, all_texts = [images, draw(params, size=image_size)], texts + group_texts
        if drawn and generator_pool >= 4:
            pool_images, pool_texts = same_face_pool()
            for j in torch.randint(0, len(pool_texts) // 4, (drawn,), generator=g).tolist():
                parts.append(pool_images[4 * j:4 * j + 4])
                all_texts += pool_texts[4 * j:4 * j + 4]
        elif drawn:
            from faceanim.toon.latent import encode

            params, more = _same_face_groups(drawn, g, random.Random(int(torch.randint(0, 2**31 - 1, (1,),
                                                                                             generator=g))))
            parts.append(draw_downsized(encode(params)))
            all_texts += more
        return torch.cat(parts), all_texts

    def mixed_pairs(n: int, g: torch.Generator):
        p = ToonParams.sample(n, generator=g, expressions=True, attributes=True)  # clear expressions (≥ 0.3)
        pooled = None
        if generator_pool > 0 and generator_mix > 0:
            if "pool" not in cache:
                make_pool()
            k = int(round(n * generator_mix))
            idx = torch.randint(0, generator_pool, (k,), generator=g)
            pooled = cache["pool"][1][idx]
            p = ToonParams(torch.cat([p.vector[:n - k], cache["pool"][0][idx]]))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        texts = caption(p, rng=seed, split="train")
        rng = random.Random(seed + 1)
        for i in range(n):
            short = rng.random() < short_captions
            if short or len(tokenizer.encode(texts[i])) + 2 > context_length:
                key = active_keys(p, i)[0][0]
                noun = rng.choice(NOUNS["female" if float(p["lashes"][i]) >= 0.5 else "male"] + NOUNS["any"])
                texts[i] = f"The cartoon {noun} is {prompt(key, rng, 'train')}"
        if pooled is not None:
            images = torch.cat([draw(ToonParams(p.vector[:n - len(pooled)]), size=image_size), pooled])
        else:
            images = draw(p, size=image_size)
        if generator_mix > 0 and pooled is None:
            from faceanim.toon.latent import encode

            pick = torch.nonzero(torch.rand(n, generator=g) < generator_mix).flatten()
            if len(pick):
                images[pick] = draw_downsized(encode(p)[pick])
        if blur > 0:
            from torchvision.transforms.functional import gaussian_blur

            pick = torch.rand(n, generator=g) < blur
            sigmas = 0.3 + 0.9 * torch.rand(n, generator=g)
            for i in torch.nonzero(pick).flatten().tolist():
                images[i] = gaussian_blur(images[i], kernel_size=7, sigma=float(sigmas[i]))
        return images, texts

    return pairs


ZERO_SHOT_FRAMES = {
    # Sentence frames for zero-shot classification; the first two are held-out caption templates (never trained on).
    "heldout_template": ("{}: a person drawn in toon style", "an illustration showing a person, {}"),
    "motion_template": ("The cartoon person is {}.",),  # the motion model's prompt template (a training template)
}


def zero_shot_eval(clip, per_key: int = 24, keys: list[str] | None = None, generator=None,
                   face_set: int = 0) -> dict:
    """Top-1 accuracy of telling each expression key from all the others on held-out identities rendered with
    one factor at its target. Reported for held-out sentence frames around the training words (the target
    metric), for the motion model's template, and for held-out synonyms never seen in training. With a ToonFace
    ``generator``, the faces are that generator's drawings of the same parameters instead of the renderer's.
    ``face_set`` > 0 draws another set of held-out faces (set 0 is the one CLIP stages were compared on; a fresh set
    checks that a figure did not come from choosing stages on the same faces)."""
    import torch
    from faceanim.toon.captions import EXPRESSION_PROMPTS, HELDOUT_PROMPTS, PROMPT_TARGETS
    from faceanim.toon.factors import ToonParams
    from faceanim.toon.renderer import render as draw

    keys = keys or list(PROMPT_TARGETS)
    variants = {name: [[f.format(EXPRESSION_PROMPTS[k]) for f in frames] for k in keys]
                for name, frames in ZERO_SHOT_FRAMES.items()}
    variants["heldout_synonyms"] = [[f"The cartoon person is {HELDOUT_PROMPTS[k]}."] for k in keys]
    with torch.no_grad():
        feats = []
        for i, k in enumerate(keys):
            seed = EVAL_SEED + 100 + i + 7919 * face_set
            base = ToonParams.sample(per_key, generator=torch.Generator().manual_seed(seed))
            factor, value = PROMPT_TARGETS[k]
            params = base.replace(**{factor: value})
            if generator is not None:
                from faceanim.toon.latent import encode

                images = generator(encode(params)).clamp(-1, 1)
            else:
                images = draw(params, size=clip.image_size)
            feats.append(clip.encode_image(images))
        out: dict = {}
        for name, texts in variants.items():
            # one class embedding per key: the normalized mean over its sentence frames (prompt ensembling)
            txt = torch.stack([torch.nn.functional.normalize(clip.encode_text(t).mean(0), dim=0) for t in texts])
            per = {k: float(((f @ txt.t()).argmax(1) == i).float().mean()) for i, (k, f) in enumerate(zip(keys, feats))}
            out[name] = {"top1_mean": round(sum(per.values()) / len(per), 4), "top1_min": round(min(per.values()), 4),
                         "per_key": {k: round(v, 3) for k, v in per.items()}}
    return out


@toon.command("eval-clip")
@click.argument("clip_dir", metavar="CLIP", type=click.Path(exists=True, file_okay=False))
@click.option("--generator", default=None, type=click.Path(exists=True, file_okay=False),
              help="Also score the ToonFace generator's drawings of the same faces.")
@click.option("--per-key", default=64, show_default=True, help="Held-out faces per expression key.")
@click.option("--face-set", default=0, show_default=True, type=click.IntRange(0),
              help="Which set of held-out faces: 0 is the one stages are compared on, 1, 2, … are fresh sets.")
def eval_clip(clip_dir: str, generator: str | None, per_key: int, face_set: int) -> None:
    """Zero-shot top-1 of a ToonFace CLIP on held-out renders (and on a generator's drawings of them), as JSON."""
    from faceanim.encoders.clip import CLIPEncoder

    clip = CLIPEncoder.from_pretrained(clip_dir).eval()
    res = {"renderer": zero_shot_eval(clip, per_key=per_key, face_set=face_set)}
    if generator:
        from faceanim.models.stylegan2 import Generator

        res["generator"] = zero_shot_eval(clip, per_key=per_key, generator=Generator.from_pretrained(generator),
                                          face_set=face_set)
    click.echo(json.dumps(res, indent=1))


@toon.command("train-clip")
@click.option("--out", default="work/toonface/clip", show_default=True, help="Run folder.")
@click.option("--steps", default=3000, show_default=True)
@click.option("--batch-size", default=96, show_default=True)
@click.option("--lr", default=5e-4, show_default=True)
@click.option("--image-size", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True)
@click.option("--eval-per-key", default=64, show_default=True, help="Held-out renders per expression in the final eval.")
@click.option("--short-captions", default=0.0, show_default=True,
              help="Share of captions that name only the strongest expression.")
@click.option("--blur", default=0.0, show_default=True, help="Share of renders blurred (robustness to soft images).")
@click.option("--generator-mix", default=0.0, show_default=True,
              help="Share of images drawn by the generator in --generator (same parameters and captions).")
@click.option("--generator", "generator_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="ToonFace generator folder for --generator-mix (re-read when it changes).")
@click.option("--generator-pool", default=0, show_default=True,
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
               eval_per_key: int, short_captions: float, blur: float, generator_mix: float, generator_dir: str | None,
               generator_pool: int, init_from: str | None, same_face: float, text_noise: float,
               word_shift: float) -> None:
    """Train the small ToonFace CLIP contrastively on renders + generated captions."""
    import torch
    from faceanim.encoders.clip import CLIPEncoder
    from faceanim.toon.train_clip import ClipTrainConfig, ClipTrainer, toon_clip_config
    from faceanim.utils.perf import tune_allocator

    tune_allocator()
    torch.manual_seed(seed)
    if init_from:
        clip = CLIPEncoder.from_pretrained(init_from)
        if clip.image_size != image_size:  # same weights, the image tower's position embedding resampled
            click.echo(f"--init-from CLIP reads {clip.image_size} px images: resized to {image_size} px")
            clip = clip.with_image_size(image_size)
    else:
        clip = CLIPEncoder.from_config(toon_clip_config(image_size))
    if generator_mix > 0 and not generator_dir:
        raise click.UsageError("--generator-mix needs --generator")
    for name, share in (("--same-face", same_face), ("--text-noise", text_noise), ("--word-shift", word_shift)):
        if not 0.0 <= share <= 1.0:
            raise click.UsageError(f"{name} is a share in [0, 1]")
    cfg = ClipTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    pairs = _clip_pairs(image_size, short_captions, clip.context_length, blur, generator_mix, generator_dir,
                        generator_pool, same_face, text_noise, word_shift)
    trainer = ClipTrainer(clip, pairs, cfg, out,
                          evaluate=lambda c: {k: v["top1_mean"] for k, v in zero_shot_eval(c, per_key=12).items()})
    if resume:
        click.echo(f"resumed at step {trainer.resume()}")
    t0 = time.perf_counter()
    trainer.train()
    export = Path(out) / "clip"
    clip.eval().save_pretrained(export)
    ev = zero_shot_eval(clip, per_key=eval_per_key)
    (Path(out) / "zero_shot.json").write_text(json.dumps(ev, indent=1))
    h = ev["heldout_template"]
    click.echo(f"done in {time.perf_counter() - t0:.0f} s; zero-shot top-1 on held-out renders, held-out sentence "
               f"frames: mean {h['top1_mean']:.3f}, worst key {h['top1_min']:.3f} (unseen synonyms: "
               f"{ev['heldout_synonyms']['top1_mean']:.3f}); CLIP → {export}")


@toon.command("train-motion")
@click.option("--generator", default="work/toonface/generator/generator", show_default=True)
@click.option("--clip", "clip_dir", default="work/toonface/clip/clip", show_default=True,
              help="Conditioning CLIP (E_t, E_v): the one the bundle ships with the motion model.")
@click.option("--loss-clip", default=None, help="Frozen CLIP of the contrastive loss (default: --clip).")
@click.option("--out-dir", default="work/toonface/motion", show_default=True, help="Parent of the numbered run folder.")
@click.option("--steps", default=2000, show_default=True)
@click.option("--batch-size", default=4, show_default=True)
@click.option("--prompt-keys", default=None,
              help="Comma-separated expression keys to train on (default: all), e.g. smile,laugh,tilt_left.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Further TrainConfig overrides.")
def train_motion(generator: str, clip_dir: str, loss_clip: str | None, out_dir: str, steps: int, batch_size: int,
                 prompt_keys: str | None, overrides: tuple[str, ...]) -> None:
    """Train the motion model with the paper's settings in sampled-latent mode (IV-A-1) on the ToonFace generator."""
    from faceanim.toon.captions import EXPRESSION_PROMPTS
    from faceanim.toon.recipes import motion_prompts, motion_train_data
    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig, apply_overrides
    from faceanim.utils.perf import tune_allocator

    keys = [k.strip() for k in prompt_keys.split(",")] if prompt_keys else None
    unknown = [k for k in keys or () if k not in EXPRESSION_PROMPTS]
    if unknown:
        raise click.UsageError(f"unknown prompt key(s) {unknown}; known: {', '.join(EXPRESSION_PROMPTS)}")
    tune_allocator()
    data = motion_train_data(generator, clip_dir, motion_prompts(keys), out_dir, steps, batch_size,
                             loss_clip=loss_clip)
    trainer = build_trainer(TrainConfig.from_dict(apply_overrides(data, overrides)))
    click.echo(f"run folder: {trainer.run_dir}")
    trainer.train()
    click.echo(f"motion model → {trainer.run_dir / 'motion_model'}")


def _fp16_copy(src: Path, dst: Path) -> None:
    """Copy a native model folder with its float weights stored as float16 (loaders cast back to float32)."""
    import shutil

    from safetensors.torch import load_file

    from faceanim.utils.io import save_safetensors

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    for f in src.rglob("*.safetensors"):
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(f)).items()}
        save_safetensors(state, dst / f.relative_to(src))


@toon.command("build-bundle")
@click.option("--generator", default="work/toonface/generator/generator", show_default=True)
@click.option("--motion", required=True, help="The motion run's motion_model/ folder.")
@click.option("--out", default=None, help="Bundle folder (default: the package's bundles/toonface).")
@click.option("--model-card", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--evaluator", default=None, type=click.Path(exists=True, file_okay=False),
              help="The ground-truth evaluator folder (`toon train-evaluator`), shipped for `faceanim evaluate`.")
def build_bundle(generator: str, motion: str, out: str | None, model_card: str | None, evaluator: str | None) -> None:
    """Assemble the ToonFace bundle with fp16 weights, and report how far fp16 moves the outputs."""

    import torch
    from faceanim.bundles import PACKAGED, BundleInfo, KIND
    from faceanim.models.stylegan2 import Generator
    from faceanim.motion.model import LanguageGuidedAnimator
    from faceanim.toon.train_generator import psnr
    from faceanim.utils.io import atomic_dir

    out_path = Path(out) if out else PACKAGED / "toonface"
    info = BundleInfo(name="toonface", template="The cartoon person is {}.", mode="latent", truncation_psi=1.0,
                      fps=10, num_frames=16, z_sampler="toonface",
                      example_prompts=["laughing", "surprised", "going grey", "old", "tilting head to the left", "smiling"],
                      description="ToonFace: procedurally rendered cartoon faces; every network trained by "
                                  "`faceanim toon …` (see MODEL_CARD.md)",
                      components={"generator": "generator", "motion": "motion", "loss_clip": "motion/clip"})
    if evaluator:
        info.components["evaluator"] = "evaluator"
    with atomic_dir(out_path) as tmp:
        _fp16_copy(Path(generator), tmp / "generator")
        _fp16_copy(Path(motion), tmp / "motion")
        if evaluator:
            _fp16_copy(Path(evaluator), tmp / "evaluator")
        import dataclasses

        (tmp / "bundle.json").write_text(json.dumps({"kind": KIND, **dataclasses.asdict(info)}, indent=2) + "\n")
        if model_card:
            (tmp / "MODEL_CARD.md").write_text(Path(model_card).read_text())
        G32, G16 = Generator.from_pretrained(generator), Generator.from_pretrained(tmp / "generator")
        A32, A16 = LanguageGuidedAnimator.from_pretrained(motion), LanguageGuidedAnimator.from_pretrained(tmp / "motion")
    with torch.no_grad():
        from faceanim.toon.latent import Z_DIM, sample_identity_z

        z = sample_identity_z(16, Z_DIM, torch.Generator().manual_seed(EVAL_SEED + 3))
        a, b = G32(z), G16(z)
        prompts = ["smiling", "crying", "winking", "angry"]
        w = G32.to_wplus(G32.mapping(z[:4]))
        g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        wa = A32(prompts, 16, w_source=w, decay=True, generator=g()).ws
        wb = A16(prompts, 16, w_source=w, decay=True, generator=g()).ws
        fa, fb = G32.synthesis(wa[:, -1]), G16.synthesis(wb[:, -1])
    size = sum(f.stat().st_size for f in out_path.rglob("*") if f.is_file())
    report = {"bundle_mb": round(size / 1e6, 1), "fp16_vs_fp32_generator_psnr_db": round(float(psnr(b, a.clamp(-1, 1)).mean()), 1),
              "fp16_vs_fp32_last_frame_psnr_db": round(float(psnr(fb, fa.clamp(-1, 1)).mean()), 1),
              "fp16_vs_fp32_latent_max_abs": float((wa - wb).abs().max())}
    if evaluator:
        from faceanim.toon.evaluator import ToonEvaluator

        with torch.no_grad():
            pa = ToonEvaluator.from_pretrained(evaluator).eval().predict(a.clamp(-1, 1))
            pb = ToonEvaluator.from_pretrained(out_path / "evaluator").eval().predict(a.clamp(-1, 1))
        report["fp16_vs_fp32_evaluator_max_abs"] = float((pa - pb).abs().max())
    click.echo(json.dumps(report))


@toon.command("train-evaluator")
@click.option("--out", default="work/toonface/evaluator", show_default=True, help="Run folder.")
@click.option("--steps", default=1800, show_default=True,
              help="≈10 min on one CPU thread shared with other jobs (0.31 s/step at batch 64, incl. rendering).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.")
@click.option("--width", default=16, show_default=True, help="CNN width (channels after the stem).")
@click.option("--render-size", default=128, show_default=True, help="Resolution training faces are rendered at.")
@click.option("--blur-prob", default=0.5, show_default=True,
              help="Share of renders blurred (σ up to 1.5 px at 128 px).")
@click.option("--eval-n", default=1000, show_default=True, help="Held-out draws for the per-factor errors.")
@click.option("--eval-per-key", default=100, show_default=True, help="Held-out identities per prompt key.")
def train_evaluator(out: str, steps: int, batch_size: int, lr: float, seed: int, resume: bool, width: int,
                    render_size: int, blur_prob: float, eval_n: int, eval_per_key: int) -> None:
    """Train the ground-truth evaluator (a CNN reading the factors back from an image) on renders; export
    <out>/evaluator/ and write held-out metrics to <out>/metrics.json."""
    import torch
    from faceanim.toon.evaluator import EvaluatorConfig, ToonEvaluator
    from faceanim.toon.train_evaluator import EvaluatorTrainConfig, EvaluatorTrainer, heldout_metrics
    from faceanim.utils.perf import tune_allocator

    tune_allocator()
    torch.manual_seed(seed)
    model = ToonEvaluator(EvaluatorConfig(width=width))
    cfg = EvaluatorTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, render_size=render_size,
                               blur_prob=blur_prob)
    eval_seed = EVAL_SEED + 300  # held-out draws (prompt keys use the seeds just above)
    trainer = EvaluatorTrainer(model, cfg, out,
                               evaluate=lambda m: heldout_metrics(m, eval_seed, n=200, per_key=16)["summary"])
    if resume:
        click.echo(f"resumed at step {trainer.resume()}")
    t0 = time.perf_counter()
    trainer.train()
    export = Path(out) / "evaluator"
    model.eval().save_pretrained(export)
    metrics = heldout_metrics(model, eval_seed, n=eval_n, per_key=eval_per_key)
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    s = metrics["summary"]
    click.echo(f"done in {time.perf_counter() - t0:.0f} s; held-out MAE identity {s['identity_mae_mean']}, expression "
               f"{s['expression_mae_mean']}, attribute {s['attribute_mae_mean']}; prompt vs neutral accuracy mean "
               f"{s['prompt_accuracy_mean']} (worst {s['prompt_accuracy_min']}; blurred "
               f"{s['blurred_prompt_accuracy_mean']}); evaluator → {export}")

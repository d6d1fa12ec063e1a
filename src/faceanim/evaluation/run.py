"""``faceanim evaluate``: methods × prompts × faces → videos → every available metric → results.md + results.json.

Every method animates the same faces (seeds ``seed … seed+N−1`` through the bundle's generator) with the same
prompts and frame count. Per-video metrics are averaged over videos with a 95% **percentile-bootstrap**
confidence interval (2,000 resamplings of the videos, seeded), overall and per prompt; FID is one number per
method (all its frames against the real images). Seconds per video is the wall time of the method's call
(motion/optimization + synthesis) on this machine.

Real images for FID: on ToonFace, draws of the renderer with the generator's training distribution
(``toon.recipes.training_params`` rendered at the generator's resolution); on human faces, ``--real-dir``
(e.g. aligned CelebA-HQ test images), otherwise FID is skipped. Features: CLIP image features of the bundle's loss
CLIP by default (not comparable to the paper's numbers), Inception-v3 with ``--inception WEIGHTS``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from faceanim.errors import FaceanimError
from faceanim.evaluation.baselines import (METHODS, Ours, RandomMotion, StyleCLIPConfig, StyleCLIPInterpolation,
                                           motion_step_size)
from faceanim.evaluation.metrics import MetricContext, Video, bootstrap_ci, feature_stats, fid_features_of
from faceanim.evaluation.registry import get_metrics

DOMAINS = ("auto", "human", "toon")
IDENTITIES = ("auto", "dlib", "toon", "clip", "none")
GRID_FORMATS = ("mp4", "gif", "png")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# Values shown in the per-prompt tables (when measured), in this order.
HEADLINE = ("acd", "id_similarity", "clip_last", "clip_gain", "latent_accel", "pixel_flicker", "toon_success",
            "toon_level", "toon_spearman", "toon_identity_drift", "toon_off_target", "seconds")


@dataclass
class EvalConfig:
    bundle: str | None = None                  # bundle name or folder (None: the default bundle)
    methods: tuple[str, ...] = METHODS         # subset of ours, styleclip, mocogan
    prompts: tuple[str, ...] = ()              # () = the bundle's example prompts (ToonFace: every prompt key)
    faces: int = 8                             # N faces (seeds seed … seed+N−1)
    frames: int = 16                           # T frames per video (the paper compares 16)
    out: str = "results"                       # output folder (results.md, results.json, grids)
    evaluator: str | None = None               # ToonEvaluator folder (ToonFace ground truth)
    domain: str = "auto"                       # auto | human | toon (auto: toon for the toonface z sampler)
    real: int = 256                            # real images for FID
    real_dir: str | None = None                # folder of real (aligned) images for FID on human faces
    inception: str | None = None               # torch-fidelity Inception-v3 weights: FID on Inception features
    identity: str = "auto"                     # identity features for ACD: auto | dlib | toon | clip | none
    steps: int = 300                           # StyleCLIP optimization steps
    seed: int = 0                              # first face seed; also seeds the motion noise
    grid_faces: int = 4                        # faces shown in each prompt's video grid (0: no grids)
    grid_format: str = "mp4"                   # mp4 | gif | png
    save_videos: bool = False                  # also write every video (videos/METHOD/PROMPT/faceNNN.mp4)
    bootstrap: int = 2000                      # bootstrap resamplings for the confidence intervals
    confidence: float = 0.95                   # confidence level of the intervals
    device: str = "cpu"                        # torch device
    batch_size: int = 8                        # frames per generator call

    def validate(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise FaceanimError(f"unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})")
        if not self.methods:
            raise FaceanimError("give at least one method")
        if len(set(self.methods)) != len(self.methods):
            raise FaceanimError("a method is listed twice")
        if any(not p.strip() for p in self.prompts):
            raise FaceanimError("a prompt is empty")
        if self.faces < 1:
            raise FaceanimError(f"--faces must be ≥ 1, got {self.faces}")
        if not 2 <= self.frames <= 1024:
            raise FaceanimError(f"--frames must be between 2 and 1024, got {self.frames}")
        if self.real < 2:
            raise FaceanimError(f"--real must be ≥ 2 (FID needs a covariance), got {self.real}")
        if self.steps < 0:
            raise FaceanimError(f"--steps must be ≥ 0, got {self.steps}")
        if self.grid_faces < 0:
            raise FaceanimError(f"--grid-faces must be ≥ 0, got {self.grid_faces}")
        if self.domain not in DOMAINS:
            raise FaceanimError(f"--domain must be one of {', '.join(DOMAINS)}")
        if self.identity not in IDENTITIES:
            raise FaceanimError(f"--identity must be one of {', '.join(IDENTITIES)}")
        if self.grid_format not in GRID_FORMATS:
            raise FaceanimError(f"--grid-format must be one of {', '.join(GRID_FORMATS)}")
        if self.bootstrap < 100:
            raise FaceanimError("--bootstrap must be ≥ 100")
        if not 0 < self.confidence < 1:
            raise FaceanimError("confidence must be in (0, 1)")
        for label, path, want_dir in (("--evaluator", self.evaluator, True), ("--real-dir", self.real_dir, True),
                                      ("--inception", self.inception, False)):
            if path is not None and not (os.path.isdir(path) if want_dir else os.path.isfile(path)):
                raise FaceanimError(f"{label}: {'folder' if want_dir else 'file'} not found: {path}")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise FaceanimError(f"--out {out} exists and is not a folder")
        parent = out.parent if not out.exists() else out
        if not parent.is_dir():
            raise FaceanimError(f"--out: parent folder does not exist: {parent}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise FaceanimError(f"--out: folder is not writable: {parent}")


@dataclass
class Prompt:
    text: str                  # what the methods are given
    key: str | None = None     # ToonFace prompt key for the ground truth (None: no ground truth)


def resolve_prompts(cfg: EvalConfig, info, domain: str) -> tuple[list[Prompt], list[str]]:
    """Prompts to animate and notes. On ToonFace a prompt may be a key ("smile") or a known phrase ("smiling")."""
    notes: list[str] = []
    if domain != "toon":
        texts = list(cfg.prompts) or list(getattr(info, "example_prompts", None) or ["smiling"])
        return [Prompt(t) for t in texts], notes
    from faceanim.toon.captions import EXPRESSION_PROMPTS, PROMPT_TARGETS, phrase_key

    out = []
    for p in (cfg.prompts or tuple(PROMPT_TARGETS)):
        p = p.strip()
        if p in PROMPT_TARGETS:
            out.append(Prompt(EXPRESSION_PROMPTS[p], p))
        elif phrase_key(p) is not None:
            out.append(Prompt(p, phrase_key(p)))
        else:
            out.append(Prompt(p))
            notes.append(f"prompt {p!r} names no ToonFace factor: no ground truth for it")
    return out, notes


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "prompt"


def _load_evaluator(path: str):
    try:
        from faceanim.toon.evaluator import ToonEvaluator
    except ImportError as exc:
        raise FaceanimError(f"--evaluator needs faceanim.toon.evaluator ({exc})") from None
    return ToonEvaluator.from_pretrained(path)


def _real_images_toon(n: int, size: int, seed: int) -> Callable[[], Any]:
    """Batches of renderer draws with the generator's training distribution, ``[B, 3, size, size]`` in [-1, 1]."""
    from faceanim.toon.recipes import training_params
    from faceanim.toon.renderer import render

    def batches():
        g = torch.Generator().manual_seed(10_000 + seed)
        done = 0
        while done < n:
            m = min(64, n - done)
            yield render(training_params(m, g), size=size)
            done += m

    return batches


def _real_images_folder(folder: str, n: int, size: int) -> Callable[[], Any]:
    import numpy as np
    from PIL import Image

    from faceanim.utils.images import load_image

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    if len(files) < 2:
        raise FaceanimError(f"--real-dir {folder} holds {len(files)} images; FID needs at least 2")

    def batches():
        for i in range(0, len(files), 32):
            imgs = []
            for f in files[i:i + 32]:
                im = load_image(f).resize((size, size), Image.Resampling.LANCZOS)
                imgs.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
            yield torch.stack(imgs).float() / 127.5 - 1

    return batches


def _grid_tile(frames: torch.Tensor) -> torch.Tensor:
    """Frames stored for the video grid: resized to 64–256 px."""
    res = frames.shape[-1]
    size = min(max(res, 64), 256)
    if size == res:
        return frames.detach().float().cpu()
    mode = "area" if size < res else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(frames.detach().float().cpu(), size=(size, size), mode=mode, **kw).clamp(-1, 1)


def _stack_faces(videos: list[torch.Tensor], gap: int = 2) -> torch.Tensor:
    """Faces ``[T, 3, S, S]`` each → one column ``[T, 3, n·S + gaps, S]`` (white gaps)."""
    parts = []
    for i, v in enumerate(videos):
        if i:
            parts.append(torch.ones(v.shape[0], 3, gap, v.shape[-1]))
        parts.append(v)
    return torch.cat(parts, dim=2)


def _write_video(frames: torch.Tensor, out: Path, method: str, j: int, prompt: str, face: int, fps: int) -> str:
    """One video as ``videos/METHOD/JJ-PROMPT/faceNNN.mp4`` under ``out``; returns that relative path (POSIX)."""
    from faceanim.outputs import write_animation

    rel = Path("videos") / method / f"{j:02d}-{_slug(prompt)}" / f"face{face:03d}.mp4"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    write_animation(frames.detach().cpu(), out / rel, fps=fps)
    return rel.as_posix()


def _summarize(records: list[dict], names: list[str], cfg: EvalConfig) -> dict[str, dict]:
    out = {}
    for name in names:
        vals = [r[name] for r in records if name in r and r[name] is not None]
        mean, lo, hi = bootstrap_ci(vals, cfg.confidence, cfg.bootstrap, seed=cfg.seed)
        out[name] = {"mean": mean, "low": lo, "high": hi, "n": sum(not math.isnan(v) for v in vals)}
    return out


def _jsonable(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def evaluate(cfg: EvalConfig, pipeline=None, clip=None, evaluator=None, identity=None, fid_features=None,
             progress: bool = True) -> dict:
    """Run the evaluation of ``cfg``; writes ``results.json``, ``results.md`` and the grids to ``cfg.out``.

    ``pipeline``, ``clip`` (the loss CLIP), ``evaluator``, ``identity`` and ``fid_features`` may be given as objects
    (tests, notebooks); otherwise they are loaded from ``cfg``. Returns the results written to results.json.
    """
    from tqdm.auto import tqdm

    from faceanim.evaluation import features as feats
    from faceanim.pipelines import AnimationPipeline

    cfg.validate()
    t_start = time.perf_counter()
    notes: list[str] = []
    from_bundle = pipeline is None  # bundle components (loss CLIP, evaluator) are looked up only then
    if from_bundle:
        pipeline = AnimationPipeline.from_bundle(cfg.bundle, device=cfg.device)
    info = getattr(pipeline, "info", None)
    if pipeline.animator.config.mode != "latent":
        raise FaceanimError("evaluate animates faces from seeds: it needs a latent-mode bundle (this one reads photos)")
    G = pipeline.G

    # -- models the metrics read ---------------------------------------------------------------------------------
    if clip is None and from_bundle and "loss_clip" in info.components:
        from faceanim.bundles import resolve_bundle
        from faceanim.encoders.clip import CLIPEncoder

        folder = resolve_bundle(cfg.bundle) / info.components["loss_clip"]
        clip = CLIPEncoder.from_pretrained(folder).to(pipeline.device).requires_grad_(False)
    if clip is None:
        notes.append("the bundle has no loss CLIP: no text–video alignment, no CLIP-feature FID")
    evaluator_label = cfg.evaluator or (type(evaluator).__name__ if evaluator is not None else None)
    if evaluator is None and cfg.evaluator:
        evaluator = _load_evaluator(cfg.evaluator)
    elif evaluator is None and from_bundle and cfg.domain != "human" and "evaluator" in info.components:
        from faceanim.bundles import resolve_bundle

        evaluator = _load_evaluator(str(resolve_bundle(cfg.bundle) / info.components["evaluator"]))
        evaluator_label = f"the bundle's ({info.name}/{info.components['evaluator']})"
    domain = cfg.domain
    if domain == "auto":
        domain = "toon" if (getattr(info, "z_sampler", "") == "toonface" or evaluator is not None) else "human"
    if "styleclip" in cfg.methods and clip is None:
        raise FaceanimError("the StyleCLIP baseline needs the bundle's loss CLIP (bundle component loss_clip)")

    if identity is None:
        kind = cfg.identity
        if kind == "auto":
            kind = "toon" if evaluator is not None else ("dlib" if domain == "human" else "clip")
        if kind == "toon":
            if evaluator is None:
                raise FaceanimError("--identity toon needs --evaluator")
            identity = feats.EvaluatorIdentity(evaluator)
        elif kind == "dlib":
            identity = feats.DlibFaceDescriptor()
            identity._load()  # missing dlib / models fail here, before any video is made
        elif kind == "clip":
            if clip is None:
                raise FaceanimError("--identity clip needs the bundle's loss CLIP")
            identity = feats.CLIPIdentity(clip)
    if identity is not None and identity.name.startswith("clip"):
        notes.append("ACD / identity similarity use CLIP image features (a weak identity proxy: CLIP also encodes "
                     "expression)")

    prompts, prompt_notes = resolve_prompts(cfg, info, domain)
    notes += prompt_notes
    if evaluator is not None and not any(p.key for p in prompts):
        notes.append("no prompt names a ToonFace factor: no ground-truth scores")

    # -- FID: features of the real images -------------------------------------------------------------------------
    real_stats = None
    if fid_features is None:
        if cfg.inception:
            fid_features = feats.InceptionFeatures(cfg.inception, device=cfg.device)
        elif clip is not None:
            fid_features = feats.CLIPImageFeatures(clip)
    real_source = None
    if fid_features is not None:
        if domain == "toon":
            real_source = _real_images_toon(cfg.real, G.img_resolution, cfg.seed)
            real_label = f"{cfg.real} ToonFace renderer draws (training distribution)"
        elif cfg.real_dir:
            real_source = _real_images_folder(cfg.real_dir, cfg.real, G.img_resolution)
            real_label = f"up to {cfg.real} images of {cfg.real_dir}"
        else:
            notes.append("no real images (--real-dir) for human faces: FID skipped")
    if real_source is not None:
        real_feats = torch.cat([fid_features(b).double().cpu() for b in real_source()])
        real_stats = feature_stats(real_feats)
        notes.append(f"FID: {real_feats.shape[0]} real images ({real_label}) vs all frames of each method, "
                     f"{fid_features.name} features")

    # ToonFace latents decode to renderer parameters: the generator itself can draw each prompted change
    toon_latents = getattr(info, "z_sampler", "") == "toonface"
    ctx = MetricContext(clip=clip, template=pipeline.template, identity=identity, evaluator=evaluator,
                        generator=G if toon_latents else None, truncation_psi=pipeline.truncation_psi,
                        fid_features=fid_features if real_stats is not None else None, real_stats=real_stats)
    metrics = {n: m for n, m in get_metrics().items() if set(m.requires) <= ctx.available()}

    # -- methods ------------------------------------------------------------------------------------------------
    seeds = [cfg.seed + i for i in range(cfg.faces)]
    # the toonface latent of each source face (as latent_from_seed draws it), for the toon_reference metric
    source_z = ({s: pipeline.sample_z(1, G.z_dim, torch.Generator().manual_seed(s))[0] for s in seeds}
                if toon_latents else {})
    methods: dict[str, Any] = {}
    step_size = None
    for name in cfg.methods:
        if name == "ours":
            methods[name] = Ours(pipeline, cfg.batch_size)
        elif name == "styleclip":
            sc_identity = None
            if evaluator is not None:
                sc_identity = feats.EvaluatorIdentity(evaluator)
            elif clip is not None:
                sc_identity = feats.CLIPIdentity(clip)
            methods[name] = StyleCLIPInterpolation.from_pipeline(pipeline, clip, sc_identity,
                                                                 StyleCLIPConfig(steps=cfg.steps), cfg.batch_size)
            notes.append(f"StyleCLIP: {cfg.steps} steps, λ_L2 0.08, λ_ID 0.05, identity loss on "
                         f"{sc_identity.name if sc_identity else 'nothing'} features (StyleCLIP uses ArcFace)")
        elif name == "mocogan":
            step_size = motion_step_size(pipeline, [p.text for p in prompts], seeds[:2], cfg.frames)
            if not step_size > 0:
                raise FaceanimError("the motion model does not move (mean step 0): cannot scale the random motion")
            methods[name] = RandomMotion.from_pipeline(pipeline, step_size, batch_size=cfg.batch_size)
            notes.append(f"mocogan = text-free recurrent random walk in W (MoCoGAN-HD-style prior, not MoCoGAN-HD), "
                         f"mean W+ step {step_size:.4g} = the motion model's mean step on these prompts")

    # -- videos → metrics ---------------------------------------------------------------------------------------
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    set_videos: dict[str, list[Video]] = {m: [] for m in methods}
    grid: dict[tuple[int, str], list[torch.Tensor]] = {}
    total = len(methods) * len(prompts) * len(seeds)
    with tqdm(total=total, desc="videos", unit="video", disable=not progress) as bar:
        for mname, method in methods.items():
            bar.set_postfix_str(mname)
            for j, prompt in enumerate(prompts):
                for i, seed in enumerate(seeds):
                    w_s = pipeline.latent_from_seed(seed)
                    gen = torch.Generator().manual_seed(seed * 1000 + j)
                    t0 = time.perf_counter()
                    result = method(prompt.text, latent=w_s, num_frames=cfg.frames, generator=gen)
                    seconds = time.perf_counter() - t0
                    video = Video(result.frames, result.latents, prompt.text, mname, i, prompt.key,
                                  source_z=source_z.get(seed))
                    rec = {"method": mname, "prompt": prompt.text, "key": prompt.key, "face": i, "seed": seed,
                           "seconds": seconds}
                    for m in metrics.values():
                        if m.scope == "video":
                            rec.update(m.fn(video, ctx))
                    if ctx.fid_features is not None:
                        fid_features_of(video, ctx)
                    if cfg.save_videos:
                        rec["video"] = _write_video(video.frames, out, mname, j, prompt.text, i,
                                                    getattr(info, "fps", 10) or 10)
                    if i < cfg.grid_faces:
                        grid.setdefault((j, mname), []).append(_grid_tile(video.frames))
                    video.frames = None  # the set metrics read cached features; free the pixels
                    set_videos[mname].append(video)
                    records.append(rec)
                    bar.update(1)

    # -- aggregate -----------------------------------------------------------------------------------------------
    value_names = list(dict.fromkeys(k for r in records for k, v in r.items() if isinstance(v, float)))
    value_names = [n for n in value_names if n != "seed"]
    lower = {v for m in get_metrics().values() for v in m.lower_is_better} | {"seconds", "faces_missing"}
    results: dict[str, Any] = {
        "bundle": getattr(info, "name", getattr(pipeline, "name", "custom")), "domain": domain,
        "config": dataclasses.asdict(cfg),
        "prompts": [dataclasses.asdict(p) for p in prompts], "seeds": seeds,
        "features": {"fid": ctx.fid_features.name if ctx.fid_features is not None else None,
                     "identity": identity.name if identity is not None else None,
                     "evaluator": evaluator_label},
        "metrics": {n: m.doc for n, m in metrics.items()},
        "confidence_interval": {"kind": "percentile bootstrap over videos", "level": cfg.confidence,
                                "resamples": cfg.bootstrap},
        "lower_is_better": sorted(v for v in value_names if v in lower),
        "mocogan_step_size": step_size, "notes": notes, "methods": {}, "videos": records,
    }
    for mname in methods:
        recs = [r for r in records if r["method"] == mname]
        entry = {"overall": _summarize(recs, value_names, cfg), "per_prompt": {}, "set": {}}
        for p in prompts:
            entry["per_prompt"][p.text] = _summarize([r for r in recs if r["prompt"] == p.text], value_names, cfg)
        for m in metrics.values():
            if m.scope == "set":
                entry["set"].update(m.fn(set_videos[mname], ctx))
        results["methods"][mname] = entry
    results["seconds_total"] = time.perf_counter() - t_start

    # -- write -----------------------------------------------------------------------------------------------------
    from faceanim.utils.io import atomic_path

    grids = []
    if grid:
        from faceanim.outputs import write_grid_video

        for j, prompt in enumerate(prompts):
            cols = [_stack_faces(grid[(j, m)]) for m in methods if (j, m) in grid]
            path = out / f"grid_{j:02d}_{_slug(prompt.text)}.{cfg.grid_format}"
            fps = getattr(info, "fps", 10) or 10
            write_grid_video(torch.stack(cols), path, fps=fps, labels=list(methods))
            grids.append(path.name)
    results["grids"] = grids
    with atomic_path(out / "results.json") as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(results), indent=1) + "\n")
    with atomic_path(out / "results.md") as tmp:
        Path(tmp).write_text(render_markdown(results))
    return results


# ----------------------------------------------------------------------------------------------------------------
# Markdown


def _fmt(s: dict | None) -> str:
    if not s or s.get("mean") is None or (isinstance(s["mean"], float) and math.isnan(s["mean"])):
        return "–"
    m, lo, hi = s["mean"], s["low"], s["high"]
    return f"{m:.4g} [{lo:.4g}, {hi:.4g}]" if s["n"] > 1 else f"{m:.4g}"


def _arrow(name: str, lower: set[str]) -> str:
    return "↓" if name in lower else "↑" if name.startswith(("clip_", "id_sim", "toon_")) else ""


def render_markdown(results: dict) -> str:
    """The tables of results.json as Markdown (means with [low, high] confidence bounds)."""
    lower = set(results["lower_is_better"])
    methods = results["methods"]
    ci = results["confidence_interval"]
    lines = [f"# Evaluation: bundle {results['bundle']} ({results['domain']} faces)", "",
             f"{len(results['seeds'])} faces × {len(results['prompts'])} prompts × {len(methods)} methods, "
             f"{results['config']['frames']} frames per video. Cells: mean [low, high], a "
             f"{ci['level']:.0%} {ci['kind']} ({ci['resamples']} resamplings); n = videos with a value. "
             f"↓ lower is better, ↑ higher is better.", ""]
    value_names = list(dict.fromkeys(n for m in methods.values() for n in m["overall"]))
    set_names = list(dict.fromkeys(n for m in methods.values() for n in m["set"]))
    if set_names:
        lines += ["## Set metrics", "", "| method | " + " | ".join(f"{n} {_arrow(n, lower)}".strip() for n in set_names)
                  + " |", "|---" * (len(set_names) + 1) + "|"]
        for mname, m in methods.items():
            cells = [f"{m['set'][n]:.4g}" if m["set"].get(n) is not None else "–" for n in set_names]
            lines.append(f"| {mname} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Per-video metrics (all prompts)", "", "| value | " + " | ".join(methods) + " | n |",
              "|---" * (len(methods) + 2) + "|"]
    for n in value_names:
        cells = [_fmt(m["overall"].get(n)) for m in methods.values()]
        count = max(m["overall"].get(n, {}).get("n", 0) for m in methods.values())
        lines.append(f"| {n} {_arrow(n, lower)} | " + " | ".join(cells) + f" | {count} |")
    lines.append("")
    shown = [n for n in HEADLINE if n in value_names]
    if shown:
        lines += ["## Per prompt", "", "| prompt | method | " + " | ".join(f"{n} {_arrow(n, lower)}".strip()
                                                                         for n in shown) + " |",
                  "|---" * (len(shown) + 2) + "|"]
        for p in results["prompts"]:
            for mname, m in methods.items():
                row = m["per_prompt"].get(p["text"], {})
                lines.append(f"| {p['text']} | {mname} | " + " | ".join(_fmt(row.get(n)) for n in shown) + " |")
        lines.append("")
    if results.get("metrics"):
        lines += ["## Metrics", ""] + [f"- `{n}`: {doc}" for n, doc in results["metrics"].items()] + [""]
    feats = results["features"]
    lines += ["## Setting", "", f"- FID features: {feats['fid'] or 'none'}; identity features: "
              f"{feats['identity'] or 'none'}; ToonFace evaluator: {feats['evaluator'] or 'none'}",
              f"- seconds: wall time per video on this machine (generation only); whole run "
              f"{results.get('seconds_total', float('nan')):.1f} s"]
    lines += [f"- {n}" for n in results["notes"]]
    if results.get("grids"):
        lines += [f"- video grids (rows: faces, columns: {', '.join(methods)}): " + ", ".join(results["grids"])]
    return "\n".join(lines) + "\n"

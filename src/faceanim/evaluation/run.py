"""``faceanim evaluate``: methods × prompts × faces → videos → every available metric → results.md + results.json.

Every method animates the same faces (seeds ``seed … seed+N−1`` through the bundle's generator) with the same
prompts and frame count. Per-video metrics are averaged over videos with a 95% **percentile-bootstrap**
confidence interval (2,000 resamplings of the videos, seeded), overall and per prompt; FID is one number per
method (all its frames against the real images). Seconds per video is the wall time of the method's call
(motion/optimization + synthesis) on this machine.

Real images for FID: drawn by the face domain when it can (ToonFace: its renderer, with the generator's training
distribution; see :mod:`faceanim.evaluation.domains`); on human faces, ``--real-dir`` (e.g. aligned CelebA-HQ test
images), otherwise FID is skipped.

The run is five named stages: :func:`load_models` → :func:`build_methods` → :func:`run_videos` →
:func:`aggregate` → :func:`write_results`. Features: CLIP image features of the bundle's loss
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
from faceanim.evaluation.domains import Domain, Prompt, domain_of, get_domain, get_domains
from faceanim.evaluation.metrics import MetricContext, Video, bootstrap_ci, feature_stats, fid_features_of
from faceanim.evaluation.registry import get_metrics, lower_is_better
from faceanim.evaluation.report import format_cell

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
    domain: str = "auto"                       # auto (the bundle's) or a domain name: human, toon, … (domains.py)
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
        if self.domain != "auto" and self.domain not in get_domains():
            raise FaceanimError(f"--domain must be auto or one of {', '.join(get_domains())}")
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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "prompt"


def _real_images_folder(folder: str, n: int, size: int) -> Callable[[], Any]:
    """Batches of the first ``n`` images of a folder (sorted names), resized to ``size``, in [-1, 1]."""
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


@dataclass
class Models:
    """What one evaluation reads: the pipeline and the networks behind the metrics (stage 1)."""

    pipeline: Any
    info: Any                         # the bundle's BundleInfo (None for a bare pipeline)
    domain: Domain
    clip: Any = None                  # the loss CLIP (text–video alignment, CLIP features)
    evaluator: Any = None             # the domain's ground-truth regressor
    evaluator_label: str | None = None
    identity: Any = None              # identity features (ACD, identity similarity)
    fid_features: Any = None          # image features for FID (None: no FID)
    real_stats: tuple | None = None   # (μ, Σ) of the real images' features
    notes: list[str] = dataclasses.field(default_factory=list)


def load_models(cfg: EvalConfig, pipeline=None, clip=None, evaluator=None, identity=None,
                fid_features=None) -> Models:
    """Stage 1: the pipeline, the loss CLIP, the domain and its evaluator, identity and FID features (objects given
    as arguments are used as they are; the rest is loaded from ``cfg`` and the bundle)."""
    from faceanim.evaluation import features as feats

    notes: list[str] = []
    bundle = None
    if pipeline is None:  # bundle components (loss CLIP, evaluator) are looked up only then
        from faceanim.bundles import Bundle
        from faceanim.pipelines import AnimationPipeline

        bundle = Bundle.open(cfg.bundle)
        pipeline = AnimationPipeline.from_bundle(bundle, device=cfg.device)
    info = pipeline.info
    if pipeline.animator.config.mode != "latent":
        raise FaceanimError("evaluate animates faces from seeds: it needs a latent-mode bundle (this one reads photos)")
    if clip is None and bundle is not None and bundle.has("loss_clip"):
        clip = bundle.load_clip("loss_clip").to(pipeline.device).requires_grad_(False)
    if clip is None:
        notes.append("the bundle has no loss CLIP: no text–video alignment, no CLIP-feature FID")
    domain = (get_domain(cfg.domain) if cfg.domain != "auto" else
              domain_of(info, has_evaluator=evaluator is not None or cfg.evaluator is not None))
    evaluator_label = cfg.evaluator or (type(evaluator).__name__ if evaluator is not None else None)
    if evaluator is None and cfg.evaluator:
        evaluator = domain.load_evaluator(cfg.evaluator)
    elif evaluator is None and bundle is not None and domain.name != "human" and bundle.has("evaluator"):
        evaluator = domain.load_evaluator(str(bundle.path("evaluator")))
        evaluator_label = f"the bundle's ({info.name}/{info.components['evaluator']})"
    if "styleclip" in cfg.methods and clip is None:
        raise FaceanimError("the StyleCLIP baseline needs the bundle's loss CLIP (bundle component loss_clip)")

    if identity is None:
        kind = cfg.identity
        if kind == "auto":
            kind = "toon" if evaluator is not None else ("dlib" if domain.name == "human" else "clip")
        if kind == "toon":
            if evaluator is None:
                raise FaceanimError("--identity toon needs --evaluator")
            identity = feats.EvaluatorIdentity(evaluator)
        elif kind == "dlib":
            identity = feats.DlibFaceDescriptor()
            identity.load()  # missing dlib / models fail here, before any video is made
        elif kind == "clip":
            if clip is None:
                raise FaceanimError("--identity clip needs the bundle's loss CLIP")
            identity = feats.CLIPIdentity(clip)
    if identity is not None and identity.name.startswith("clip"):
        notes.append("ACD / identity similarity use CLIP image features (a weak identity proxy: CLIP also encodes "
                     "expression)")

    # FID: features of the real images
    real_stats = None
    if fid_features is None:
        if cfg.inception:
            fid_features = feats.InceptionFeatures(cfg.inception, device=cfg.device)
        elif clip is not None:
            fid_features = feats.CLIPImageFeatures(clip)
    real = None
    if fid_features is not None:
        real = domain.real_images(cfg.real, pipeline.G.img_resolution, cfg.seed)
        if real is None and cfg.real_dir:
            real = (_real_images_folder(cfg.real_dir, cfg.real, pipeline.G.img_resolution),
                    f"up to {cfg.real} images of {cfg.real_dir}")
        elif real is None:
            notes.append("no real images (--real-dir) for human faces: FID skipped")
    if real is not None:
        batches, real_label = real
        real_feats = torch.cat([fid_features(b).double().cpu() for b in batches()])
        real_stats = feature_stats(real_feats)
        notes.append(f"FID: {real_feats.shape[0]} real images ({real_label}) vs all frames of each method, "
                     f"{fid_features.name} features")
    return Models(pipeline, info, domain, clip, evaluator, evaluator_label, identity,
                  fid_features if real_stats is not None else None, real_stats, notes)


def build_methods(cfg: EvalConfig, models: Models, prompts: list[Prompt], seeds: list[int]
                  ) -> tuple[dict[str, Any], float | None]:
    """Stage 2: the methods to compare, by name, behind one call; and the random walk's step size (mocogan)."""
    from faceanim.evaluation import features as feats

    pipeline, methods, step_size = models.pipeline, {}, None
    for name in cfg.methods:
        if name == "ours":
            methods[name] = Ours(pipeline, cfg.batch_size)
        elif name == "styleclip":
            sc_identity = None
            if models.evaluator is not None:
                sc_identity = feats.EvaluatorIdentity(models.evaluator)
            elif models.clip is not None:
                sc_identity = feats.CLIPIdentity(models.clip)
            methods[name] = StyleCLIPInterpolation.from_pipeline(pipeline, models.clip, sc_identity,
                                                                 StyleCLIPConfig(steps=cfg.steps), cfg.batch_size)
            models.notes.append(f"StyleCLIP: {cfg.steps} steps, λ_L2 0.08, λ_ID 0.05, identity loss on "
                                f"{sc_identity.name if sc_identity else 'nothing'} features (StyleCLIP uses ArcFace)")
        elif name == "mocogan":
            step_size = motion_step_size(pipeline, [p.text for p in prompts], seeds[:2], cfg.frames)
            if not step_size > 0:
                raise FaceanimError("the motion model does not move (mean step 0): cannot scale the random motion")
            methods[name] = RandomMotion.from_pipeline(pipeline, step_size, batch_size=cfg.batch_size)
            models.notes.append(f"mocogan = text-free recurrent random walk in W (MoCoGAN-HD-style prior, not "
                                f"MoCoGAN-HD), mean W+ step {step_size:.4g} = the motion model's mean step on these "
                                "prompts")
    return methods, step_size


@dataclass
class Videos:
    """What stage 3 leaves: one record of values per video, the set metrics' inputs, the grid tiles."""

    records: list[dict]
    set_videos: dict[str, list[Video]]
    grid: dict[tuple[int, str], list[torch.Tensor]]


def run_videos(cfg: EvalConfig, models: Models, methods: dict[str, Any], prompts: list[Prompt], seeds: list[int],
               ctx: MetricContext, metrics: dict, progress: bool = True) -> Videos:
    """Stage 3: every method × prompt × face → a video → every per-video metric (frames freed as it goes)."""
    from tqdm.auto import tqdm

    pipeline, G = models.pipeline, models.pipeline.G
    # the sampler's z of each source face (as latent_from_seed draws it), for the generator-reference metric
    source_z = ({s: pipeline.sample_z(1, G.z_dim, torch.Generator().manual_seed(s))[0] for s in seeds}
                if ctx.generator is not None else {})
    out = Videos([], {m: [] for m in methods}, {})
    with tqdm(total=len(methods) * len(prompts) * len(seeds), desc="videos", unit="video",
              disable=not progress) as bar:
        for mname, method in methods.items():
            bar.set_postfix_str(mname)
            for j, prompt in enumerate(prompts):
                for i, seed in enumerate(seeds):
                    w_s = pipeline.latent_from_seed(seed)
                    rng = torch.Generator().manual_seed(seed * 1000 + j)
                    t0 = time.perf_counter()
                    result = method(prompt.text, latent=w_s, num_frames=cfg.frames, rng=rng)
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
                        rec["video"] = _write_video(video.frames, Path(cfg.out), mname, j, prompt.text, i,
                                                    getattr(models.info, "fps", 10) or 10)
                    if i < cfg.grid_faces:
                        out.grid.setdefault((j, mname), []).append(_grid_tile(video.frames))
                    video.frames = None  # the set metrics read cached features; free the pixels
                    out.set_videos[mname].append(video)
                    out.records.append(rec)
                    bar.update(1)
    return out


def aggregate(cfg: EvalConfig, models: Models, prompts: list[Prompt], seeds: list[int], methods: dict[str, Any],
              videos: Videos, ctx: MetricContext, metrics: dict, step_size: float | None) -> dict:
    """Stage 4: means with bootstrap intervals per method, overall and per prompt; the set metrics (FID)."""
    records = videos.records
    value_names = list(dict.fromkeys(k for r in records for k, v in r.items() if isinstance(v, float)))
    value_names = [n for n in value_names if n != "seed"]
    lower = lower_is_better() | {"seconds", "faces_missing"}
    info, pipeline, identity = models.info, models.pipeline, models.identity
    results: dict[str, Any] = {
        "bundle": getattr(info, "name", getattr(pipeline, "name", "custom")), "domain": models.domain.name,
        "config": dataclasses.asdict(cfg),
        "prompts": [dataclasses.asdict(p) for p in prompts], "seeds": seeds,
        "features": {"fid": ctx.fid_features.name if ctx.fid_features is not None else None,
                     "identity": identity.name if identity is not None else None,
                     "evaluator": models.evaluator_label},
        "metrics": {n: m.doc for n, m in metrics.items()},
        "confidence_interval": {"kind": "percentile bootstrap over videos", "level": cfg.confidence,
                                "resamples": cfg.bootstrap},
        "lower_is_better": sorted(v for v in value_names if v in lower),
        "mocogan_step_size": step_size, "notes": models.notes, "methods": {}, "videos": records,
    }
    for mname in methods:
        recs = [r for r in records if r["method"] == mname]
        entry = {"overall": _summarize(recs, value_names, cfg), "per_prompt": {}, "set": {}}
        for p in prompts:
            entry["per_prompt"][p.text] = _summarize([r for r in recs if r["prompt"] == p.text], value_names, cfg)
        for m in metrics.values():
            if m.scope == "set":
                entry["set"].update(m.fn(videos.set_videos[mname], ctx))
        results["methods"][mname] = entry
    return results


def write_results(cfg: EvalConfig, results: dict, videos: Videos, prompts: list[Prompt], methods: dict[str, Any],
                  fps: int) -> None:
    """Stage 5: the video grids, results.json and results.md (each written atomically)."""
    from faceanim.utils.io import atomic_path

    out = Path(cfg.out)
    grids = []
    if videos.grid:
        from faceanim.outputs import write_grid_video

        for j, prompt in enumerate(prompts):
            cols = [_stack_faces(videos.grid[(j, m)]) for m in methods if (j, m) in videos.grid]
            path = out / f"grid_{j:02d}_{_slug(prompt.text)}.{cfg.grid_format}"
            write_grid_video(torch.stack(cols), path, fps=fps, labels=list(methods))
            grids.append(path.name)
    results["grids"] = grids
    with atomic_path(out / "results.json") as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(results), indent=1) + "\n")
    with atomic_path(out / "results.md") as tmp:
        Path(tmp).write_text(render_markdown(results))


def evaluate(cfg: EvalConfig, pipeline=None, clip=None, evaluator=None, identity=None, fid_features=None,
             progress: bool = True) -> dict:
    """Run the evaluation of ``cfg``; writes ``results.json``, ``results.md`` and the grids to ``cfg.out``.

    ``pipeline``, ``clip`` (the loss CLIP), ``evaluator``, ``identity`` and ``fid_features`` may be given as objects
    (tests, notebooks); otherwise they are loaded from ``cfg``. Returns the results written to results.json.
    """
    cfg.validate()
    t_start = time.perf_counter()
    models = load_models(cfg, pipeline, clip, evaluator, identity, fid_features)
    prompts, prompt_notes = models.domain.resolve_prompts(cfg.prompts, models.info)
    models.notes += prompt_notes
    if models.evaluator is not None and not any(p.key for p in prompts):
        models.notes.append(f"no prompt names a {models.domain.name} factor: no ground-truth scores")
    draws = models.domain.draws_references(models.info)
    ctx = MetricContext(clip=models.clip, template=models.pipeline.template, identity=models.identity,
                        evaluator=models.evaluator, generator=models.pipeline.G if draws else None,
                        truncation_psi=models.pipeline.truncation_psi, fid_features=models.fid_features,
                        real_stats=models.real_stats)
    metrics = {n: m for n, m in get_metrics().items() if set(m.requires) <= ctx.available()}
    seeds = [cfg.seed + i for i in range(cfg.faces)]
    methods, step_size = build_methods(cfg, models, prompts, seeds)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    videos = run_videos(cfg, models, methods, prompts, seeds, ctx, metrics, progress)
    results = aggregate(cfg, models, prompts, seeds, methods, videos, ctx, metrics, step_size)
    results["seconds_total"] = time.perf_counter() - t_start
    write_results(cfg, results, videos, prompts, methods, fps=getattr(models.info, "fps", 10) or 10)
    return results


# ----------------------------------------------------------------------------------------------------------------
# Markdown


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
            cells = [format_cell(m["set"].get(n), 4) for n in set_names]
            lines.append(f"| {mname} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Per-video metrics (all prompts)", "", "| value | " + " | ".join(methods) + " | n |",
              "|---" * (len(methods) + 2) + "|"]
    for n in value_names:
        cells = [format_cell(m["overall"].get(n), 4) for m in methods.values()]
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
                lines.append(f"| {p['text']} | {mname} | " + " | ".join(format_cell(row.get(n), 4) for n in shown) + " |")
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

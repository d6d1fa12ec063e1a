"""``faceanim results``: the results page from one command — the comparison of IV-C and the ablations of IV-D.

A suite file (``faceanim/evaluation/suites/toonface.yaml``, the default) names a bundle, the comparison (an :class:`EvalConfig`), and the
ablations: a base training recipe in sampled-latent mode on the bundle's own generator and CLIP (the loss CLIP may be
another: ``train.loss_clip``), one change per run, and one evaluation setting for every run. The command

1. evaluates the bundle's methods (ours and the baselines)            → OUT/comparison/results.{md,json}
2. evaluates the bundle's own motion model with the ablation setting   → OUT/ablations/shipped/eval/
3. for each ablation: trains the motion model (checkpointed, resumed)  → OUT/ablations/NAME/train/motion_model
   and evaluates it exactly like (2)                                   → OUT/ablations/NAME/eval/
4. writes the page: OUT/RESULTS.md (and ``--page`` copies it) with every table, the findings read off the
   numbers by fixed rules, and the time each stage took. The same page is printed.

Finished stages are reused (their results.json and stage.json exist, made from the same bundle files and stage
settings), so an interrupted run continues where it stopped; ``fresh`` redoes everything. Seconds of reused
stages are the ones recorded when they ran.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from faceanim.errors import FaceanimError
from faceanim.evaluation.report import format_cell

SUITES = Path(__file__).parent / "suites"  # packaged suite files, by name

# Columns of the ablation table and the values the findings compare, in this order (when measured).
ABLATION_VALUES = ("toon_success", "toon_level", "toon_spearman", "toon_ref_cos", "toon_identity_drift",
                   "toon_off_target", "clip_gain", "acd", "latent_accel", "pixel_flicker")
COMPARISON_VALUES = ("toon_success", "toon_level", "toon_spearman", "toon_ref_cos", "toon_identity_drift",
                     "toon_off_target", "clip_last", "clip_gain", "acd", "id_similarity", "latent_accel",
                     "pixel_flicker", "latent_step", "seconds")
LABELS = {
    "toon_success": "ground truth: prompted factor reached",
    "toon_level": "ground truth: level reached (share of target)",
    "toon_spearman": "ground truth: monotone rise (Spearman ρ)",
    "toon_ref_cos": "ground truth: change like the generator's own (cosine)",
    "toon_identity_drift": "ground truth: identity drift",
    "toon_off_target": "ground truth: other factors changed",
    "clip_last": "CLIP text–last frame cosine",
    "clip_gain": "CLIP cosine gain (last − first)",
    "acd": "ACD (identity features)",
    "id_similarity": "identity similarity first–last",
    "latent_accel": "latent second difference",
    "pixel_flicker": "pixel flicker",
    "latent_step": "mean W+ step per frame",
    "seconds": "seconds per video",
    "fid": "FID on frames",
}


@dataclass
class AblationRun:
    name: str                                   # folder name and table row
    description: str = ""                       # what changes, for the page
    batch_size: int | None = None               # None: the base recipe's
    prompts: list[str] | None = None            # training prompts (ToonFace keys or phrases); None: the base's
    set: list[str] = field(default_factory=list)  # dotted TrainConfig overrides on top of the base recipe


@dataclass
class SuiteConfig:
    name: str = "toonface"
    bundle: str | None = None                   # bundle name or folder (None: the default bundle)
    description: str = ""
    comparison: dict[str, Any] = field(default_factory=dict)       # EvalConfig fields (None: no comparison)
    ablation_eval: dict[str, Any] = field(default_factory=dict)    # EvalConfig fields for every ablation row
    train: dict[str, Any] = field(default_factory=dict)            # base recipe: steps, batch_size, prompts, set,
    #                                                                 loss_clip (a CLIP folder; default: the bundle's)
    shipped: bool = True                        # also evaluate the bundle's own motion model as a row
    threads: int = 1                            # torch CPU threads (0: torch's default). Single-seed training runs
    #                                             follow the float reduction order, which the thread count changes:
    #                                             the page is made, and reproduced, with this many
    ablations: list[AblationRun] = field(default_factory=list)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SuiteConfig":
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FaceanimError(f"suite file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise FaceanimError(f"{p} is not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise FaceanimError(f"{p}: a suite file is a mapping (name, bundle, comparison, ablations, …)")
        return cls.from_dict(data, str(p))

    @classmethod
    def from_dict(cls, data: dict, source: str = "suite") -> "SuiteConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaceanimError(f"{source}: unknown key(s) {unknown} (known: {', '.join(sorted(known))})")
        runs = []
        run_fields = {f.name for f in dataclasses.fields(AblationRun)}
        for i, r in enumerate(data.get("ablations") or []):
            if not isinstance(r, dict) or "name" not in r:
                raise FaceanimError(f"{source}: ablation {i} needs a name")
            bad = sorted(set(r) - run_fields)
            if bad:
                raise FaceanimError(f"{source}: ablation {r['name']!r}: unknown key(s) {bad}")
            runs.append(AblationRun(**r))
        cfg = cls(**{**data, "ablations": runs})
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "suite") -> None:
        from faceanim.evaluation.run import EvalConfig

        eval_fields = {f.name for f in dataclasses.fields(EvalConfig)} - {"bundle", "out", "device"}
        for label, d in (("comparison", self.comparison), ("ablation_eval", self.ablation_eval)):
            bad = sorted(set(d or {}) - eval_fields)
            if bad:
                raise FaceanimError(f"{source}: {label}: unknown evaluation option(s) {bad}")
        bad = sorted(set(self.train) - {"steps", "batch_size", "prompts", "set", "loss_clip"})
        if bad:
            raise FaceanimError(f"{source}: train: unknown key(s) {bad} (known: steps, batch_size, prompts, set, "
                                "loss_clip)")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise FaceanimError(f"{source}: threads: expected a count ≥ 0 (0: torch's default), got {self.threads!r}")
        names = [r.name for r in self.ablations]
        if len(set(names)) != len(names) or "shipped" in names:
            raise FaceanimError(f"{source}: ablation names must be distinct and not 'shipped'")
        for r in self.ablations:
            if not r.name.replace("-", "").replace("_", "").isalnum():
                raise FaceanimError(f"{source}: ablation name {r.name!r}: letters, digits, - and _ only")
        if self.ablations and not self.train.get("steps"):
            raise FaceanimError(f"{source}: train.steps is needed to train the ablations")


# ----------------------------------------------------------------------------------------------------------------
# Running


def _done(folder: Path, key: str | None = None) -> dict | None:
    """A finished stage: its results.json and the suite's stage.json (written last), merged — if it was made from
    the same bundle weights and stage settings (``key``); else None."""
    try:
        results = json.loads((folder / "results.json").read_text())
        stage = json.loads((folder / "stage.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if key is not None and stage.get("key") != key:
        return None
    results.update(stage)
    return results


def bundle_fingerprint(folder: Path) -> str:
    """SHA-256 over the bundle's weights and configs (``*.safetensors``, ``*.json``: names and contents; not the model
    card): a reused stage must come from the same networks."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json")):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _eval_config(fields: dict, bundle: str | None, out: Path, device: str, methods: tuple[str, ...] | None = None):
    from faceanim.evaluation.run import EvalConfig

    d = dict(fields)
    if methods is not None:
        d["methods"] = methods
    for k in ("methods", "prompts"):
        if k in d and d[k] is not None:
            d[k] = tuple(d[k])
    return EvalConfig(bundle=bundle, out=str(out), device=device, **d)


class Suite:
    """Runs a :class:`SuiteConfig` into ``out``; ``log`` receives one line per stage."""

    def __init__(self, cfg: SuiteConfig, out: str | os.PathLike, device: str = "cpu", fresh: bool = False,
                 progress: bool = True, log: Callable[[str], None] = print):
        self.cfg, self.out, self.device, self.fresh, self.progress, self.log = cfg, Path(out), device, fresh, progress, log

    # -- stages ----------------------------------------------------------------------------------------------------
    def _stage(self, label: str, folder: Path, fn: Callable[[], dict], settings: Any) -> dict:
        """Run ``fn`` unless ``folder`` holds this stage finished from the same bundle and ``settings``."""
        key = json.dumps({"bundle": self._fingerprint, "settings": settings, "threads": self._threads}, sort_keys=True,
                         default=str)
        prior = None if self.fresh else _done(folder, key)
        if prior is not None:
            self.log(f"[{label}] reused {folder} ({prior['suite_seconds']:.0f} s when it ran)")
            return prior
        if not self.fresh and _done(folder) is not None:
            self.log(f"[{label}] the bundle or the stage's settings changed since {folder} was made: running again")
        self.log(f"[{label}] running → {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        extra = fn() or {}
        stage = {"suite_seconds": time.perf_counter() - t0, "key": key, **extra}
        from faceanim.utils.io import atomic_path

        with atomic_path(folder / "stage.json") as tmp:
            Path(tmp).write_text(json.dumps(stage, indent=1) + "\n")
        self.log(f"[{label}] done in {stage['suite_seconds']:.0f} s")
        return _done(folder)

    @functools.cached_property
    def _fingerprint(self) -> str:
        return bundle_fingerprint(self._bundle.folder)

    @functools.cached_property
    def _bundle(self):
        from faceanim.bundles import Bundle

        bundle = Bundle.open(self.cfg.bundle)
        if bundle.info.mode != "latent":
            raise FaceanimError(f"bundle {bundle.info.name}: the suite trains and evaluates in latent mode; this "
                                "bundle animates photos")
        return bundle

    @functools.cached_property
    def _bundle_motion(self) -> dict:
        """The bundle's motion config (the ablations train the same mapper width)."""
        return json.loads((self._bundle.path("motion") / "config.json").read_text())

    @functools.cached_property
    def _domain(self):
        from faceanim.evaluation.domains import domain_of

        return domain_of(self._bundle.info)

    def _train(self, run: AblationRun, run_dir: Path) -> Path:
        from faceanim.training.build import build_trainer
        from faceanim.training.config import TrainConfig, apply_overrides, latent_recipe

        bundle = self._bundle
        info = bundle.info
        model = run_dir / "motion_model"
        stamp = run_dir / "suite_key.json"  # what the run was trained from: reuse only the same
        loss_clip, loss_clip_sha = self._train_loss_clip
        key = json.dumps({"bundle": self._fingerprint, "train": self.cfg.train, "run": dataclasses.asdict(run),
                          "loss_clip": loss_clip_sha}, sort_keys=True)
        fresh = self.fresh or (stamp.is_file() and stamp.read_text() != key)
        if fresh and run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        if (model / "config.json").is_file() and not fresh:
            self.log(f"[{run.name}] reusing trained {model}")
            return model
        run_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)
        base = self.cfg.train
        prompts = run.prompts or base.get("prompts")
        prompts = self._domain.training_prompts(list(prompts or []))
        data = latent_recipe(str(bundle.path("generator")), str(bundle.path("cond_clip")), prompts,
                             str(run_dir.parent), int(base["steps"]), int(run.batch_size or base.get("batch_size", 4)),
                             template=info.template, z_sampler=info.z_sampler, truncation_psi=info.truncation_psi,
                             loss_clip=str(loss_clip), mapper_hidden=self._bundle_motion["mapper_hidden"])
        data.update(name=run.name, sample_every=0, device=self.device)
        cfg = TrainConfig.from_dict(apply_overrides(data, [*base.get("set", []), *run.set]))
        trainer = build_trainer(cfg, run_dir=run_dir, progress=self.progress)
        if (trainer.checkpoint_dir / "state.json").is_file():
            self.log(f"[{run.name}] resuming training at step {trainer.resume()}")
        trainer.train()
        return model

    @functools.cached_property
    def _train_loss_clip(self) -> tuple[Path, str]:
        """The CLIP inside the ablations' contrastive loss — the suite's ``train.loss_clip`` (relative paths from the
        current folder) or else the bundle's loss CLIP — and the SHA-256 of its files; read once per suite run."""
        path = self.cfg.train.get("loss_clip")
        if not path:
            folder = self._bundle.path("loss_clip")
        elif (Path(path) / "config.json").is_file():
            folder = Path(path)
        else:
            raise FaceanimError(f"suite {self.cfg.name}: train.loss_clip {path} is not a CLIP folder (config.json "
                                "+ weights); run from the folder it is relative to (the toonface suite: the "
                                "faceanim repository, after experiments/toonface/restore_weights.sh) or set "
                                "train.loss_clip in your own suite file")
        return folder, bundle_fingerprint(folder)

    def _evaluate(self, eval_out: Path, motion: Path | None) -> None:
        from faceanim.evaluation.run import evaluate
        from faceanim.motion.model import LanguageGuidedAnimator
        from faceanim.pipelines import AnimationPipeline

        cfg = _eval_config(self.cfg.ablation_eval, self.cfg.bundle, eval_out, self.device, methods=("ours",))
        if motion is None:
            evaluate(cfg, progress=self.progress)
            return
        info = self._bundle.info
        animator = LanguageGuidedAnimator.from_pretrained(motion)
        pipe = AnimationPipeline(self._generator, animator, info.template, info.truncation_psi,
                                 name=f"{info.name}+{motion}", z_sampler=info.z_sampler, info=info).to(self.device)
        clip, evaluator = self._metric_models
        evaluate(cfg, pipeline=pipe, clip=clip, evaluator=evaluator, progress=self.progress)

    @functools.cached_property
    def _generator(self):
        """The bundle's generator, loaded once for every ablation row."""
        return self._bundle.load_generator().to(self.device)

    @functools.cached_property
    def _metric_models(self):
        """The bundle's loss CLIP and evaluator, so that every ablation row is scored by the same networks."""
        bundle = self._bundle
        path = self.cfg.ablation_eval.get("evaluator") or (bundle.path("evaluator") if bundle.has("evaluator")
                                                           else None)
        return (bundle.load_clip("loss_clip").to(self.device).requires_grad_(False),
                self._domain.load_evaluator(str(path)) if path else None)

    @property
    def _threads(self) -> int | None:
        """The CPU thread count the stages run with (None: not pinned: a GPU, or ``threads: 0``)."""
        return self.cfg.threads if self.device == "cpu" and self.cfg.threads > 0 else None

    def run(self) -> dict:
        """Every stage (finished ones reused), on ``threads`` CPU threads (the caller's count is restored after);
        the summary records the count used (``threads``) for the page."""
        import torch

        from faceanim.utils.perf import torch_threads

        with torch_threads(self._threads):
            summary = self._run_stages()
            summary["threads"] = torch.get_num_threads()
        return summary

    def _run_stages(self) -> dict:
        t0 = time.perf_counter()
        # the ablations' loss CLIP, checked before any stage runs; its weights are part of every ablation's key
        loss_clip = self._train_loss_clip[1] if self.cfg.ablations else None
        self.out.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {"suite": dataclasses.asdict(self.cfg)}
        if self.cfg.comparison:
            folder = self.out / "comparison"
            cfg = _eval_config(self.cfg.comparison, self.cfg.bundle, folder, self.device)

            def compare():
                from faceanim.evaluation.run import evaluate

                evaluate(cfg, progress=self.progress)

            summary["comparison"] = self._stage("comparison", folder, compare, self.cfg.comparison)
        rows: dict[str, dict] = {}
        if self.cfg.shipped and self.cfg.ablations:
            eval_out = self.out / "ablations" / "shipped" / "eval"
            rows["shipped"] = self._stage("shipped", eval_out, lambda: self._evaluate(eval_out, None),
                                          self.cfg.ablation_eval)
        for run in self.cfg.ablations:
            base = self.out / "ablations" / run.name
            eval_out = base / "eval"

            def train_and_eval(run=run, base=base, eval_out=eval_out):
                t = time.perf_counter()
                model = self._train(run, base / "train")
                train_s = time.perf_counter() - t
                self._evaluate(eval_out, model)
                return {"train_seconds": train_s}

            rows[run.name] = self._stage(run.name, eval_out, train_and_eval,
                                         [self.cfg.ablation_eval, self.cfg.train, dataclasses.asdict(run), loss_clip])
        summary["ablations"] = rows
        summary["seconds_this_call"] = time.perf_counter() - t0
        return summary


# ----------------------------------------------------------------------------------------------------------------
# The page


@functools.cache
def lower_is_better() -> frozenset[str]:
    """Values where lower is better: the metric registry's, and the seconds per video."""
    from faceanim.evaluation.registry import lower_is_better as registered

    return frozenset(registered() | {"seconds"})


def _arrow(name: str) -> str:
    return "↓" if name in lower_is_better() else "" if name in ("latent_step",) else "↑"


def _overlap(a: dict, b: dict) -> bool:
    return not (a["high"] < b["low"] or b["high"] < a["low"])


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def comparison_findings(res: dict) -> list[str]:
    """Fixed rules, applied to the numbers: for each headline value, which method is best and whether its 95%
    interval is clear of every other method's."""
    methods = res["methods"]
    lines = []
    for v in ("toon_success", "toon_level", "clip_last", "toon_identity_drift", "acd", "latent_accel"):
        have = {m: e["overall"].get(v) for m, e in methods.items() if e["overall"].get(v)}
        if len(have) < 2:
            continue
        sign = -1 if v in lower_is_better() else 1
        best = max(have, key=lambda m: sign * have[m]["mean"])
        others = [m for m in have if m != best]
        clear = [m for m in others if not _overlap(have[best], have[m])]
        verdict = ("its interval is clear of every other method's" if len(clear) == len(others) else
                   f"the intervals overlap with {', '.join(m for m in others if m not in clear)} (not established)")
        lines.append(f"- **{LABELS.get(v, v)}** {_arrow(v)}: best `{best}` ({format_cell(have[best])}); {verdict}.")
    ours = methods.get("ours", {}).get("per_prompt", {})
    if ours:
        per = [(p, e.get("toon_success", {}).get("mean")) for p, e in ours.items() if e.get("toon_success")]
        if per:
            worst = min(per, key=lambda x: x[1])
            best = max(per, key=lambda x: x[1])
            lines.append(f"- `ours` per prompt (prompted factor reached): best “{best[0]}” {best[1]:.2f}, worst "
                         f"“{worst[0]}” {worst[1]:.2f}.")
    return lines


def ablation_findings(rows: dict[str, dict], reference: str) -> list[str]:
    """Each run against the reference row: change of every headline value, established only when the two 95%
    intervals do not overlap."""
    ref = rows.get(reference, {}).get("methods", {}).get("ours", {}).get("overall")
    if not ref:
        return []
    lines = []
    for name, res in rows.items():
        if name == reference:
            continue
        ov = res["methods"]["ours"]["overall"]
        step = (ov.get("latent_step") or {}).get("mean")
        if step is not None and step < 1e-6:
            lines.append(f"- **{name}**: the model does not move (mean W+ step {step:.2g}); every motion value is 0.")
            continue
        changes = []
        for v in ABLATION_VALUES:
            a, b = ov.get(v), ref.get(v)
            if not a or not b:
                continue
            d = a["mean"] - b["mean"]
            if not _overlap(a, b):
                worse = (d > 0) == (v in lower_is_better())
                changes.append(f"{v} {b['mean']:.3g} → {a['mean']:.3g} ({'worse' if worse else 'better'})")
        text = "; ".join(changes) if changes else "no value moved beyond the intervals"
        lines.append(f"- **{name}** vs {reference}: {text}.")
    return lines


def render_page(summary: dict, command: str) -> str:
    cfg = summary["suite"]
    stages = []
    lines = [f"# Results: {cfg['name']}", "",
             "<!-- Generated by `faceanim results`; edit the suite file or the command, not this page. -->", ""]
    if cfg.get("description"):
        lines += [cfg["description"].strip(), ""]
    comp = summary.get("comparison")
    if comp:
        stages.append(("comparison", comp["suite_seconds"]))
    for name, r in summary.get("ablations", {}).items():
        stages.append((name, r["suite_seconds"]))
    total = sum(s for _, s in stages)
    import torch

    threads = summary.get("threads", torch.get_num_threads())
    lines += ["```bash", command, "```", "",
              f"Generated {datetime.date.today().isoformat()} at commit `{_git_commit()}` on {platform.machine()}, "
              f"{os.cpu_count()} cores, torch {torch.__version__} with {threads} thread"
              f"{'s' if threads != 1 else ''}. "
              f"Time of every stage as it ran: **{total / 60:.1f} min in all** ("
              + ", ".join(f"{n} {s / 60:.1f}" for n, s in stages) + " min). Definitions of every value, the methods "
              "and the confidence intervals: [EVALUATION.md](EVALUATION.md). Cells: mean [95% bootstrap interval "
              "over videos]; ↓ lower is better, ↑ higher is better.", ""]
    if comp:
        methods = comp["methods"]
        c = comp["config"]
        lines += ["## Ours vs the baselines (IV-C)", "",
                  f"Bundle `{comp['bundle']}`, {len(comp['seeds'])} faces × {len(comp['prompts'])} prompts "
                  f"({', '.join(p['text'] for p in comp['prompts'])}), {c['frames']} frames, StyleCLIP "
                  f"{c['steps']} optimization steps; {len(comp['videos']) // max(len(methods), 1)} videos per "
                  "method.", "",
                  "| value | " + " | ".join(f"`{m}`" for m in methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for v in COMPARISON_VALUES:
            if any(v in e["overall"] for e in methods.values()):
                lines.append(f"| {LABELS.get(v, v)} {_arrow(v)} | "
                             + " | ".join(format_cell(e["overall"].get(v)) for e in methods.values()) + " |")
        if any(e["set"].get("fid") is not None for e in methods.values()):
            lines.append(f"| FID on frames ({comp['features']['fid']}) ↓ | "
                         + " | ".join(format_cell(e["set"].get("fid")) for e in methods.values()) + " |")
        lines.append("")
        if any("toon_success" in e["overall"] for e in methods.values()):
            lines += ["Per prompt, prompted factor reached (share of videos):", "",
                      "| prompt | " + " | ".join(f"`{m}`" for m in methods) + " |", "|---" * (len(methods) + 1) + "|"]
            for p in comp["prompts"]:
                lines.append(f"| {p['text']} | " + " | ".join(
                    format_cell(e["per_prompt"].get(p["text"], {}).get("toon_success"), 2) for e in methods.values()) + " |")
            lines.append("")
        lines += ["Read off the numbers (fixed rules: best mean; established only if its interval is clear of the "
                  "others'):", ""] + comparison_findings(comp) + [""]
        lines += [f"- {n}" for n in comp.get("notes", [])]
        if comp.get("grids"):
            lines.append(f"- video grids (rows: faces, columns: {', '.join(methods)}): `comparison/` "
                         + ", ".join(f"`{g}`" for g in comp["grids"]))
        lines.append("")
    rows = summary.get("ablations") or {}
    if rows:
        first = next(iter(rows.values()))
        ec = first["config"]
        tr = cfg["train"]
        loss_clip = f" (loss CLIP: `{tr['loss_clip']}`)" if tr.get("loss_clip") else ""
        lines += ["## Ablations (IV-D)", "",
                  f"Each row but `shipped` is one training run of {tr.get('steps')} steps (one seed) of the base "
                  f"recipe with one change, on the bundle's generator and CLIP{loss_clip}; every row is scored the "
                  f"same way: "
                  f"`ours` on {len(first['seeds'])} faces × {len(first['prompts'])} prompts "
                  f"({', '.join(p['text'] for p in first['prompts'])}), {ec['frames']} frames. `shipped` is the "
                  f"bundle's own motion model. Base recipe: batch {tr.get('batch_size', 4)}, prompts "
                  f"{', '.join(tr.get('prompts') or [])}; overrides {', '.join(f'`{s}`' for s in tr.get('set', []))}.",
                  ""]
        runs = {r["name"]: r for r in cfg["ablations"]}
        shown = [v for v in ABLATION_VALUES if any(v in r["methods"]["ours"]["overall"] for r in rows.values())]
        lines += ["| run | change | " + " | ".join(f"{v} {_arrow(v)}" for v in shown) + " | fid ↓ | train min |",
                  "|---" * (len(shown) + 4) + "|"]
        for name, r in rows.items():
            ov = r["methods"]["ours"]["overall"]
            spec = runs.get(name)
            change = "the bundle's motion model" if name == "shipped" else (
                spec["description"] or ", ".join(spec["set"]) or "–")
            fid = r["methods"]["ours"]["set"].get("fid")
            lines.append(f"| {name} | {change} | " + " | ".join(format_cell(ov.get(v), 2) for v in shown)
                         + f" | {format_cell(fid)} | "
                         + (f"{r['train_seconds'] / 60:.1f}" if r.get("train_seconds") else "–") + " |")
        reference = next((r["name"] for r in cfg["ablations"] if r["name"] in rows), None)
        if reference:
            lines += ["", f"Read off the numbers (each run against `{reference}`, the base recipe retrained here; a "
                      "change is listed only when the two 95% intervals do not overlap — single runs, one seed):",
                      ""] + ablation_findings(rows, reference)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

"""Training and held-out metrics of the ToonFace evaluator (``evaluator.ToonEvaluator``).

Data: ``training_params`` draws (expression intensities over the whole [0, 1]) rendered at 128 px, a share of them
Gaussian-blurred (σ up to 1.5 px at 128 px) so the evaluator also reads soft generator outputs. Loss per factor:
binary cross-entropy on the [0, 1]-scaled value (its minimum is at the true value), squared error on the (cos, sin)
of a hue, soft cross-entropy on a one-hot block; each weighted by how visible the factor is in that face
(``visibility``) and averaged over factors. Everything random is a function of (seed, step): ``resume`` continues
exactly.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from faceanim.toon.evaluator import (
    PERIODIC,
    EvaluatorConfig,
    ToonEvaluator,
    prompt_scores,
)
from faceanim.toon.factors import FACTOR_BY_NAME, SLICES, ToonParams
from faceanim.toon.loop import Log, LoopConfig, TrainLoop
from faceanim.toon.recipes import training_params
from faceanim.toon.renderer import render
from faceanim.toon.seeds import EVALUATOR_HELDOUT
from faceanim.utils.images import gaussian_blur
from faceanim.utils.schedules import cosine_lr

BatchFn = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]  # (n, g) -> (images [n,3,R,R], [n,P])


@dataclass
class EvaluatorTrainConfig(LoopConfig):
    steps: int = 1800
    batch_size: int = 64
    lr: float = 2e-3
    lr_final: float = 2e-5          # cosine decay to this
    render_size: int = 128          # renders are drawn at the generator's resolution, then resized by the model
    blur_prob: float = 0.5          # share of blurred renders
    blur_sigma: float = 1.5         # largest blur σ in px at 128 px (σ ~ U(0, blur_sigma), scaled with render_size)


def random_blur(images: torch.Tensor, g: torch.Generator, prob: float, sigma_max: float) -> torch.Tensor:
    """Blur a share ``prob`` of the images with σ ~ U(0, ``sigma_max``) px."""
    n = images.shape[0]
    pick = torch.rand(n, generator=g) < prob
    sigma = sigma_max * torch.rand(n, generator=g)
    if pick.any() and sigma_max > 0:
        images = images.clone()
        images[pick] = gaussian_blur(images[pick], sigma[pick])
    return images


def evaluator_batch(n: int, g: torch.Generator, size: int = 128, blur_prob: float = 0.5,
                    blur_sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(renders ``[n, 3, size, size]`` in [-1, 1], their factor vectors ``[n, P]``); ``blur_sigma`` is in px at 128."""
    p = training_params(n, g)
    return random_blur(render(p, size=size), g, blur_prob, blur_sigma * size / 128), p.vector


def visibility(p: ToonParams) -> dict[str, torch.Tensor]:
    """How visible a factor is in each face, ``[B]`` in [0, 1], for the factors that can hide (others: 1).

    The frame shape needs glasses; the hair colour greys away with ``grey_hair`` and ``age`` (the renderer's
    formula), and its hue needs some chroma (black hair has none to speak of); the iris colour hides behind
    closed or laughing eyes."""
    hair = (1 - p["grey_hair"].clamp(0, 1)) * (1 - 0.85 * p["age"].clamp(0, 1))
    light, sat = p["hair_lightness"].clamp(0, 1), p["hair_saturation"].clamp(0, 1)
    chroma = sat * torch.minimum(light, 1 - light)
    return {"glasses_shape": p["glasses"].clamp(0, 1), "hair_lightness": hair, "hair_saturation": hair,
            "hair_hue": hair * (chroma / 0.08).clamp(0, 1),
            "eye_color": (1 - p["eyes_closed"].clamp(0, 1)) * (1 - p["laugh"].clamp(0, 1))}


def factor_loss(model: ToonEvaluator, raw: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Visibility-weighted loss per factor, averaged over factors → (total, {group loss, …})."""
    weights = visibility(ToonParams(target))
    terms: dict[str, list[torch.Tensor]] = {"identity": [], "expression": [], "attribute": []}
    for f, mode, sl in model.layout:
        out, t = raw[:, sl], target[:, SLICES[f.name]]
        if mode == "class":
            loss = -(t / t.sum(1, keepdim=True).clamp_min(1e-6) * out.log_softmax(1)).sum(1)
        elif mode == "angle":
            a = 2 * math.pi * t[:, 0]
            loss = (out - torch.stack([a.cos(), a.sin()], 1)).square().sum(1)
        else:
            unit = ((t[:, 0] - f.low) / (1 - f.low)).clamp(0, 1)
            loss = F.binary_cross_entropy_with_logits(out[:, 0], unit, reduction="none")
        w = weights.get(f.name)
        terms[f.group].append(loss.mean() if w is None else (w * loss).mean())
    every = [t for group in terms.values() for t in group]
    total = torch.stack(every).mean()
    return total, {"loss": total.item(), **{g: torch.stack(v).mean().item() for g, v in terms.items() if v}}


def factor_errors(pred: torch.Tensor, target: torch.Tensor, factors: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{"mae": {factor: …}, "accuracy": {factor: …}}``: visibility-weighted mean absolute error of the continuous
    factors (circular for hues, in hue turns ≤ 0.5), top-1 accuracy of the one-hot ones."""
    weights = visibility(ToonParams(target))
    mae, acc = {}, {}
    for name in factors:
        f, sl = FACTOR_BY_NAME[name], SLICES[name]
        if f.kind == "onehot":
            acc[name] = float((pred[:, sl].argmax(1) == target[:, sl].argmax(1)).float().mean())
            continue
        err = (pred[:, sl.start] - target[:, sl.start]).abs()
        if name in PERIODIC:
            err = torch.minimum(err.remainder(1.0), 1 - err.remainder(1.0))
        w = weights.get(name, torch.ones_like(err))
        mae[name] = float((w * err).sum() / w.sum().clamp_min(1e-6))
    return {"mae": mae, "accuracy": acc}


@torch.inference_mode()
def predict_batched(model: ToonEvaluator, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``model.predict`` in chunks: ``[N, 3, H, W]`` → ``[N, P]``."""
    return torch.cat([model.predict(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])


def heldout_metrics(model: ToonEvaluator, seed: int, n: int = 1000, per_key: int = 100, size: int = 128,
                    blur_sigma: float = 1.0, chunk: int = 100) -> dict:
    """Objective quality of the evaluator on held-out draws (seeded by ``seed``, which must differ from training).

    - ``mae`` / ``accuracy``: per factor on ``training_params`` draws rendered at ``size``;
    - ``prompt_accuracy``: per ``PROMPT_TARGETS`` key, the accuracy of telling renders with the key's factor at its
      target from neutral renders of the same identities (threshold: prompt score 0.5);
    - ``identity_distance``: mean ``identity_features`` distance between those two renders of one identity, over
      the expression keys (should be ≪ √2), and between different neutral identities (≈ √2);
    - ``blurred``: the same after a Gaussian blur of ``blur_sigma`` px at 128 px (a soft generator's output).

    Renders are made and read ``chunk`` at a time, so memory stays small whatever ``n``.
    """
    from faceanim.toon.captions import PROMPT_TARGETS

    was_training = model.training
    model.eval()
    factors = model.config.factors
    keys = [k for k, (name, _) in PROMPT_TARGETS.items() if name in factors]
    sigma = blur_sigma * size / 128

    def look(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Factor vectors [N, P] → predictions on their renders, sharp and blurred."""
        sharp, soft = [], []
        for i in range(0, v.shape[0], chunk):
            x = render(ToonParams(v[i:i + chunk]), size=size)
            sharp.append(predict_batched(model, x))
            soft.append(predict_batched(model, gaussian_blur(x, torch.full((x.shape[0],), sigma))))
        return torch.cat(sharp), torch.cat(soft)

    p = training_params(n, torch.Generator().manual_seed(seed))
    draws = look(p.vector)
    pairs = []  # predictions on [neutral; at target] renders of the same identities, per key
    for i, key in enumerate(keys):
        base = ToonParams.sample(per_key, seed=seed + 1 + i)
        name, value = PROMPT_TARGETS[key]
        pairs.append(look(torch.cat([base.vector, base.replace(**{name: value}).vector])))

    def measure(which: int) -> dict:
        out = factor_errors(draws[which], p.vector, factors)
        out["prompt_accuracy"], same, other = {}, [], []
        for key, preds in zip(keys, pairs):
            pred = preds[which]
            s = prompt_scores(pred, [key])[key]
            out["prompt_accuracy"][key] = float(((s[:per_key] < 0.5).sum() + (s[per_key:] > 0.5).sum()) / (2 * per_key))
            if FACTOR_BY_NAME[PROMPT_TARGETS[key][0]].group != "expression":
                continue  # grey hair and age legitimately change the visible hair colour
            feats = model.identity_features_from(pred)
            same.append((feats[:per_key] - feats[per_key:]).norm(dim=1).mean())
            other.append((feats[:per_key] - feats[:per_key].roll(1, 0)).norm(dim=1).mean())
        if same and model.identity_dim:
            out["identity_distance"] = {"same_identity_expression_change": float(torch.stack(same).mean()),
                                        "different_identities": float(torch.stack(other).mean())}
        return out

    sharp, soft = measure(0), measure(1)
    model.train(was_training)

    def group_mean(errors: dict[str, float], group: str) -> float | None:
        vals = [v for k, v in errors.items() if FACTOR_BY_NAME[k].group == group]
        return round(sum(vals) / len(vals), 4) if vals else None

    summary: dict[str, float | None] = {}
    for prefix, res in (("", sharp), ("blurred_", soft)):
        for group in ("identity", "expression", "attribute"):
            summary[f"{prefix}{group}_mae_mean"] = group_mean(res["mae"], group)
        for k, v in res["accuracy"].items():
            summary[f"{prefix}{k}_accuracy"] = round(v, 4)
        pa = list(res["prompt_accuracy"].values())
        if pa:
            summary[f"{prefix}prompt_accuracy_mean"] = round(sum(pa) / len(pa), 4)
            summary[f"{prefix}prompt_accuracy_min"] = round(min(pa), 4)

    def rounded(d: dict) -> dict:
        return {k: rounded(v) if isinstance(v, dict) else round(v, 4) for k, v in d.items()}

    return {"n": n, "per_key": per_key, "seed": seed, "render_size": size, "summary": summary, **rounded(sharp),
            "blurred": {"sigma_px_at_128": blur_sigma, **rounded(soft)}}


class EvaluatorTrainer(TrainLoop):
    model_key = "evaluator"

    def __init__(self, model: ToonEvaluator, cfg: EvaluatorTrainConfig, run_dir: str | os.PathLike,
                 batch_fn: BatchFn | None = None, evaluate: Callable[[ToonEvaluator], dict] | None = None):
        model.train().requires_grad_(True)
        super().__init__(model, torch.optim.Adam(model.parameters(), lr=cfg.lr), cfg, run_dir)
        self.evaluate_fn = evaluate
        self.batch_fn = batch_fn or (lambda n, g: evaluator_batch(n, g, cfg.render_size, cfg.blur_prob, cfg.blur_sigma))

    def lr_at(self, step: int) -> float:
        c = self.cfg
        return cosine_lr(step, c.steps, c.lr, c.lr_final)

    def loss(self, images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(total, report): the loss terms, and the batch's mean absolute error per group (readable progress)."""
        raw = self.model(images)
        total, report = factor_loss(self.model, raw, target)
        with torch.no_grad():
            mae = factor_errors(self.model.decode(raw.detach()), target, self.model.config.factors)["mae"]
        for group in ("identity", "expression", "attribute"):
            vals = [v for k, v in mae.items() if FACTOR_BY_NAME[k].group == group]
            if vals:
                report[f"{group}_mae"] = sum(vals) / len(vals)
        return total, report

    def train_step(self, g: torch.Generator) -> tuple[torch.Tensor, int, dict[str, float]]:
        images, target = self.batch_fn(self.cfg.batch_size, g)
        total, report = self.loss(images, target)
        return total, images.shape[0], report

    def evaluate(self) -> dict | None:
        return self.evaluate_fn(self.model) if self.evaluate_fn is not None else None


@dataclass
class EvaluatorRunConfig:
    """``faceanim toon train-evaluator``: a run folder, the network, the optimisation and the held-out metrics."""

    out: str = "runs/toonface/evaluator"        # run folder
    model: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    train: EvaluatorTrainConfig = field(default_factory=EvaluatorTrainConfig)
    resume: bool = False                        # continue the run folder's checkpoint
    eval_faces: int = 1000                      # held-out draws for the final per-factor errors
    eval_faces_per_key: int = 100               # held-out identities per prompt key in the final metrics


@dataclass
class EvaluatorRunResult:
    evaluator_dir: Path  # the exported evaluator
    metrics: dict        # heldout_metrics of it (also in <out>/metrics.json)
    seconds: float       # training time


def train_evaluator(run: EvaluatorRunConfig, log: Log = print) -> EvaluatorRunResult:
    """Train the ground-truth evaluator on renders, export ``<out>/evaluator`` and write its held-out metrics to
    ``<out>/metrics.json`` (periodic evaluations use 200 draws and 16 identities per key)."""
    torch.manual_seed(run.train.seed)
    model = ToonEvaluator(run.model)
    trainer = EvaluatorTrainer(model, run.train, run.out,
                               evaluate=lambda m: heldout_metrics(m, EVALUATOR_HELDOUT, n=200, per_key=16)["summary"])
    if run.resume:
        log(f"resumed at step {trainer.resume()}")
    t0 = time.perf_counter()
    trainer.train(log=log)
    export = Path(run.out) / "evaluator"
    model.eval().save_pretrained(export)
    metrics = heldout_metrics(model, EVALUATOR_HELDOUT, n=run.eval_faces, per_key=run.eval_faces_per_key)
    (Path(run.out) / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return EvaluatorRunResult(export, metrics, time.perf_counter() - t0)

"""The registered metrics as a training hook: the same functions ``faceanim evaluate`` averages, on a fixed set of
videos every ``TrainConfig.metrics_every`` steps (logged to ``metrics.jsonl`` and TensorBoard ``metrics/…``)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from collections.abc import Sequence

import torch

from faceanim.evaluation.domains import DOMAINS, Domain, domain_of
from faceanim.evaluation.metrics import MetricContext, Video
from faceanim.evaluation.registry import get_metrics


class TrainingMetrics:
    """Every per-video registered metric whose requirements ``ctx`` meets (or those named), averaged over videos.

    >>> hook = TrainingMetrics(MetricContext(clip=loss_clip, template="The person is {}."))
    >>> hook(frames [B, T, 3, H, W], latents [B, T, num_ws, w_dim], prompts)   # {"clip_last": …, "latent_accel": …}
    """

    def __init__(self, ctx: MetricContext, names: Sequence[str] | None = None, domain: Domain | None = None):
        self.ctx = ctx
        self.domain = domain or DOMAINS["human"]  # names each prompt's ground-truth key
        available = ctx.available()
        self.metrics = {n: m for n, m in get_metrics().items()
                        if m.scope == "video" and set(m.requires) <= available and (names is None or n in names)}
        if names is not None and set(names) - set(self.metrics):
            missing = sorted(set(names) - set(self.metrics))
            raise ValueError(f"metric(s) {missing} are unknown, not per-video, or need what the context lacks "
                             f"(has: {', '.join(sorted(available)) or 'nothing'})")

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, latents: torch.Tensor, prompts: Sequence[str]) -> dict[str, float]:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for b, prompt in enumerate(prompts):
            key = self.domain.prompt_key(prompt) if self.ctx.evaluator is not None else None
            video = Video(frames[b].float(), latents[b].float(), prompt, "train", b, key)
            for metric in self.metrics.values():
                for name, value in metric.fn(video, self.ctx).items():
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        sums[name] = sums.get(name, 0.0) + float(value)
                        counts[name] = counts.get(name, 0) + 1
        return {k: sums[k] / counts[k] for k in sums}


def training_metrics(cfg, loss_clip, device: torch.device) -> TrainingMetrics:
    """The hook ``faceanim train`` gives ``build_trainer``: every per-video metric the run's models allow; with
    ``cfg.evaluator`` the ground truth of the domain that reads it (ToonFace's evaluator)."""
    from faceanim.evaluation.features import EvaluatorIdentity

    evaluator = identity = None
    domain = domain_of(SimpleNamespace(z_sampler=cfg.z_sampler), has_evaluator=bool(cfg.evaluator))
    if cfg.evaluator:
        evaluator = domain.load_evaluator(cfg.evaluator).to(device)
        identity = EvaluatorIdentity(evaluator)
    ctx = MetricContext(clip=loss_clip, template=cfg.template, evaluator=evaluator, identity=identity)
    return TrainingMetrics(ctx, domain=domain)

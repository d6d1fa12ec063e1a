"""The training loop the three ToonFace trainers share (CLIP, generator, evaluator).

One optimisation step per iteration on a batch drawn from ``torch.Generator().manual_seed(seed · 1_000_003 +
step)``, so that everything random is a function of (seed, step) and ``resume`` continues exactly. A trainer
subclasses :class:`TrainLoop` and fills in the hooks:

- ``train_step(g) -> (loss, images seen, report)``: draw the batch from ``g`` and compute the loss;
- ``lr_at(step)``: the learning rate of a step;
- ``evaluate() -> dict``: held-out figures (run in eval mode without gradients every ``eval_every`` steps);
- ``log_line(report, rate) -> dict``: the line written to ``log.jsonl`` every ``log_every`` steps;
- ``checkpoint_extra() -> dict`` / ``after_resume(state)``: what a checkpoint stores beside weights and
  optimizer, and what a resumed run does with it.

Files in the run folder: ``log.jsonl``, ``eval.jsonl``, ``checkpoint/`` (weights, optimizer, ``state.json``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from faceanim.training.checkpoint import load_checkpoint, save_checkpoint
from faceanim.utils.io import append_jsonl

Log = Callable[[str], None]


@dataclass
class LoopConfig:
    steps: int = 1000              # optimisation steps (the LR schedule spans them)
    batch_size: int = 16
    seed: int = 0                  # batch of step s: seed · 1_000_003 + s
    checkpoint_every: int = 250
    eval_every: int = 500


def step_rng(seed: int, step: int) -> torch.Generator:
    """The torch.Generator every random choice of training step ``step`` is drawn from."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class TrainLoop:
    """Step → log → evaluate → checkpoint, with the hooks above. ``model`` and ``opt`` are set by the subclass."""

    log_every = 25
    eval_at_end = False   # also evaluate after the last step (not only every eval_every steps)
    model_key = "model"   # the checkpoint's state.json stores the model's config under this key

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, cfg: LoopConfig,
                 run_dir: str | os.PathLike):
        self.model, self.opt, self.cfg, self.run_dir = model, opt, cfg, Path(run_dir)
        self.step = 0
        self.run_dir.mkdir(parents=True, exist_ok=True)

    # -- hooks -------------------------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        raise NotImplementedError

    def train_step(self, g: torch.Generator) -> tuple[torch.Tensor, int, dict[str, float]]:
        raise NotImplementedError

    def evaluate(self) -> dict | None:
        return None

    def log_line(self, report: dict[str, float], rate: float) -> dict:
        return {"lr": round(self.lr_at(self.step), 6), "img_per_s": round(rate, 1),
                **{k: round(v, 5) for k, v in report.items()}}

    def checkpoint_extra(self) -> dict:
        config = getattr(self.model, "config", None)
        return {"config": asdict(self.cfg), **({self.model_key: asdict(config)} if config is not None else {})}

    def after_resume(self, state: dict) -> None:
        pass

    # -- the loop ----------------------------------------------------------------------------------------------
    def wants_eval(self, steps: int) -> bool:
        return self.step % self.cfg.eval_every == 0 or (self.eval_at_end and self.step == steps)

    def train(self, steps: int | None = None, log: Log = print) -> None:
        """Train up to step ``steps`` (default ``cfg.steps``; the schedule always spans ``cfg.steps``)."""
        steps = steps or self.cfg.steps
        self.model.train()
        t0, seen = time.perf_counter(), 0
        while self.step < steps:
            g = step_rng(self.cfg.seed, self.step)
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            loss, n, report = self.train_step(g)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            seen += n
            if self.step % self.log_every == 0 or self.step == steps:
                line = {"step": self.step, **self.log_line(report, seen / (time.perf_counter() - t0))}
                append_jsonl(self.run_dir / "log.jsonl", line)
                log(json.dumps(line))
            if self.wants_eval(steps):
                self.model.eval()
                with torch.no_grad():
                    ev = self.evaluate()
                self.model.train()
                if ev is not None:
                    append_jsonl(self.run_dir / "eval.jsonl", {"step": self.step, **ev})
                    log(f"eval step {self.step}: {json.dumps(ev)}")
            if self.step % self.cfg.checkpoint_every == 0 or self.step == steps:
                self.save()
        self.model.eval()

    def save(self) -> None:
        save_checkpoint(self.run_dir / "checkpoint", self.model, self.opt, self.step, extra=self.checkpoint_extra())

    def resume(self) -> int:
        """Continue from the run folder's checkpoint; returns its step."""
        state = load_checkpoint(self.run_dir / "checkpoint", self.model, self.opt)
        self.step = int(state["step"])
        self.after_resume(state)
        return self.step

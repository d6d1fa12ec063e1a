"""Supervised training of the ToonFace generator: the StyleGAN2 class that loads FFHQ, taught to reproduce the
procedural renderer from a latent z that encodes the renderer's factors (no discriminator).

Loss: MSE + L1 on pixels, plus L1 on 2×-downsampled images (keeps colours right while the fine layers learn
edges); optionally weighted per pixel (``recipes.generator_batch(expression_weight=…)`` up-weights the regions
that animate), the weights normalized to mean 1 per batch. Everything random is a function of (seed, step), so ``resume`` continues exactly.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from faceanim.models.stylegan2 import Generator, GeneratorConfig
from faceanim.training.checkpoint import load_checkpoint, save_checkpoint
from faceanim.training.schedules import cosine_lr
from faceanim.utils.io import append_jsonl

# (n, g) -> (z [n, Z], images [n, 3, R, R]) or (z, images, per-pixel loss weights [n, 1, R, R])
BatchFn = Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]


@dataclass
class GeneratorTrainConfig:
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-3
    lr_final: float = 1e-4          # cosine decay to this
    betas: tuple[float, float] = (0.0, 0.99)
    l1_weight: float = 0.5
    low_res_weight: float = 0.5
    expression_weight: float = 0.0  # recipes.generator_batch: extra weight on the animated regions (0: plain)
    seed: int = 0
    checkpoint_every: int = 250
    eval_every: int = 1000
    eval_size: int = 256


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image for images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.clamp(-1, 1) - b).square().flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


class GeneratorTrainer:
    def __init__(self, G: Generator, batch_fn: BatchFn, cfg: GeneratorTrainConfig, run_dir: str | os.PathLike,
                 eval_batch: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.G, self.batch_fn, self.cfg, self.run_dir = G, batch_fn, cfg, Path(run_dir)
        self.G.train().requires_grad_(True)
        self.opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=tuple(float(b) for b in cfg.betas))
        self.step = 0
        self.eval_batch = eval_batch
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def lr_at(self, step: int) -> float:
        c = self.cfg
        return cosine_lr(step, c.steps, c.lr, c.lr_final)

    def loss(self, z: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.G(z)
        w = torch.ones_like(target[:, :1]) if weight is None else weight / weight.mean()
        err = out - target
        mse = (err.square() * w).mean()
        l1 = (err.abs() * w).mean()
        low = ((F.avg_pool2d(out, 2) - F.avg_pool2d(target, 2)).abs() * F.avg_pool2d(w, 2)).mean()
        total = mse + self.cfg.l1_weight * l1 + self.cfg.low_res_weight * low
        return total, {"mse": mse.item(), "l1": l1.item(), "low": low.item(),
                       "psnr": psnr(out.detach(), target).mean().item()}

    def train(self, steps: int | None = None, log: Callable[[str], None] = print) -> None:
        steps = steps or self.cfg.steps
        t0, seen = time.perf_counter(), 0
        while self.step < steps:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
            z, target, *weight = self.batch_fn(self.cfg.batch_size, g)
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            total, report = self.loss(z, target, *weight)
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            self.opt.step()
            self.step += 1
            seen += z.shape[0]
            if self.step % 25 == 0 or self.step == steps:
                rate = seen / (time.perf_counter() - t0)
                line = {"step": self.step, "lr": round(self.lr_at(self.step), 6), "img_per_s": round(rate, 1),
                        **{k: round(v, 5) for k, v in report.items()}}
                append_jsonl(self.run_dir / "log.jsonl", line)
                log(json.dumps(line))
            if self.step % self.cfg.eval_every == 0 and self.eval_batch is not None:
                ev = self.evaluate()
                append_jsonl(self.run_dir / "eval.jsonl", {"step": self.step, **ev})
                log(f"eval step {self.step}: {ev}")
            if self.step % self.cfg.checkpoint_every == 0 or self.step == steps:
                self.save()

    @torch.no_grad()
    def evaluate(self, batch_size: int = 32) -> dict[str, float]:
        """PSNR over held-out draws; with weights in the eval batch also ``psnr_changed``: the PSNR of the pixels
        whose weight is above 1 (the animated regions), pooled over the batch."""
        z, target, *weight = self.eval_batch
        self.G.eval()
        out = torch.cat([self.G(z[i:i + batch_size]).clamp(-1, 1) for i in range(0, z.shape[0], batch_size)])
        self.G.train()
        vals = psnr(out, target)
        report = {"psnr_mean": float(vals.mean()), "psnr_p10": float(vals.quantile(0.1)), "n": int(vals.numel())}
        if weight and bool((weight[0] > 1).any()):
            mask = (weight[0] > 1).expand_as(target)
            mse = (out - target)[mask].square().mean()
            report["psnr_changed"] = float(10 * torch.log10(4.0 / mse.clamp_min(1e-12)))
        return report

    def save(self) -> None:
        ck = self.run_dir / "checkpoint"
        save_checkpoint(ck, self.G, self.opt, self.step, extra={"config": asdict(self.cfg),
                                                                  "generator": asdict(self.G.config)})

    def resume(self) -> int:
        """Continue from the run folder's checkpoint. The config given now wins over the checkpoint's for the Adam
        betas and the mapping network's equalized-LR multiplier: weights and Adam moments are rescaled so that the
        network computes the same function and only its learning speed changes."""
        meta = load_checkpoint(self.run_dir / "checkpoint", self.G, self.opt)
        self.step = int(meta["step"])
        for group in self.opt.param_groups:
            group["betas"] = tuple(float(b) for b in self.cfg.betas)
        old = float(meta.get("generator", {}).get("mapping_lr_multiplier", self.G.config.mapping_lr_multiplier))
        rescale_mapping_lr(self.G, self.opt, old, self.G.config.mapping_lr_multiplier)
        return self.step


@torch.no_grad()
def rescale_mapping_lr(G: Generator, opt: torch.optim.Optimizer | None, old: float, new: float) -> None:
    """Move mapping weights stored for equalized-LR multiplier ``old`` to ``new`` (same function; stored = true/mult),
    and scale Adam's moments (if an optimizer is given) to match the gradients of the rescaled parameters."""
    if old == new:
        return
    k = old / new
    for layer in G.mapping.modules():
        if hasattr(layer, "weight_gain"):
            for p in (layer.weight, layer.bias):
                p.mul_(k)
                state = opt.state.get(p, {}) if opt is not None else {}
                if "exp_avg" in state:
                    state["exp_avg"].div_(k)
                if "exp_avg_sq" in state:
                    state["exp_avg_sq"].div_(k * k)


def toon_generator_config(z_dim: int, resolution: int = 128, w_dim: int = 256,
                          mapping_lr_multiplier: float = 0.1) -> GeneratorConfig:
    """Small StyleGAN2 for ToonFace: 128 px (W+ 12×w_dim), thin high-resolution layers."""
    channels = {"4": 256, "8": 256, "16": 128, "32": 64, "64": 32, "128": 16}  # ≈1.7 GFLOP/image fwd+bwd
    return GeneratorConfig(z_dim=z_dim, w_dim=w_dim, img_resolution=resolution,
                           channels={k: v for k, v in channels.items() if int(k) <= resolution},
                           mapping_layers=4, mapping_lr_multiplier=mapping_lr_multiplier)


def load_generator_run(folder: str | os.PathLike) -> Generator:
    """A generator from a native folder (``config.json`` + weights) or a training checkpoint folder of this trainer
    (``state.json`` holds its config)."""
    folder = Path(folder)
    state = folder / "state.json"
    if not state.is_file():
        return Generator.from_pretrained(folder)
    G = Generator(GeneratorConfig(**json.loads(state.read_text())["generator"]))
    load_checkpoint(folder, G, None)
    return G

"""Supervised training of the ToonFace generator: the StyleGAN2 class that loads FFHQ, taught to reproduce the
procedural renderer from a latent z that encodes the renderer's factors (no discriminator).

Loss: MSE + L1 on pixels, plus L1 on 2×-downsampled images (keeps colours right while the fine layers learn
edges); optionally weighted per pixel (``recipes.generator_batch(expression_weight=…)`` up-weights the regions
that animate), the weights normalized to mean 1 per batch. Everything random is a function of (seed, step), so ``resume`` continues exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from faceanim.errors import FaceanimError
from faceanim.models.stylegan2 import Generator, GeneratorConfig
from faceanim.toon.loop import Log, LoopConfig, TrainLoop
from faceanim.toon.seeds import GENERATOR_EVAL, W_AVG
from faceanim.training.checkpoint import load_checkpoint
from faceanim.utils.schedules import cosine_lr

# (n, g) -> (z [n, Z], images [n, 3, R, R]) or (z, images, per-pixel loss weights [n, 1, R, R])
BatchFn = Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]


@dataclass
class GeneratorTrainConfig(LoopConfig):
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-3
    lr_final: float = 1e-4          # cosine decay to this
    betas: tuple[float, float] = (0.0, 0.99)
    l1_weight: float = 0.5
    low_res_weight: float = 0.5
    expression_weight: float = 0.0  # recipes.generator_batch: extra weight on the animated regions (0: plain)
    focus_keys: tuple[str, ...] = ()  # prompt keys shown alone on a neutral face in a share of every batch
    focus_share: float = 0.0        # that share (0: every face from the usual training distribution)
    eval_every: int = 1000


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image for images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.clamp(-1, 1) - b).square().flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


class GeneratorTrainer(TrainLoop):
    model_key = "generator"

    def __init__(self, G: Generator, batch_fn: BatchFn, cfg: GeneratorTrainConfig, run_dir: str | os.PathLike,
                 eval_batch: tuple[torch.Tensor, ...] | None = None):
        G.train().requires_grad_(True)
        opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=tuple(float(b) for b in cfg.betas))
        super().__init__(G, opt, cfg, run_dir)
        self.G, self.batch_fn, self.eval_batch = G, batch_fn, eval_batch

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

    def train_step(self, g: torch.Generator) -> tuple[torch.Tensor, int, dict[str, float]]:
        z, target, *weight = self.batch_fn(self.cfg.batch_size, g)
        total, report = self.loss(z, target, *weight)
        return total, z.shape[0], report

    @torch.no_grad()
    def evaluate(self, batch_size: int = 32) -> dict[str, float] | None:
        """PSNR over the held-out draws (None without them); with weights in the eval batch also
        ``psnr_changed``: the PSNR of the pixels whose weight is above 1 (the animated regions), pooled over the
        batch."""
        if self.eval_batch is None:
            return None
        z, target, *weight = self.eval_batch
        was_training = self.G.training
        self.G.eval()
        out = torch.cat([self.G(z[i:i + batch_size]).clamp(-1, 1) for i in range(0, z.shape[0], batch_size)])
        self.G.train(was_training)
        vals = psnr(out, target)
        report = {"psnr_mean": float(vals.mean()), "psnr_p10": float(vals.quantile(0.1)), "n": int(vals.numel())}
        if weight and bool((weight[0] > 1).any()):
            mask = (weight[0] > 1).expand_as(target)
            mse = (out - target)[mask].square().mean()
            report["psnr_changed"] = float(10 * torch.log10(4.0 / mse.clamp_min(1e-12)))
        return report

    def after_resume(self, state: dict) -> None:
        """The config given now wins over the checkpoint's for the Adam betas and the mapping network's
        equalized-LR multiplier: weights and Adam moments are rescaled so that the network computes the same
        function and only its learning speed changes."""
        for group in self.opt.param_groups:
            group["betas"] = tuple(float(b) for b in self.cfg.betas)
        old = float(state.get("generator", {}).get("mapping_lr_multiplier", self.G.config.mapping_lr_multiplier))
        rescale_mapping_lr(self.G, self.opt, old, self.G.config.mapping_lr_multiplier)


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


def toon_w_avg(G: Generator) -> torch.Tensor:
    """Mean W of 2000 neutral ToonFace identities ``[w_dim]``: the truncation centre of the "toonface" sampler."""
    from faceanim.toon.latent import Z_DIM, sample_identity_z

    z = sample_identity_z(2000, Z_DIM, torch.Generator().manual_seed(W_AVG))
    return G.mapping(z).mean(0)


def parse_channels(spec: str) -> dict[int, int]:
    """``"32=128,64=64"`` → ``{32: 128, 64: 64}`` (resolution → feature maps)."""
    try:
        return {int(k): int(v) for k, v in (x.split("=") for x in spec.split(","))}
    except ValueError:
        raise FaceanimError(f"channels {spec!r}: expected RES=N,… (e.g. 32=128,64=64)") from None


@dataclass
class GeneratorRunConfig:
    """``faceanim toon train-generator``: a run folder, where the generator starts, and the optimisation."""

    out: str = "runs/toonface/generator"        # run folder
    train: GeneratorTrainConfig = field(default_factory=lambda: GeneratorTrainConfig(steps=8000))
    mapping_lr_multiplier: float = 0.1          # equalized-LR multiplier of the mapping network
    resume: bool = False                        # continue the run folder's checkpoint (its own architecture)
    init_from: str | None = None                # start a new run from a generator or training checkpoint folder
    channels: dict[int, int] | None = None      # with init_from: widen these resolutions, keeping the function
    eval_faces: int = 256                       # held-out draws of the periodic PSNR

    def __post_init__(self) -> None:
        from faceanim.toon.captions import PROMPT_TARGETS

        unknown = [k for k in self.train.focus_keys if k not in PROMPT_TARGETS]
        if unknown:
            raise FaceanimError(f"focus keys {', '.join(unknown)}: not prompt keys "
                                f"(known: {', '.join(PROMPT_TARGETS)})")
        if self.train.focus_keys and not 0 < self.train.focus_share <= 1:
            raise FaceanimError(f"focus share {self.train.focus_share}: expected a share in (0, 1]")
        if self.channels and not self.init_from:
            raise FaceanimError("widening channels needs a trained generator to widen: give --init-from")
        if self.init_from and self.resume:
            raise FaceanimError("--init-from starts a new run; --resume continues one: give one of them")


@dataclass
class GeneratorRunResult:
    generator_dir: Path  # the exported generator (w_avg set to the neutral identities' mean W)
    seconds: float       # training time


def build_generator(run: GeneratorRunConfig, log: Log = print) -> Generator:
    """The generator a run starts from: the checkpoint's architecture when resuming, a (widened) trained one with
    ``init_from``, else a new ``toon_generator_config`` network; with the run's mapping LR multiplier."""
    from faceanim.toon.latent import Z_DIM

    checkpoint = Path(run.out) / "checkpoint" / "state.json"
    mult = run.mapping_lr_multiplier
    if run.resume and checkpoint.is_file():  # the run's own architecture (it may have been widened)
        config = json.loads(checkpoint.read_text())["generator"]
        return Generator(GeneratorConfig(**{**config, "mapping_lr_multiplier": mult}))
    if not run.init_from:
        return Generator(toon_generator_config(Z_DIM, mapping_lr_multiplier=mult))
    from faceanim.models.stylegan2.surgery import widen

    G0 = load_generator_run(run.init_from)
    if run.channels:
        try:
            G0 = widen(G0, run.channels, seed=run.train.seed)
        except ValueError as exc:
            raise FaceanimError(f"channels: {exc}") from None
    G = Generator(dataclasses.replace(G0.config, mapping_lr_multiplier=mult))
    G.load_state_dict(G0.state_dict())
    rescale_mapping_lr(G, None, G0.config.mapping_lr_multiplier, mult)
    log(f"started from {run.init_from} (channels {G.config.channels})")
    return G


def train_generator(run: GeneratorRunConfig, log: Log = print) -> GeneratorRunResult:
    """Train (or widen and train, or resume) the ToonFace generator on renderer draws and export
    ``<out>/generator`` with ``w_avg`` set for the "toonface" sampler."""
    from functools import partial

    from faceanim.toon.recipes import generator_batch

    torch.manual_seed(run.train.seed)
    G = build_generator(run, log)
    # the held-out batch always carries the animated-region mask, for the periodic psnr_changed
    eval_batch = generator_batch(run.eval_faces, torch.Generator().manual_seed(GENERATOR_EVAL), expression_weight=1.0)
    batch_fn = partial(generator_batch, expression_weight=run.train.expression_weight,
                       focus_keys=tuple(run.train.focus_keys), focus_share=run.train.focus_share)
    trainer = GeneratorTrainer(G, batch_fn, run.train, run.out, eval_batch=eval_batch)
    if run.resume:
        log(f"resumed at step {trainer.resume()}")
    t0 = time.perf_counter()
    trainer.train(log=log)
    export = Path(run.out) / "generator"
    with torch.no_grad():
        G.mapping.w_avg.copy_(toon_w_avg(G))
    G.eval().save_pretrained(export)
    return GeneratorRunResult(export, time.perf_counter() - t0)

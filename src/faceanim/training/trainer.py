"""The training loop of the motion model. It receives built objects (see ``build.py``) and only trains."""

from __future__ import annotations

from collections.abc import Sequence

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from faceanim.data.prompts import wordings
from faceanim.errors import FaceanimError
from faceanim.losses.animation import AnimationLoss
from faceanim.losses.lpips import resize_area
from faceanim.models.stylegan2.synthesis import synthesize_checkpointed
from faceanim.motion.model import LanguageGuidedAnimator
from faceanim.training.checkpoint import load_checkpoint, save_checkpoint
from faceanim.training.config import TrainConfig
from faceanim.utils.io import append_jsonl


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Trainer:
    """One optimization step (section IV-A-2):

    1. batch k: B sources (images + w_inv, or sampled w_s) and B distinct prompts (``StepBatchSampler``);
    2. the animator produces w⁽¹⁾…w⁽ᵀ⁾ (h⁽¹⁾ drawn from a generator seeded by (seed, k, rank));
    3. the frozen generator renders only the frames a pixel loss reads (``loss.pixel_frames``), with activation
       checkpointing where configured (``TrainConfig.activation_checkpointing``);
    4. the loss returns named terms and their weighted total; Adam steps.

    Everything random is a function of (seed, step, rank), so ``resume`` continues exactly. At the last step the
    checkpoint and ``motion_model/`` are written before the optional samples and metrics, which render in chunks
    of ``cfg.render_chunk(resolution)`` frames; a failure there is reported as a warning and does not end the run.
    """

    def __init__(self, config: TrainConfig, animator: LanguageGuidedAnimator, generator: nn.Module,
                 loss: AnimationLoss, optimizer: torch.optim.Optimizer, sampler, source, prompts: list[str],
                 run_dir: Path, device: torch.device, dist: DistInfo | None = None,
                 train_module: nn.Module | None = None, metrics=None, progress: bool = True):
        """``metrics``: a callable (frames ``[B, T, 3, H, W]``, latents, prompts) → named floats, run every
        ``metrics_every`` steps on fixed videos (``faceanim.evaluation.hooks.TrainingMetrics``)."""
        self.cfg, self.animator, self.G, self.loss = config, animator, generator, loss
        # a prompt may list wordings of one motion ("smiling | grinning"): each use draws one; samples and
        # metrics use the first
        self.wordings = [wordings(p) for p in prompts]
        self.optimizer, self.sampler, self.source = optimizer, sampler, source
        self.prompts = [w[0] for w in self.wordings]
        self.run_dir, self.device, self.dist = Path(run_dir), device, dist or DistInfo()
        self.module = train_module or animator  # the DDP wrapper when distributed
        self.metrics = metrics
        self.progress = progress
        self.region_masks = None  # where each prompt may change a face (loss.outside)
        if config.region_masks and "outside" in loss.active:
            from faceanim.data.regions import get_region_masks

            try:
                self.region_masks = get_region_masks(config.region_masks)
            except ValueError as exc:
                raise FaceanimError(str(exc)) from None
        self.target_latents = None  # where each prompt should take a face (loss.target, loss.target_pixels)
        if config.target_latents and ("target" in loss.active or "target_pixels" in loss.active):
            from faceanim.data.targets import get_target_latents

            try:
                self.target_latents = get_target_latents(config.target_latents)
            except ValueError as exc:
                raise FaceanimError(str(exc)) from None
        # each prompt's target gain (loss.target_gains, keyed by its first wording; the rest: loss.target_gain)
        gains = config.loss.target_gains
        unknown = sorted(set(gains) - set(self.prompts))
        if unknown:
            raise FaceanimError(f"loss.target_gains: {', '.join(map(repr, unknown))} is not a prompt's first wording "
                                f"(the prompts: {', '.join(map(repr, self.prompts))})")
        self.prompt_gains = torch.tensor([float(gains.get(p, config.loss.target_gain)) for p in self.prompts])
        self.step = 0
        self.checkpointing = config.uses_checkpointing(generator.img_resolution)
        self.writer = None
        self.history: list[dict[str, float]] = []

    # -- batches -------------------------------------------------------------------------------------------------
    def _batch(self, step: int) -> dict:
        items, prompt_idx = self.sampler.batch(step)
        prompts = [self._wording(i, step, slot) for slot, i in enumerate(prompt_idx)]
        if self.cfg.mode == "latent":
            batch = {"prompts": prompts, "w_source": self.source.codes(items).to(self.device)}
            if self.region_masks is None and self.target_latents is None:
                return batch
            z, first = self.source.z(items), [self.wordings[i][0] for i in prompt_idx]  # each prompt's first wording
            if self.region_masks is not None:  # each prompt's region on its face
                batch["regions"] = self.region_masks(z, first, self.G.img_resolution).to(self.device)
            if self.target_latents is not None:  # each prompt's target code on its face
                z_target, known = self.target_latents(z, first)
                batch["targets"] = (self.source.codes_of(z_target).to(self.device), known.to(self.device),
                                    self.prompt_gains[list(prompt_idx)].to(self.device))
            return batch
        samples = [self.source[i] for i in items]
        return {"prompts": prompts, "image": torch.stack([s["image"] for s in samples]).to(self.device),
                "w_inv": torch.stack([s["w_inv"] for s in samples]).to(self.device)}

    def _wording(self, prompt: int, step: int, slot: int) -> str:
        """One wording of prompt ``prompt`` for batch slot ``slot`` of step ``step`` (a function of seed, step, slot)."""
        options = self.wordings[prompt]
        if len(options) == 1:
            return options[0]
        g = torch.Generator().manual_seed(((self.cfg.seed * 1_000_003 + step) * 257 + slot) * 7 + 3)
        return options[int(torch.randint(len(options), (1,), generator=g))]

    def _step_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step) * 131 + self.dist.rank)

    def render(self, ws: torch.Tensor) -> torch.Tensor:
        """W+ ``[N, num_ws, w_dim]`` → frames through the frozen generator (gradients flow to ws; with
        ``self.checkpointing`` the synthesis keeps no activations and renders each image again in the backward)."""
        if self.checkpointing and torch.is_grad_enabled() and ws.requires_grad:
            return synthesize_checkpointed(self.G.synthesis, ws, chunk=1, noise_mode="const")
        return self.G.synthesis(ws, noise_mode="const")

    @torch.no_grad()
    def render_frames(self, ws: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """W+ of videos ``[B, T, num_ws, w_dim]`` → frames ``[B, T, 3, H, W]`` without gradients, in generator calls
        of ``cfg.render_chunk(resolution)`` frames; ``size``: each chunk is area-resized to that many px at once."""
        B, T = ws.shape[:2]
        flat = ws.reshape(B * T, *ws.shape[2:])
        step = self.cfg.render_chunk(self.G.img_resolution)
        chunks = []
        for i in range(0, flat.shape[0], step):
            imgs = self.G.synthesis(flat[i:i + step], noise_mode="const")
            chunks.append(resize_area(imgs, size) if size else imgs)
        frames = torch.cat(chunks)
        return frames.reshape(B, T, *frames.shape[1:])

    # -- one step ------------------------------------------------------------------------------------------------
    def _forward(self, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The losses of step ``step``'s batch (its prompts, sources and motion noise are functions of ``step``)."""
        batch = self._batch(step)
        T = self.cfg.num_frames
        out = self.module(batch["prompts"], T, image=batch.get("image"), w_inv=batch.get("w_inv"),
                          w_source=batch.get("w_source"), rng=self._step_generator(step))
        out = self._anchored(out)
        needed = self.loss.pixel_frames(T)
        frames = {}
        if needed:
            B = out.ws.shape[0]
            imgs = self.render(out.ws[:, needed].reshape(B * len(needed), *out.ws.shape[2:]))
            imgs = imgs.reshape(B, len(needed), *imgs.shape[1:])
            frames = {t: imgs[:, j] for j, t in enumerate(needed)}
        source = None
        if "lpips" in self.loss.active:
            size = self.loss.lpips.size or frames[0].shape[-1]  # the LPIPS module resizes frames to its size
            if batch.get("image") is not None:
                source = resize_area(batch["image"], size)
            else:
                with torch.no_grad():
                    source = resize_area(self.render(out.w_s.detach()), size)
        target_images = None
        if "target_pixels" in self.loss.active and batch.get("targets") is not None:
            with torch.no_grad():  # the generator's image of where each prompt should take its face
                w_target, _, gain = batch["targets"]
                target_images = self.render(self.loss.target.aim(out.w_s.detach(), w_target, gain))
        views = torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step) * 131 + self.dist.rank + 7_919)
        return self.loss(out.ws, out.w_s, frames, batch["prompts"], source, rng=views, regions=batch.get("regions"),
                         targets=batch.get("targets"), target_images=target_images)

    def _anchored(self, out):
        """With ``anchor_first_frame``, w⁽ⁱ⁾ − w⁽¹⁾ + w_s: the motion must come from frames 2…T, not from a jump at
        frame 1 (the pipeline plays videos this way)."""
        if not self.cfg.anchor_first_frame:
            return out
        return type(out)(ws=out.ws - out.ws[:, :1] + out.w_s[:, None], w_s=out.w_s, codes=out.codes)

    def train_step(self, step: int) -> dict[str, float]:
        total, terms = self._forward(step)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.optimizer.step()
        report = {"loss": float(total.detach()), "grad_norm": float(grad_norm)}
        report.update({k: float(v.detach()) for k, v in terms.items()})
        return report

    @torch.no_grad()
    def evaluate(self, steps: Sequence[int]) -> dict[str, float]:
        """Mean loss terms over the batches of ``steps`` without training (e.g. held-out step numbers beyond the
        run's, to compare the same batches before and after training)."""
        was_training = self.animator.training
        self.animator.eval()
        sums: dict[str, float] = {}
        for step in steps:
            total, terms = self._forward(step)
            for k, v in {"loss": total, **terms}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        self.animator.train(was_training)
        return {k: v / len(steps) for k, v in sums.items()}

    # -- loop ----------------------------------------------------------------------------------------------------
    def train(self, steps: int | None = None) -> list[dict[str, float]]:
        steps = self.cfg.steps if steps is None else steps
        bar = None
        if self.dist.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, initial=self.step, desc="train", dynamic_ncols=True,
                       disable=not self.progress)
            self._open_writer()
        self.animator.train()
        saved_final = False
        while self.step < steps:
            report = self.train_step(self.step)
            self.step += 1
            self.history.append({"step": self.step, **report})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in report.items()}, refresh=False)
            if self.dist.is_main:
                self._log(report)
            if not math.isfinite(report["loss"]):  # before saving: keep the last good checkpoint and model
                raise FloatingPointError(f"loss became {report['loss']} at step {self.step}")
            last = self.step == steps
            if self.dist.is_main:
                if self.step % self.cfg.checkpoint_every == 0 or last:
                    self.save()
                if last:  # the result first: the optional outputs below may fail (memory) without losing it
                    self.save_motion_model()
                    saved_final = True
                if self.cfg.sample_every and (self.step % self.cfg.sample_every == 0 or last):
                    self._optional("samples", self.write_samples)
                if self.metrics is not None and self.cfg.metrics_every and (
                        self.step % self.cfg.metrics_every == 0 or last):
                    self._optional("metrics", self.log_metrics)
        if bar is not None:
            bar.close()
        if self.cfg.save_rank_weights:
            from faceanim.utils.io import save_safetensors

            save_safetensors({k: v.detach().cpu().contiguous() for k, v in self.animator.state_dict().items()},
                             self.run_dir / f"final_rank{self.dist.rank}.safetensors")
        if self.dist.is_main:
            if not saved_final:  # no step run (resumed at or past ``steps``)
                self.save_motion_model()
            self.animator.eval()
            if self.writer is not None:
                self.writer.close()
        return self.history

    def save_motion_model(self) -> Path:
        """``run_dir/motion_model``: the trained M, H_v, H_t and conditioning CLIP, as a bundle takes them."""
        was_training = self.animator.training
        self.animator.eval()
        folder = self.animator.save_pretrained(self.run_dir / "motion_model")
        self.animator.train(was_training)
        return Path(folder)

    def _optional(self, what: str, fn) -> None:
        """Run an optional output (samples, metrics); a failure is a one-line warning, not the end of the run."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 — e.g. out of memory: the weights are saved, training goes on
            print(f"faceanim: warning: {what} at step {self.step} failed ({type(exc).__name__}: {exc})",
                  file=sys.stderr)

    # -- bookkeeping (rank 0) ----------------------------------------------------------------------------------
    def _open_writer(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
            return
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def _log(self, report: dict[str, float]) -> None:
        if self.step % self.cfg.log_every and self.step != 1:
            return
        append_jsonl(self.run_dir / "log.jsonl", {"step": self.step, **report})
        if self.writer is not None:
            for k, v in report.items():
                self.writer.add_scalar(f"loss/{k}", v, self.step)

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints" / "latest"

    def save(self) -> None:
        self.checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.checkpoint_dir, self.animator, self.optimizer, self.step,
                        extra={"config": self.cfg.to_dict()})

    def resume(self, folder: str | os.PathLike | None = None) -> int:
        meta = load_checkpoint(folder or self.checkpoint_dir, self.animator, self.optimizer, self.device)
        self.step = int(meta["step"])
        return self.step

    @torch.no_grad()
    def sample_codes(self, n: int, distinct_sources: bool = False) -> tuple[list[str], torch.Tensor]:
        """(prompts, W+ ``[n, T, num_ws, w_dim]``) of fixed videos: the first ``n`` prompts (in turn) on one source,
        or on ``n`` distinct sources; ``sample_frames`` frames with the inference schedule and fixed motion noise."""
        was_training = self.animator.training
        self.animator.eval()
        prompts = [self.prompts[i % len(self.prompts)] for i in range(n)]
        batch = self._fixed_sample_batch(n, distinct_sources)
        out = self.animator(prompts, self.cfg.sample_frames, image=batch.get("image"), w_inv=batch.get("w_inv"),
                            w_source=batch.get("w_source"), decay=True, rng=torch.Generator().manual_seed(0))
        out = self._anchored(out)
        self.animator.train(was_training)
        return prompts, out.ws

    def sample_videos(self, n: int, distinct_sources: bool = False,
                      size: int | None = None) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """(prompts, frames ``[n, T, 3, H, W]``, W+ ``[n, T, num_ws, w_dim]``) of the videos of
        :meth:`sample_codes`, rendered in chunks (``size``: frames area-resized to that many px)."""
        prompts, ws = self.sample_codes(n, distinct_sources)
        return prompts, self.render_frames(ws, size), ws

    def write_samples(self, count: int = 4) -> Path | None:
        """A grid PNG (rows: sources × prompts, columns: frames with the inference schedule, ``sample_size`` px)
        + TensorBoard image."""
        from faceanim.utils.images import save_grid

        size = min(self.cfg.sample_size or self.G.img_resolution, self.G.img_resolution)
        _, frames, _ = self.sample_videos(min(count, len(self.prompts)), size=size)
        path = self.run_dir / "samples" / f"step{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid = save_grid(frames, path)
        if self.writer is not None:
            self.writer.add_image("samples", grid, self.step)
        return path

    def log_metrics(self) -> dict[str, float]:
        """The metrics hook on ``metrics_videos`` fixed videos (distinct sources) → metrics.jsonl, TensorBoard.
        One video at a time is rendered and scored (the hook's values are per-video means, averaged here over the
        videos that give each one), so memory holds one video's frames at any resolution."""
        prompts, ws = self.sample_codes(self.cfg.metrics_videos, distinct_sources=True)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for b, prompt in enumerate(prompts):
            for k, v in self.metrics(self.render_frames(ws[b:b + 1]), ws[b:b + 1], [prompt]).items():
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
        values = {k: sums[k] / counts[k] for k in sums}
        append_jsonl(self.run_dir / "metrics.jsonl", {"step": self.step, **values})
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"metrics/{k}", v, self.step)
        return values

    def _fixed_sample_batch(self, n: int, distinct_sources: bool = False) -> dict:
        items = [i % len(self.source) for i in range(n)] if distinct_sources else [0] * n
        if self.cfg.mode == "latent":
            return {"w_source": self.source.codes(items).to(self.device)}
        samples = [self.source[i] for i in items]
        return {"image": torch.stack([s["image"] for s in samples]).to(self.device),
                "w_inv": torch.stack([s["w_inv"] for s in samples]).to(self.device)}

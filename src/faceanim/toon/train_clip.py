"""Contrastive training of the small ToonFace CLIP (an open_clip custom architecture) on renders + captions.

Captions repeat inside a batch (many renders are "smiling"), so the InfoNCE targets are multi-positive: an
image's positives are all texts of the batch with the same caption string, and vice versa.
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

from faceanim.encoders.clip import CLIPConfig, CLIPEncoder
from faceanim.training.checkpoint import load_checkpoint, save_checkpoint
from faceanim.training.schedules import cosine_lr
from faceanim.utils.io import append_jsonl

PairFn = Callable[[int, torch.Generator], tuple[torch.Tensor, list[str]]]  # (n, g) -> (images [-1,1], captions)


def toon_clip_config(image_size: int = 64, context_length: int = 32) -> CLIPConfig:
    """A small CLIP: ModifiedResNet [1,1,1,1] width 16 at 64 px, a 3-layer 128-wide text transformer, 128-d
    embeddings; most of its parameters are the 49,408 × 128 token embedding of OpenAI's BPE vocabulary."""
    return CLIPConfig(embed_dim=128, name="toonface-clip",
                      vision_cfg={"layers": [1, 1, 1, 1], "width": 16, "image_size": image_size},
                      text_cfg={"context_length": context_length, "vocab_size": 49408, "width": 128, "heads": 2,
                                "layers": 3})


@dataclass
class ClipTrainConfig:
    steps: int = 3000
    batch_size: int = 96
    lr: float = 5e-4
    lr_final: float = 1e-5
    warmup: int = 100
    weight_decay: float = 0.1
    seed: int = 0
    checkpoint_every: int = 250
    eval_every: int = 500


def multi_positive_infonce(img: torch.Tensor, txt: torch.Tensor, captions: list[str], scale: torch.Tensor) -> torch.Tensor:
    same = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32, device=img.device)
    targets = same / same.sum(1, keepdim=True)
    logits = scale * img @ txt.t()
    return 0.5 * (torch.sum(-targets * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-targets * F.log_softmax(logits.t(), 1), 1).mean())


class ClipTrainer:
    def __init__(self, clip: CLIPEncoder, pair_fn: PairFn, cfg: ClipTrainConfig, run_dir: str | os.PathLike,
                 evaluate: Callable[[CLIPEncoder], dict] | None = None, template: str | None = None):
        self.clip, self.pair_fn, self.cfg, self.run_dir = clip, pair_fn, cfg, Path(run_dir)
        self.evaluate_fn, self.template = evaluate, template
        decay = [p for n, p in clip.named_parameters() if p.ndim >= 2 and "embedding" not in n]
        rest = [p for n, p in clip.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        self.step = 0
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def lr_at(self, step: int) -> float:
        c = self.cfg
        return cosine_lr(step, c.steps, c.lr, c.lr_final, c.warmup)

    def train(self, steps: int | None = None, log: Callable[[str], None] = print) -> None:
        steps = steps or self.cfg.steps
        self.clip.train()
        t0, seen = time.perf_counter(), 0
        while self.step < steps:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
            images, captions = self.pair_fn(self.cfg.batch_size, g)
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            img = self.clip.encode_image(images)
            txt = self.clip.encode_text(captions, template=None)
            scale = self.clip.model.logit_scale.exp().clamp(max=100)
            loss = multi_positive_infonce(img, txt, captions, scale)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            seen += len(captions)
            if self.step % 25 == 0 or self.step == steps:
                line = {"step": self.step, "loss": round(float(loss.detach()), 4), "scale": round(float(scale.detach()), 2),
                        "pairs_per_s": round(seen / (time.perf_counter() - t0), 1)}
                append_jsonl(self.run_dir / "log.jsonl", line)
                log(json.dumps(line))
            if self.evaluate_fn is not None and (self.step % self.cfg.eval_every == 0 or self.step == steps):
                self.clip.eval()
                with torch.no_grad():
                    ev = self.evaluate_fn(self.clip)
                self.clip.train()
                append_jsonl(self.run_dir / "eval.jsonl", {"step": self.step, **ev})
                log(f"eval step {self.step}: {json.dumps(ev)}")
            if self.step % self.cfg.checkpoint_every == 0 or self.step == steps:
                self.save()
        self.clip.eval()

    def save(self) -> None:
        save_checkpoint(self.run_dir / "checkpoint", self.clip, self.opt, self.step,
                        extra={"config": asdict(self.cfg), "clip": asdict(self.clip.config)})

    def resume(self) -> int:
        self.step = int(load_checkpoint(self.run_dir / "checkpoint", self.clip, self.opt)["step"])
        return self.step

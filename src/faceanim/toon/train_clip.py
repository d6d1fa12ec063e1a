"""Contrastive training of the small ToonFace CLIP (an open_clip custom architecture) on renders + captions.

Captions repeat inside a batch (many renders are "smiling"), so the InfoNCE targets are multi-positive: an
image's positives are all texts of the batch with the same caption string, and vice versa.

:func:`train_clip` is ``faceanim toon train-clip``: a new or fine-tuned CLIP trained on
:class:`~faceanim.toon.clip_data.ClipPairSampler` batches, exported to ``<out>/clip`` with its zero-shot figures in
``<out>/zero_shot.json``.
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

from faceanim.encoders.clip import CLIPConfig, CLIPEncoder
from faceanim.toon.clip_data import ClipPairConfig
from faceanim.toon.loop import Log, LoopConfig, TrainLoop
from faceanim.utils.schedules import cosine_lr

PairFn = Callable[[int, torch.Generator], tuple[torch.Tensor, list[str]]]  # (n, g) -> (images [-1,1], captions)


def toon_clip_config(image_size: int = 64, context_length: int = 32) -> CLIPConfig:
    """A small CLIP: ModifiedResNet [1,1,1,1] width 16 at 64 px, a 3-layer 128-wide text transformer, 128-d
    embeddings; most of its parameters are the 49,408 × 128 token embedding of OpenAI's BPE vocabulary."""
    return CLIPConfig(embed_dim=128, name="toonface-clip",
                      vision_cfg={"layers": [1, 1, 1, 1], "width": 16, "image_size": image_size},
                      text_cfg={"context_length": context_length, "vocab_size": 49408, "width": 128, "heads": 2,
                                "layers": 3})


@dataclass
class ClipTrainConfig(LoopConfig):
    steps: int = 3000
    batch_size: int = 96
    lr: float = 5e-4
    lr_final: float = 1e-5
    warmup: int = 100
    weight_decay: float = 0.1


def multi_positive_infonce(img: torch.Tensor, txt: torch.Tensor, captions: list[str], scale: torch.Tensor) -> torch.Tensor:
    same = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32, device=img.device)
    targets = same / same.sum(1, keepdim=True)
    logits = scale * img @ txt.t()
    return 0.5 * (torch.sum(-targets * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-targets * F.log_softmax(logits.t(), 1), 1).mean())


class ClipTrainer(TrainLoop):
    eval_at_end = True
    model_key = "clip"

    def __init__(self, clip: CLIPEncoder, pair_fn: PairFn, cfg: ClipTrainConfig, run_dir: str | os.PathLike,
                 evaluate: Callable[[CLIPEncoder], dict] | None = None):
        decay = [p for n, p in clip.named_parameters() if p.ndim >= 2 and "embedding" not in n]
        rest = [p for n, p in clip.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        super().__init__(clip, opt, cfg, run_dir)
        self.clip, self.pair_fn, self.evaluate_fn = clip, pair_fn, evaluate

    def lr_at(self, step: int) -> float:
        c = self.cfg
        return cosine_lr(step, c.steps, c.lr, c.lr_final, c.warmup)

    def train_step(self, g: torch.Generator) -> tuple[torch.Tensor, int, dict[str, float]]:
        images, captions = self.pair_fn(self.cfg.batch_size, g)
        img = self.clip.encode_image(images)
        txt = self.clip.encode_text(captions, template=None)
        scale = self.clip.model.logit_scale.exp().clamp(max=100)
        loss = multi_positive_infonce(img, txt, captions, scale)
        return loss, len(captions), {"loss": float(loss.detach()), "scale": float(scale.detach())}

    def log_line(self, report: dict[str, float], rate: float) -> dict:
        return {"loss": round(report["loss"], 4), "scale": round(report["scale"], 2), "pairs_per_s": round(rate, 1)}

    def evaluate(self) -> dict | None:
        return self.evaluate_fn(self.clip) if self.evaluate_fn is not None else None


@dataclass
class ClipRunConfig:
    """``faceanim toon train-clip``: a run folder, the CLIP to start from, the data recipe and the optimisation."""

    out: str = "runs/toonface/clip"                                # run folder
    train: ClipTrainConfig = field(default_factory=ClipTrainConfig)
    data: ClipPairConfig = field(default_factory=ClipPairConfig)   # data.image_size is the CLIP's input size
    init_from: str | None = None        # a trained CLIP folder to start from (new optimizer and schedule)
    resume: bool = False                # continue the run folder's checkpoint
    eval_faces_per_key: int = 64        # held-out faces per expression key in the final zero-shot eval
    periodic_eval_faces_per_key: int = 12  # … in the periodic evals during training


@dataclass
class ClipRunResult:
    clip_dir: Path   # the exported CLIP
    zero_shot: dict  # zero_shot_eval of the exported CLIP (also in <out>/zero_shot.json)
    seconds: float   # training time


def train_clip(run: ClipRunConfig, log: Log = print) -> ClipRunResult:
    """Train (or fine-tune, or resume) the ToonFace CLIP, export ``<out>/clip`` and score it zero-shot."""
    from faceanim.toon.clip_data import ClipPairSampler
    from faceanim.toon.zero_shot import zero_shot_eval

    torch.manual_seed(run.train.seed)
    size = run.data.image_size
    if run.init_from:
        clip = CLIPEncoder.from_pretrained(run.init_from)
        if clip.image_size != size:  # same weights, the image tower's position embedding resampled
            log(f"the CLIP in {run.init_from} reads {clip.image_size} px images: resized to {size} px")
            clip = clip.with_image_size(size)
    else:
        clip = CLIPEncoder.from_config(toon_clip_config(size))
    data = dataclasses.replace(run.data, context_length=clip.context_length)
    per_key = run.periodic_eval_faces_per_key
    trainer = ClipTrainer(clip, ClipPairSampler(data), run.train, run.out,
                          evaluate=lambda c: {k: v["top1_mean"] for k, v in zero_shot_eval(c, per_key=per_key).items()})
    if run.resume:
        log(f"resumed at step {trainer.resume()}")
    t0 = time.perf_counter()
    trainer.train(log=log)
    export = Path(run.out) / "clip"
    clip.eval().save_pretrained(export)
    ev = zero_shot_eval(clip, per_key=run.eval_faces_per_key)
    (Path(run.out) / "zero_shot.json").write_text(json.dumps(ev, indent=1))
    return ClipRunResult(export, ev, time.perf_counter() - t0)

"""Capacity probe: how fast the v0.3 generator fits a *fixed* set of 64 draws (memorization, no new data) —
as it is (session 5) or with blocks widened first (session 7: does the thin 128 px block, 16 feature maps, limit
how fast it sharpens?).

With a widening spec, the blocks are widened
by `models.stylegan2.surgery.widen` first — the same function at step 0, more feature maps to train. Prints PSNR
on the 64 draws every 250 steps and the images/s of the run.

Run from the repository root: python work/toonface/generator_capacity/probe.py STEPS [RES=N,...|-] [LR]
(e.g. ``800 128=48``; no widening spec, or ``-``, reruns the plain probe; LR scales the cosine schedule, whose
end is LR / 5: 5e-4 by default, the training runs' rate).
"""
import json
import sys
import time

import torch

from faceanim.models.stylegan2.surgery import widen
from faceanim.toon.recipes import generator_batch
from faceanim.toon.train_generator import GeneratorTrainConfig, GeneratorTrainer, load_generator_run

torch.set_num_threads(1)
G = load_generator_run("work/toonface/generator_v03/checkpoint")
if len(sys.argv) > 2 and sys.argv[2] != "-":
    G = widen(G, {int(k): int(v) for k, v in (x.split("=") for x in sys.argv[2].split(","))}, seed=0)
print("parameters", sum(p.numel() for p in G.parameters()), "channels", G.config.channels if hasattr(G, "config") else "")
z, x = generator_batch(64, torch.Generator().manual_seed(4242))


def batch_fn(n: int, g: torch.Generator):
    idx = torch.randperm(64, generator=g)[:n]
    return z[idx], x[idx]


steps = int(sys.argv[1]) if len(sys.argv) > 1 else 800
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 5e-4
cfg = GeneratorTrainConfig(steps=steps, batch_size=16, lr=lr, lr_final=lr / 5, betas=(0.9, 0.99), eval_every=250,
                           checkpoint_every=10**9)
tag = (sys.argv[2].replace("=", "_").replace(",", "-") if len(sys.argv) > 2 else "plain") + f"_lr{lr:g}"
trainer = GeneratorTrainer(G, batch_fn, cfg, f"/tmp/toon_width_probe_{tag}", eval_batch=(z, x))
print("start", json.dumps(trainer.evaluate()), flush=True)
t0 = time.perf_counter()
trainer.train(log=lambda line: None if line.startswith("{") else print(line, flush=True))
dt = time.perf_counter() - t0
print("end", json.dumps(trainer.evaluate()), f"{steps * 16 / dt:.1f} images/s", flush=True)

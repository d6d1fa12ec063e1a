"""Capacity probe: how fast the v0.3 generator fits a *fixed* set of 64 draws (memorization, no new data).

Run from the repository root: python work/toonface/generator_capacity/probe.py [STEPS]
"""
import json
import sys

import torch

from faceanim.toon.recipes import generator_batch
from faceanim.toon.train_generator import GeneratorTrainConfig, GeneratorTrainer, load_generator_run

torch.set_num_threads(1)
G = load_generator_run("work/toonface/generator_v03/checkpoint")
z, x = generator_batch(64, torch.Generator().manual_seed(4242))


def batch_fn(n: int, g: torch.Generator):
    idx = torch.randperm(64, generator=g)[:n]
    return z[idx], x[idx]


steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
cfg = GeneratorTrainConfig(steps=steps, batch_size=16, lr=5e-4, lr_final=1e-4, betas=(0.9, 0.99), eval_every=250,
                           checkpoint_every=10**9)
trainer = GeneratorTrainer(G, batch_fn, cfg, "/tmp/toon_capacity_probe", eval_batch=(z, x))
print("start", trainer.evaluate())
trainer.train(log=lambda line: None if line.startswith("{") else print(line, flush=True))
print("end", json.dumps(trainer.evaluate()))

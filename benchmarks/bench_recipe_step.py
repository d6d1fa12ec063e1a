"""Seconds per training step of `faceanim recipe ffhq`'s configuration, on random weights in the official layouts.

Builds a config-f StyleGAN2 at --resolution (1024 = FFHQ) and open_clip's RN50 / ViT-B-32 architectures without
pretrained weights (same compute as OpenAI's), trains the motion model with the recipe's settings (latent mode,
batch 4, 4 frames, the paper's losses and prompts) for --steps steps and prints the time of each step after the
first (warm-up) and the projected time of the recipe's 2,000 steps. Prints figures; asserts nothing.

    nice -n 10 python benchmarks/bench_recipe_step.py --resolution 1024 --steps 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from faceanim.encoders.clip import CLIPConfig, CLIPEncoder
    from faceanim.models.stylegan2 import Generator, GeneratorConfig
    from faceanim.recipes import RECIPES
    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig
    from faceanim.utils.perf import tune_allocator

    tune_allocator()  # as the faceanim command does
    tmp = Path(tempfile.mkdtemp(prefix="bench-recipe-"))
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(img_resolution=args.resolution))
    G.save_pretrained(tmp / "generator")
    for name, arch in (("cond", "RN50"), ("loss", "ViT-B-32")):
        CLIPEncoder.from_config(CLIPConfig.from_open_clip(arch, quick_gelu=True)).save_pretrained(tmp / name)
    data = {**RECIPES["ffhq"].train, "generator": str(tmp / "generator"), "cond_clip": str(tmp / "cond"),
            "loss_clip": str(tmp / "loss"), "pretrained": None, "steps": args.steps, "sample_every": 0,
            "checkpoint_every": 10_000, "out_dir": str(tmp), "device": args.device, "num_items": 64}
    trainer = build_trainer(TrainConfig.from_dict(data), run_dir=tmp / "run", progress=False)
    times = []
    for step in range(args.steps):
        t0 = time.perf_counter()
        trainer.train_step(step)
        times.append(time.perf_counter() - t0)
        print(f"step {step + 1}: {times[-1]:.1f} s", flush=True)
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    warm = times[1:] or times
    print(f"resolution {args.resolution}, threads {torch.get_num_threads()}: "
          f"{min(warm):.1f}–{max(warm):.1f} s per step after warm-up → 2,000 steps ≈ "
          f"{min(warm) * 2000 / 3600:.1f}–{max(warm) * 2000 / 3600:.1f} h")


if __name__ == "__main__":
    main()

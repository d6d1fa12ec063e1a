"""Memory and time of one training step of the paper's recipe, per batch size, with and without activation
checkpointing of the frozen synthesis.

    python benchmarks/bench_train_memory.py [--resolution 1024] [--batches 1 2 4] [--steps 2] [--cap-gib 13]

The networks are the real architectures with random weights: StyleGAN2 config-f at ``--resolution`` (W+ 18 × 512 at
1024 px), CLIP RN50 (conditioning, fine-tuned) and ViT-B/32 (in the contrastive loss), the motion model of
``configs/ffhq_paper.yaml``, image mode on random 1024 px "photos" with their W+ codes. The run config is
``configs/ffhq_paper.yaml`` itself (LPIPS on the first and last frames at 224 px, batch from ``--batches``) with only
the file paths replaced. LPIPS' AlexNet backbone cannot be downloaded here: as in ``tests/test_training.py``, random
AlexNet weights are written where torchvision's cache keeps the real ones (the same network, so the same cost).

Every configuration runs in its own process (allocator tuning on, as ``faceanim train`` runs): one warm-up step, then
``--steps`` timed steps; the peak resident memory (VmHWM) is read from /proc. The parent stops a process whose
resident memory passes ``--cap-gib`` and reports the configuration as exceeding it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def prepare(folder: Path, resolution: int) -> dict:
    """Random-weight files in the layouts a run reads; returns the path overrides of the config."""
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    from faceanim.encoders.clip import CLIPConfig, CLIPEncoder
    from faceanim.models.stylegan2 import Generator, GeneratorConfig

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(img_resolution=resolution))  # config-f: channel_base 32768, channel_max 512
    G.save_pretrained(folder / "generator")
    for name in ("RN50", "ViT-B-32"):
        CLIPEncoder.from_config(CLIPConfig.from_open_clip(name, quick_gelu=True)).save_pretrained(folder / name)
    hub = folder / "torch_home" / "hub" / "checkpoints"  # the LPIPS backbone stand-in (random AlexNet weights)
    hub.mkdir(parents=True)
    url = torchvision.models.AlexNet_Weights.DEFAULT.url
    torch.save(torchvision.models.alexnet().state_dict(), hub / os.path.basename(url))
    faces = folder / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (resolution, resolution, 3), dtype=np.uint8)).save(faces / f"{i:02d}.png")
    with torch.no_grad():
        w = G.mapping(torch.randn(8, G.z_dim))
    torch.save(w[:, None].expand(-1, G.num_ws, -1).clone(), folder / "latents.pt")
    return {"generator": str(folder / "generator"), "cond_clip": str(folder / "RN50"),
            "loss_clip": str(folder / "ViT-B-32"), "images": str(faces), "latents": str(folder / "latents.pt"),
            "prompts": str(ROOT / "configs" / "prompts" / "expressions.txt"), "out_dir": str(folder / "runs")}


def child(spec: dict) -> None:
    """One configuration: build the trainer from the paper config, a warm-up step, timed steps → JSON on stdout."""
    import resource

    import torch

    from faceanim.training.build import build_trainer
    from faceanim.training.config import TrainConfig
    from faceanim.utils.perf import tune_allocator

    tune_allocator()
    overrides = [f"{k}={json.dumps(v)}" for k, v in spec["paths"].items()]
    overrides += [f"batch_size={spec['batch']}", f"activation_checkpointing={json.dumps(spec['checkpointing'])}",
                  "sample_every=0", "device=cpu", f"steps={spec['steps'] + 1}"]
    cfg = TrainConfig.from_yaml(ROOT / "configs" / "ffhq_paper.yaml", overrides)
    t0 = time.perf_counter()
    trainer = build_trainer(cfg, progress=False)
    build_s = time.perf_counter() - t0
    assert "lpips" in trainer.loss.active, "the LPIPS stand-in was not picked up"
    trainer.animator.train()
    times, cpu = [], []
    for step in range(spec["steps"] + 1):
        t, c = time.perf_counter(), time.process_time()
        trainer.train_step(step)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    hwm = None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    hwm = hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"build_s": build_s, "times": times, "cpu": cpu, "peak_bytes": hwm, "threads": torch.get_num_threads(),
                      "checkpointing": trainer.checkpointing}))


def run_one(spec: dict, cap_bytes: int, env: dict) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            rss = next(int(x.split()[1]) * 1024 for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            rss = 0
        peak = max(peak, rss)
        if rss > cap_bytes:
            proc.kill()
            proc.wait()
            return {"exceeded": True, "peak_bytes": peak}
        time.sleep(0.25)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or ["?"])[-1], "peak_bytes": peak}
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--cap-gib", type=float, default=13.0, help="stop a configuration whose RSS passes this")
    ap.add_argument("--modes", nargs="+", default=["on", "off"], choices=["on", "off"],
                    help="activation checkpointing on and/or off")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    with tempfile.TemporaryDirectory(prefix="bench_train_memory_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = prepare(folder, args.resolution)
        print(f"random-weight files written in {time.perf_counter() - t0:.0f} s "
              f"(config-f {args.resolution} px, RN50, ViT-B/32, AlexNet stand-in, 8 faces)", flush=True)
        env = {**os.environ, "TORCH_HOME": str(folder / "torch_home"), "TQDM_DISABLE": "1"}
        print(f"{'batch':>5} {'ckpt':>4} {'peak RSS GiB':>12} {'s/step':>7} {'CPU s/step':>10} {'steps (s)':>22} "
              f"{'2000 steps':>10}", flush=True)
        for batch in args.batches:
            for mode in args.modes:
                spec = {"paths": paths, "batch": batch, "checkpointing": mode == "on", "steps": args.steps}
                r = run_one(spec, int(args.cap_gib * 2 ** 30), env)
                gib = r["peak_bytes"] / 2 ** 30
                if r.get("exceeded"):
                    print(f"{batch:>5} {mode:>4} {'> ' + format(args.cap_gib, '.1f'):>12}    stopped: passed the cap",
                          flush=True)
                    continue
                if "error" in r:
                    print(f"{batch:>5} {mode:>4} {gib:>12.2f}    failed: {r['error']}", flush=True)
                    continue
                timed = r["times"][1:] or r["times"]
                per = sum(timed) / len(timed)
                cpu = r["cpu"][1:] or r["cpu"]
                steps = ", ".join(f"{t:.1f}" for t in r["times"])
                print(f"{batch:>5} {mode:>4} {gib:>12.2f} {per:>7.1f} {sum(cpu) / len(cpu):>10.1f} {steps:>22} "
                      f"{per * 2000 / 3600:>8.1f} h", flush=True)
        print(f"(s/step: wall-clock mean of the timed steps; CPU s/step: process CPU time, all threads; the first "
              f"figure of 'steps' is the warm-up; {os.cpu_count()} cores, load average now "
              f"{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

"""The README's real-weights recipe at full scale: every command, its time and its peak memory (slow, opt-in).

    python benchmarks/rehearse_full_scale.py [--work DIR] [--steps 2] [--frames 16] [--keep]

`tests/test_rehearsal.py` runs the same commands in CI on small files; this script runs them on files of the real
sizes, written here in the official layouts with random weights (nothing can be downloaded on the build machine):
a rosinality FFHQ config-f checkpoint (1024 px, W+ 18 × 512), the official e4e `e4e_ffhq_encode.pt` layout with its
IR-SE-50 encoder for 1024 px, OpenAI CLIP RN50 and ViT-B/32 TorchScript archives (open_clip's architectures, random
weights), random AlexNet weights where torchvision keeps LPIPS' backbone, and four photos with a face (scikit-image's
astronaut, mirrored, rotated, zoomed) plus one without. The training run is `configs/ffhq_paper.yaml` itself (batch
4, LPIPS on the first and last frames at 224 px, activation checkpointing `auto`) with only the paths and the number
of steps replaced. Each command runs as its own process; its peak resident memory is the kernel's (wait4's
ru_maxrss). Prints a table; asserts nothing about time or memory (a command that fails is reported with its last
line of output, and the script exits non-zero).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def write_files(root: Path) -> None:
    """Every input of the recipe, in the layouts the original projects release."""
    import numpy as np
    import open_clip
    import torch
    import torchvision
    from PIL import Image

    import rosinality_reference as ref
    import test_clip
    from test_e4e import write_official_e4e

    t0 = time.perf_counter()
    channels = {2 ** i: min(32768 // 2 ** i, 512) for i in range(2, 11)}  # config-f
    g = ref.make_state(1024, 512, 8, channels, seed=0)
    torch.save({"g_ema": g, "latent_avg": 0.1 * torch.randn(512)}, root / "stylegan2-ffhq-config-f.pt")
    write_official_e4e(root / "e4e_ffhq_encode.pt", 1024, seed=0, decoder=g)
    del g
    clip = root / "clip"
    clip.mkdir()
    for arch, name in (("RN50-quickgelu", "RN50"), ("ViT-B-32-quickgelu", "ViT-B-32")):
        model = open_clip.create_model(arch, pretrained=None).eval()
        test_clip.save_openai_archive(model, clip / f"{name}.pt", context_length=77)
    hub = root / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    url = torchvision.models.AlexNet_Weights.DEFAULT.url
    torch.save(torchvision.models.alexnet().state_dict(), hub / os.path.basename(url))

    from skimage import data

    photos = root / "photos"
    photos.mkdir()
    face = Image.fromarray(data.astronaut())
    face.save(photos / "astronaut.png")
    face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "mirror.png")
    face.rotate(8, resample=Image.Resampling.BICUBIC).save(photos / "rotated.png")
    face.resize((768, 768), Image.Resampling.LANCZOS).save(photos / "zoomed.png")
    Image.fromarray(np.full((400, 400, 3), 128, np.uint8)).save(photos / "blank.png")
    sizes = {p.name: p.stat().st_size for p in root.rglob("*.pt")}
    print(f"wrote the inputs in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} {v / 2 ** 20:.0f} MiB" for k, v in sorted(sizes.items())), flush=True)


def run(label: str, args: list[str], cwd: Path, env: dict) -> dict:
    """One CLI command in its own process: seconds, peak RSS (GiB), exit code, last line of output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "faceanim", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # stream it: training prints progress
        lines.append(line.rstrip())
        print(f"    {line.rstrip()}"[:200], flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"step": label, "command": "faceanim " + " ".join(args), "rc": proc.returncode,
            "seconds": time.perf_counter() - t0, "peak_gib": usage.ru_maxrss / 2 ** 20,
            "last": next((ln for ln in reversed(lines) if ln.strip()), "")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=None, help="Working folder (default: a temporary one, removed at the end).")
    p.add_argument("--steps", type=int, default=2, help="Training steps of the first run (the resume adds one).")
    p.add_argument("--frames", type=int, default=16, help="Frames of the final animation.")
    p.add_argument("--keep", action="store_true", help="Keep the working folder.")
    args = p.parse_args()
    root = Path(args.work or tempfile.mkdtemp(prefix="faceanim-full-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TORCH_HOME": str(root / "torch_home"), "TQDM_MININTERVAL": "30"}
    print(f"working folder: {root}", flush=True)
    write_files(root)
    (root / "models").mkdir()
    (root / "elsewhere").mkdir()
    paths = {"generator": root / "models" / "ffhq-1024", "images": root / "aligned",
             "latents": root / "latents.safetensors", "clip_cache": root / "clip", "out_dir": root / "runs"}
    sets = [x for k, v in {**paths, "steps": args.steps, "sample_every": args.steps, "checkpoint_every": 1}.items()
            for x in ("--set", f"{k}={v}")]
    steps = [
        ("1 convert", ["convert", str(root / "stylegan2-ffhq-config-f.pt"), str(paths["generator"])], root),
        ("3a align folder", ["align", str(root / "photos"), "-o", str(paths["images"]), "--size", "1024"], root),
        ("3b invert folder", ["invert", str(paths["images"]), "--no-align", "-g", str(paths["generator"]),
                              "--encoder", str(root / "e4e_ffhq_encode.pt"), "-o", str(paths["latents"])], root),
        ("4 train", ["train", "--config", "configs/ffhq_paper.yaml", *sets], ROOT),
        ("5 resume elsewhere", ["train", "--resume", "RUN", "--set", f"steps={args.steps + 1}"], root / "elsewhere"),
        ("6 bundle create", ["bundle", "create", str(root / "ffhq"), "--generator", str(paths["generator"]),
                             "--motion", "RUN/motion_model", "--encoder", str(root / "e4e_ffhq_encode.pt"),
                             "--loss-clip", str(root / "clip" / "ViT-B-32.pt")], root),
        ("7 animate --paste-back", ["animate", str(root / "photos" / "astronaut.png"), "-p", "smiling", "-b",
                                    str(root / "ffhq"), "--paste-back", "-n", str(args.frames), "-o",
                                    str(root / "smile.mp4")], root),
    ]
    results = []
    for label, cmd, cwd in steps:
        runs = sorted((root / "runs").glob("*")) if (root / "runs").is_dir() else []
        cmd = [c.replace("RUN", str(runs[-1])) if runs and c.startswith("RUN") else c for c in cmd]
        print(f"\n== {label}: faceanim {' '.join(cmd)}", flush=True)
        results.append(run(label, cmd, cwd, env))
        if results[-1]["rc"] != 0:
            break
    print("\n| step | exit | time | peak memory |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['step']} | {r['rc']} | {r['seconds']:.0f} s | {r['peak_gib']:.2f} GiB |")
    failed = [r for r in results if r["rc"] != 0]
    for r in failed:
        print(f"\n{r['step']} failed: {r['last']}")
    if not args.keep and not args.work:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failed or len(results) < len(steps) else 0)


if __name__ == "__main__":
    main()

"""The README's real-weights recipe, rehearsed as CLI commands on files in the official layouts (issue 17).

Every file is written here, in the layout its project releases, with random weights and small sizes (so that the
rehearsal fits in CI; `benchmarks/rehearse_full_scale.py` runs the same commands at 1024 px):

- a rosinality checkpoint (`torch.save({"g_ema", "latent_avg"})`, 64 px, W+ 10×512, channels capped at 32),
- an official e4e `.pt` for it (IR-SE-50 encoder, `opts` as an argparse.Namespace, `latent_avg`),
- OpenAI CLIP TorchScript archives named `RN50.pt` and `ViT-B-32.pt` (tiny towers) in a CLIP cache folder,
- random AlexNet weights where torchvision keeps LPIPS' backbone (the `lpips_backbone` fixture),
- photos: scikit-image's astronaut, its mirror image, and a blank image (no face).

Then, as the README's recipe says: convert → align the folder → invert the folder → train (samples on) → resume from
another working directory → bundle create with the e4e `.pt` → `animate PHOTO --paste-back` → check the result.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.cli.main import main

import rosinality_reference as ref
from test_e4e import write_official_e4e
from test_photo_cli import needs_dlib

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
CHANNELS = {r: 32 for r in (4, 8, 16, 32, 64)}
FRAMES = 3

pytestmark = [needs_dlib]


def write_openai_clips(cache: Path) -> None:
    """Tiny CLIPs saved as OpenAI ships them (TorchScript archives) under OpenAI's file names."""
    pytest.importorskip("open_clip")
    from test_clip import random_open_clip, save_openai_archive

    cache.mkdir(parents=True)
    save_openai_archive(random_open_clip("rn", seed=1, fp16_exact=True), cache / "RN50.pt")
    save_openai_archive(random_open_clip("vit", seed=2, fp16_exact=True), cache / "ViT-B-32.pt")


def write_photos(folder: Path) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    folder.mkdir()
    astronaut = skimage_data.astronaut()
    Image.fromarray(astronaut).save(folder / "astronaut.png")
    Image.fromarray(astronaut[:, ::-1].copy()).save(folder / "mirror.png")
    Image.new("RGB", (160, 160), (90, 120, 150)).save(folder / "blank.png")
    return folder / "astronaut.png"


def run(capsys, *args: str) -> str:
    """One CLI command; exit 0 or the test fails with what it printed."""
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, f"faceanim {' '.join(args)} → {code}\n{out.out}\n{out.err}"
    assert "Traceback" not in out.err
    return out.out + out.err


def test_the_readme_recipe_end_to_end(tmp_path, monkeypatch, capsys, lpips_backbone):
    root = tmp_path
    g = ref.make_state(SIZE, 512, 2, CHANNELS, seed=5)
    torch.save({"g_ema": g, "latent_avg": 0.1 * torch.randn(512)}, root / "stylegan2-64.pt")
    write_official_e4e(root / "e4e_ffhq_encode.pt", SIZE, seed=0, decoder=g)
    write_openai_clips(root / "home" / "clip")  # the CLIP cache: $FACEANIM_HOME/clip (~/.cache/faceanim/clip)
    monkeypatch.setenv("FACEANIM_HOME", str(root / "home"))
    photo = write_photos(root / "photos")

    # 1. convert the generator (into models/, as configs/ffhq_paper.yaml expects)
    (root / "models").mkdir()
    run(capsys, "convert", str(root / "stylegan2-64.pt"), str(root / "models" / "ffhq-64"))
    # 3. align the folder (the blank image has no face: skipped and listed), invert it without a bundle
    text = run(capsys, "align", str(root / "photos"), "-o", str(root / "aligned"), "--size", str(SIZE))
    assert "aligned 2 of 3 images" in text and "failed blank.png: no face found" in text
    text = run(capsys, "invert", str(root / "aligned"), "--no-align", "-g", str(root / "models" / "ffhq-64"),
               "--encoder", str(root / "e4e_ffhq_encode.pt"), "-o", str(root / "latents.safetensors"))
    assert "inverted 2 of 2 images" in text

    # 4. train with the paper's config, from the repository (its prompt file is relative to it), samples on
    monkeypatch.chdir(REPO)
    sets = {"generator": root / "models" / "ffhq-64", "images": root / "aligned",
            "latents": root / "latents.safetensors", "out_dir": root / "runs",
            "steps": 2, "batch_size": 2, "sample_every": 2, "checkpoint_every": 1, "sample_size": 32,
            "motion.h_dim": 32, "motion.mapper_hidden": 64, "device": "cpu"}
    overrides = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    text = run(capsys, "train", "--config", "configs/ffhq_paper.yaml", *overrides)
    runs = sorted((root / "runs").iterdir())
    assert len(runs) == 1, runs
    run_dir = runs[0]
    assert (run_dir / "motion_model" / "config.json").is_file()
    assert list(run_dir.glob("**/*.png")), "no sample grid written"
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any("lpips" in entry for entry in log), "the LPIPS term did not run"

    # 5. resume from another working directory, two more steps
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = run(capsys, "train", "--resume", str(run_dir), "--set", "steps=4")
    assert "resuming" in text and "at step 2" in text and "done: 4 steps" in text
    assert sorted((root / "runs").iterdir()) == [run_dir] and not list(elsewhere.iterdir())

    # 6. a bundle: the converted generator, the motion model, the official e4e file, the loss CLIP archive
    text = run(capsys, "bundle", "create", str(root / "ffhq"), "--generator", str(root / "models" / "ffhq-64"),
               "--motion", str(run_dir / "motion_model"), "--encoder", str(root / "e4e_ffhq_encode.pt"),
               "--loss-clip", "ViT-B-32")
    assert "encoder" in text

    # 7. animate the photo, pasted back into it (PNG frames: no compression between us and the check)
    out = root / "animated"
    run(capsys, "animate", str(photo), "-p", "smiling", "-b", str(root / "ffhq"), "--paste-back",
        "-n", str(FRAMES), "-o", str(out) + "/")
    frames = sorted(out.glob("*.png"))
    assert len(frames) == FRAMES
    original = np.asarray(Image.open(photo).convert("RGB")).astype(np.int16)
    face_box = _face_box(photo, original.shape[:2])
    for f in frames:
        frame = np.asarray(Image.open(f).convert("RGB")).astype(np.int16)
        assert frame.shape == original.shape  # the photo's size
        diff = np.abs(frame - original).max(axis=2)
        inside = np.zeros_like(diff, dtype=bool)
        y0, y1, x0, x1 = face_box
        inside[y0:y1, x0:x1] = True
        assert diff[inside].mean() > 10, "the face region did not change"
        assert diff[~inside].max() <= 1, "pixels outside the face's crop changed"


def _face_box(photo: Path, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The bounding box of the aligned crop's quad in the photo (from the aligner, independently of animate)."""
    from faceanim.align import FaceAligner
    from faceanim.utils.images import load_image

    quad = np.asarray(FaceAligner().align(load_image(photo), output_size=SIZE).quad)
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 2
    return max(y0, 0), min(y1, shape[0]), max(x0, 0), min(x1, shape[1])

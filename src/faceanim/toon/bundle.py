"""``faceanim toon build-bundle``: the ToonFace bundle assembled from trained networks, its weights stored as
float16, and a report of how far float16 moves the outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from faceanim.bundles import BundleInfo
from faceanim.errors import FaceanimError
from faceanim.toon.recipes import TEMPLATE
from faceanim.toon.seeds import BUNDLE_CHECK

EXAMPLE_PROMPTS = ["laughing", "surprised", "going grey", "old", "tilting head to the left", "smiling"]
CHECK_PROMPTS = ["smiling", "crying", "winking", "angry"]  # the motion model's fp16 check


@dataclass
class ToonBundleConfig:
    out: str                            # the bundle folder to write
    motion: str                         # the motion run's motion_model/ folder (with its clip/)
    generator: str | None = None        # generator folder (default: the toonface bundle's)
    evaluator: str | None = None        # ground-truth evaluator folder, shipped for `faceanim evaluate`
    model_card: str | None = None       # MODEL_CARD.md to ship
    supported_prompts: list[str] | None = None  # prompts the motion model was trained and checked on (examples:
                                                # the first six); None: declared none
    force: bool = False                 # replace an existing folder, even the package's own bundle


def toon_bundle_info(evaluator: bool) -> BundleInfo:
    """The ``bundle.json`` of the ToonFace bundle (with an ``evaluator`` component or not)."""
    components = {"generator": "generator", "motion": "motion", "loss_clip": "motion/clip"}
    if evaluator:
        components["evaluator"] = "evaluator"
    return BundleInfo(name="toonface", template=TEMPLATE, mode="latent", truncation_psi=1.0,
                      fps=10, num_frames=16, z_sampler="toonface", example_prompts=list(EXAMPLE_PROMPTS),
                      alignment="center-crop",  # renders are aligned crops already: no face detection
                      description="ToonFace: procedurally rendered cartoon faces; every network trained by "
                                  "`faceanim toon …` (see MODEL_CARD.md)",
                      components=components)


def fp16_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy a native model folder with its float weights stored as float16 (loaders cast back to float32)."""
    from safetensors.torch import load_file

    from faceanim.utils.io import save_safetensors

    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    for f in src.rglob("*.safetensors"):
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(f)).items()}
        save_safetensors(state, dst / f.relative_to(src))


def check_bundle_output(out: str | os.PathLike, force: bool) -> Path:
    """Refuse to replace an existing folder, and above all the package's own bundles, unless ``force``."""
    from faceanim.bundles import PACKAGED

    if not out:
        raise FaceanimError("give the bundle folder to write (-o/--out)")
    path = Path(out)
    if path.resolve() == PACKAGED.resolve() or PACKAGED.resolve() in path.resolve().parents:
        if not force:
            raise FaceanimError(f"{out} is inside the installed package's bundles; write the bundle elsewhere "
                                "(or use --force to replace the shipped one)")
    elif path.exists() and not force:
        raise FaceanimError(f"{out} already exists (use --force to replace it)")
    return path


def fp16_report(generator: str | os.PathLike, motion: str | os.PathLike, bundle: Path,
                evaluator: str | os.PathLike | None) -> dict:
    """How far the bundle's float16 weights move the outputs from the float32 originals: PSNR of the generator's
    images and of the last animation frame, the largest latent difference, and the evaluator's largest change."""
    from faceanim.models.stylegan2 import Generator
    from faceanim.motion.model import LanguageGuidedAnimator
    from faceanim.toon.latent import Z_DIM, sample_identity_z
    from faceanim.toon.train_generator import psnr

    G32, G16 = Generator.from_pretrained(generator), Generator.from_pretrained(bundle / "generator")
    A32, A16 = LanguageGuidedAnimator.from_pretrained(motion), LanguageGuidedAnimator.from_pretrained(bundle / "motion")
    with torch.no_grad():
        z = sample_identity_z(16, Z_DIM, torch.Generator().manual_seed(BUNDLE_CHECK))
        a, b = G32(z), G16(z)
        w = G32.to_wplus(G32.mapping(z[:4]))
        wa = A32(CHECK_PROMPTS, 16, w_source=w, decay=True, rng=torch.Generator().manual_seed(0)).ws
        wb = A16(CHECK_PROMPTS, 16, w_source=w, decay=True, rng=torch.Generator().manual_seed(0)).ws
        fa, fb = G32.synthesis(wa[:, -1]), G16.synthesis(wb[:, -1])
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    report = {"bundle_mb": round(size / 1e6, 1),
              "fp16_vs_fp32_generator_psnr_db": round(float(psnr(b, a.clamp(-1, 1)).mean()), 1),
              "fp16_vs_fp32_last_frame_psnr_db": round(float(psnr(fb, fa.clamp(-1, 1)).mean()), 1),
              "fp16_vs_fp32_latent_max_abs": float((wa - wb).abs().max())}
    if evaluator:
        from faceanim.toon.evaluator import ToonEvaluator

        with torch.no_grad():
            pa = ToonEvaluator.from_pretrained(evaluator).eval().predict(a.clamp(-1, 1))
            pb = ToonEvaluator.from_pretrained(bundle / "evaluator").eval().predict(a.clamp(-1, 1))
        report["fp16_vs_fp32_evaluator_max_abs"] = float((pa - pb).abs().max())
    return report


def build_toon_bundle(cfg: ToonBundleConfig) -> dict:
    """Write the bundle atomically (generator, motion model with its CLIP, optional evaluator, all float16;
    ``bundle.json``; the model card) and return :func:`fp16_report`, measured before the folder is moved in."""
    from faceanim.bundles import KIND, Bundle
    from faceanim.utils.io import atomic_dir

    out = check_bundle_output(cfg.out, cfg.force)
    generator = cfg.generator or Bundle.open("toonface").path("generator")
    for name, folder in (("generator", generator), ("motion", cfg.motion), ("evaluator", cfg.evaluator)):
        if folder is not None and not Path(folder).is_dir():
            raise FaceanimError(f"{name} folder not found: {folder}")
    model_card = Path(cfg.model_card).read_text() if cfg.model_card else None
    info = toon_bundle_info(evaluator=cfg.evaluator is not None)
    if cfg.supported_prompts:
        info.declare_supported(cfg.supported_prompts)
    with atomic_dir(out) as tmp:
        fp16_copy(generator, tmp / "generator")
        fp16_copy(cfg.motion, tmp / "motion")
        if cfg.evaluator:
            fp16_copy(cfg.evaluator, tmp / "evaluator")
        (tmp / "bundle.json").write_text(json.dumps({"kind": KIND, **dataclasses.asdict(info)}, indent=2) + "\n")
        if model_card is not None:
            (tmp / "MODEL_CARD.md").write_text(model_card)
        report = fp16_report(generator, cfg.motion, tmp, cfg.evaluator)  # the bundle loads before it is moved in
    return report

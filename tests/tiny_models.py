"""Tiny random components for fast training tests: a 16 px generator and small CLIP configs."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from faceanim.models.stylegan2 import Generator, GeneratorConfig

TEXT_CFG = {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}
CLIP_RN = {"embed_dim": 32, "vision_cfg": {"layers": [1, 1, 1, 1], "width": 16, "image_size": 32},
           "text_cfg": TEXT_CFG, "name": "tiny-rn"}
CLIP_VIT = {"embed_dim": 24, "vision_cfg": {"layers": 1, "width": 64, "patch_size": 8, "image_size": 16},
            "text_cfg": TEXT_CFG, "name": "tiny-vit"}
PROMPTS = ["smiling", "crying", "angry", "surprised", "closing eyes", "winking"]


def tiny_generator(folder: Path, resolution: int = 16, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(z_dim=16, w_dim=32, img_resolution=resolution, channel_base=256, channel_max=32,
                          mapping_layers=2)
    G = Generator(cfg)
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.estimate_w_avg(500))
    return G.save_pretrained(folder)


def tiny_config(tmp_path: Path, **overrides) -> Path:
    """Write a latent-mode experiment YAML on tiny random networks; returns its path."""
    gen = tiny_generator(tmp_path / "gen")
    cfg = {"generator": str(gen), "cond_clip": CLIP_RN, "loss_clip": CLIP_VIT, "mode": "latent",
           "prompts": PROMPTS, "template": "The cartoon person is {}.", "batch_size": 4, "num_frames": 4,
           "steps": 6, "num_items": 64, "out_dir": str(tmp_path / "runs"), "name": "tiny",
           "motion": {"h_dim": 16, "mapper_hidden": 32}, "log_every": 1, "sample_every": 0,
           "sample_frames": 4, "checkpoint_every": 3, "loss": {"lpips": 0.0}}
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def tiny_bundle(tmp: Path, mode: str = "latent") -> Path:
    """A complete bundle (16 px generator, tiny CLIPs, an untrained motion model with some motion). ``mode="image"``:
    a photo bundle whose visual mapper H_v adds a non-zero w_v (no inversion encoder: give photos with their code)."""
    from faceanim.bundles import BundleInfo, create_bundle
    from faceanim.encoders.clip import CLIPEncoder
    from faceanim.motion import LanguageGuidedAnimator, MotionConfig

    gen = tiny_generator(tmp / "gen")
    G = Generator.from_pretrained(gen)
    torch.manual_seed(1)
    clip = CLIPEncoder.from_config(CLIP_RN)
    cfg = MotionConfig(z_dim=32, h_dim=16, num_ws=G.num_ws, w_dim=G.w_dim, mapper_hidden=32, mode=mode,
                       template="The cartoon person is {}.")
    A = LanguageGuidedAnimator(cfg, clip)
    with torch.no_grad():  # give the untrained model some motion (and, in image mode, some w_v)
        mappers = [A.motion_mapper] + ([A.visual_mapper] if mode == "image" else [])
        for p in (p for m in mappers for p in m.layers[-1].parameters()):
            p.normal_(0, 0.05)
    A.save_pretrained(tmp / "motion")
    CLIPEncoder.from_config(CLIP_VIT).save_pretrained(tmp / "loss_clip")
    return create_bundle(tmp / "tiny-bundle", BundleInfo(name="tiny", fps=8), gen, tmp / "motion", tmp / "loss_clip",
                         model_card="# tiny\n")

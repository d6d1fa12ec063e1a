"""Experiment configuration: a typed dataclass read from YAML (named loss weights), saved resolved in the run folder."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceanim.data.prompts import DEFAULT_TEMPLATE
from faceanim.errors import FaceanimError

LPIPS_FRAMES = ("first", "first_last")
PATH_KEYS = ("generator", "images", "latents", "evaluator", "clip_cache", "prompts", "cond_clip", "loss_clip",
             "frozen_directions")


@dataclass
class LossConfig:
    w_reg: float = 1.0            # λ_w-reg (eq. 9)
    path_reg: float = 1.0         # λ_path-reg (eq. 10)
    contrastive: float = 0.5      # λ_cont (eq. 11)
    lpips: float = 1.0            # λ_lpips (disabled with a message when LPIPS weights are absent)
    lpips_frames: str = "first"   # frames LPIPS compares with the source: "first", or "first_last" (the official
                                  # code: the first and the last frame, each a term of weight λ_lpips)
    lpips_size: int = 0           # compare at this size (px, area-resized; the official code: 224); 0: the
                                  # generator's resolution
    path_order: int = 2           # 2 = eq. 10; 1 = first-order ablation (IV-D)
    reduction: str = "mean"       # "mean" (official MSE, the paper's weights) or "sum" (the equations' Σ‖·‖²)
    temperature: float = 0.07     # τ of eq. 11
    views: int = 0                # beyond the paper: average L_cont over this many random shifted/zoomed views
                                  # of each last frame (0: the frame itself, as the paper)
    directional: float = 0.0      # beyond the paper: λ of the directional CLIP loss (losses/directional.py)
    neutral_prompt: str = "expressionless"  # its neutral text (in the prompt template)
    outside: float = 0.0          # beyond the paper: λ of the change outside each prompt's region (losses/outside.py;
                                  # needs `region_masks`)
    target: float = 0.0           # beyond the paper, synthetic domains only: λ of the last frame's distance to the
                                  # prompt's known target code (losses/target.py; needs `target_latents`)
    target_form: str = "w"        # "w": ‖w⁽ᵀ⁾ − w_t‖² (where and how far); "direction": 1 − cos of the change
                                  # and the target's change (only where; the size is left to the other terms)
    target_gain: float = 1.0      # form w: pull towards w_s + gain · (w_t − w_s) (> 1: past the target)
    target_gains: dict = field(default_factory=dict)  # per prompt, keyed by its first wording: its own gain (the
                                  # others: target_gain), for a generator that draws some changes weaker than others
    target_pixels: float = 0.0    # beyond the paper: λ of the last frame's squared pixel distance to the generator's
                                  # image of w_s + gain · (w_t − w_s) (needs `target_latents`)
    first_last: float = 0.0       # the official code's λ_w_reg: MSE between the first and the last frame's codes
                                  # (0: off, as the paper; docs/FIDELITY.md)
    contrastive_form: str = "paper"  # "paper": eq. 11 (cross-entropy); "official": the official code's
                                     # log(1 + Σ_j exp((s_ij − s_ii)/τ)), i.e. softplus of eq. 11's term


@dataclass
class TrainConfig:
    # models
    generator: str = ""                       # native generator folder, or a checkpoint `faceanim convert` reads
    cond_clip: Any = "RN50"                   # conditioning CLIP (E_t, E_v): path / cache name / custom config dict
    loss_clip: Any = "ViT-B-32"               # frozen CLIP inside the contrastive loss, or a list of CLIPs: an
                                              # ensemble, the loss averaged over them (beyond the paper)
    clip_cache: str | None = None             # folder where bare CLIP names are looked up
    pretrained: str | None = None             # open_clip pretrained tag for bare cond_clip / loss_clip names
                                              # ("openai", "laion2b_s34b_b79k", …), through open_clip's loading
                                              # and cache; an "hf-hub:ORG/NAME" CLIP needs none
    motion: dict = field(default_factory=dict)  # MotionConfig overrides (h_dim, mapper_hidden, mapper_input, …)
    frozen_directions: str | None = None      # .safetensors with a tensor "directions" [K, w_dim]: W directions the
                                              # motion must not move along (beyond the paper; MotionConfig)
    # data
    mode: str = "image"                       # "image" (images + inverted latents) or "latent" (sampled w_s)
    prompts: Any = "prompts.txt"              # prompt file, or a list of prompts
    template: str = DEFAULT_TEMPLATE          # prompt template (IV-F-3)
    images: str | None = None                 # image mode: folder of aligned faces
    latents: str | None = None                # image mode: their inverted W+ codes
    truncation_psi: float = 0.7               # latent mode: truncation of sampled codes
    num_items: int = 100_000                  # latent mode: number of distinct sampled faces
    z_sampler: str = "gaussian"               # latent mode: how z is drawn ("gaussian"; "toonface" for ToonFace)
    region_masks: str | None = None           # latent mode: where each prompt may change a face, by name
                                              # (data/regions.py; "toonface"), for loss.outside
    target_latents: str | None = None         # latent mode: where each prompt should take a face, by name
                                              # (data/targets.py; "toonface"), for loss.target
    # optimization (IV-A-2)
    batch_size: int = 4                       # per process; texts in a batch never repeat
    num_frames: int = 4                       # frames per training video (the official code trains on 4)
    anchor_first_frame: bool = False          # train on w⁽ⁱ⁾ − w⁽¹⁾ + w_s (frame 1 = the source, as the pipeline
                                              # plays videos) instead of eq. 8's w⁽ⁱ⁾ = Δw⁽ⁱ⁾ + w_s
    steps: int = 2000
    lr_encoder: float = 1e-5
    lr_mapper: float = 1e-3
    lr_recurrent: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.999)
    grad_clip: float = 0.0                    # max global gradient norm (0: off, as in the paper); the norm is logged
    train_visual_encoder: bool = True
    train_text_encoder: bool = True           # False: E_t frozen (then it may share weights with the loss CLIP)
    loss: LossConfig = field(default_factory=LossConfig)
    seed: int = 0
    # bookkeeping
    out_dir: str = "runs"
    name: str = "motion"
    log_every: int = 10
    sample_every: int = 500
    sample_frames: int = 16
    sample_size: int = 256                    # frame size (px) in the sample grid PNG (0: the generator's resolution)
    render_batch_size: int = 0                # frames per generator call when rendering samples and metric videos
                                              # (0: auto, 8 frames of 256 px or as many pixels: 1 frame at 1024 px)
                                              # (as the pipeline's batch_size): bounds their memory at any resolution
    metrics_every: int = 0                    # every N steps: the registered metrics (faceanim.evaluation) on fixed
                                              # videos → metrics.jsonl and TensorBoard (0: off)
    metrics_videos: int = 8                   # videos scored each time: distinct sources × the prompts in turn
    evaluator: str | None = None              # ToonEvaluator folder: ground-truth metrics while training (ToonFace)
    checkpoint_every: int = 100
    device: str = "auto"                      # auto | cpu | cuda | mps
    activation_checkpointing: Any = "auto"    # re-render the frozen synthesis in the backward pass, one image at a
                                              # time, instead of keeping its activations (≈ one more forward pass per
                                              # step, a fraction of the memory): true | false | "auto" (on from
                                              # 512 px, where the activations take GiBs per image)
    save_rank_weights: bool = False           # debug/tests: every rank writes its final weights

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaceanimError(f"unknown training option(s): {', '.join(unknown)}")
        loss = data.pop("loss", {}) or {}
        lknown = {f.name for f in dataclasses.fields(LossConfig)}
        if set(loss) - lknown:
            raise FaceanimError(f"unknown loss option(s): {', '.join(sorted(set(loss) - lknown))}")
        cfg = cls(**data, loss=LossConfig(**loss))
        cfg.betas = tuple(float(b) for b in cfg.betas)  # Adam wants floats (YAML may give ints)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> "TrainConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FaceanimError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise FaceanimError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise FaceanimError(f"{path} must hold a mapping of options")
        base = path.parent
        for key in ("generator", "images", "latents", "out_dir"):
            if isinstance(data.get(key), str) and not os.path.isabs(data[key]) and (base / data[key]).exists():
                data[key] = str(base / data[key])
        def beside(value: Any) -> Any:  # a name of a file or folder next to the YAML
            return str(base / value) if isinstance(value, str) and (base / value).exists() else value

        for key in ("cond_clip", "loss_clip", "prompts"):
            if isinstance(data.get(key), str):
                data[key] = beside(data[key])
        if isinstance(data.get("loss_clip"), list):  # an ensemble
            data["loss_clip"] = [beside(c) for c in data["loss_clip"]]
        return cls.from_dict(apply_overrides(data, overrides or []))

    def validate(self) -> None:
        if not self.loss.first_last >= 0 or self.loss.contrastive_form not in ("paper", "official"):
            raise FaceanimError("loss.first_last must be ≥ 0 and loss.contrastive_form 'paper' or 'official', got "
                                f"{self.loss.first_last!r}, {self.loss.contrastive_form!r}")
        if not self.grad_clip >= 0:
            raise FaceanimError(f"grad_clip must be ≥ 0 (0 = off), got {self.grad_clip}")
        if self.mode not in ("image", "latent"):
            raise FaceanimError(f"mode must be 'image' or 'latent', got {self.mode!r}")
        if self.batch_size < 2:
            raise FaceanimError("batch_size must be ≥ 2 (the contrastive loss contrasts texts within a batch)")
        if self.num_frames < 2 or self.num_frames > 256:
            raise FaceanimError("num_frames must be between 2 and 256")
        if self.steps < 1:
            raise FaceanimError("steps must be ≥ 1")
        if not 0 <= self.loss.views <= 64:
            raise FaceanimError(f"loss.views must be between 0 (off) and 64, got {self.loss.views}")
        if not self.loss.outside >= 0:
            raise FaceanimError(f"loss.outside must be ≥ 0 (0 = off), got {self.loss.outside}")
        if self.loss.outside and not (self.region_masks and self.mode == "latent"):
            raise FaceanimError("loss.outside needs `region_masks` (e.g. toonface) and latent mode: the masks are "
                                "computed from the sampled faces' z")
        if not self.loss.target_gain > 0:
            raise FaceanimError(f"loss.target_gain must be > 0, got {self.loss.target_gain}")
        gains = self.loss.target_gains
        if not isinstance(gains, dict) or not all(isinstance(g, (int, float)) and not isinstance(g, bool) and g > 0
                                                  for g in gains.values()):
            raise FaceanimError("loss.target_gains must map prompts (their first wording) to gains > 0, got "
                                f"{gains!r}")
        if not self.loss.target >= 0 or self.loss.target_form not in ("w", "direction"):
            raise FaceanimError("loss.target must be ≥ 0 (0 = off) and loss.target_form 'w' or 'direction', got "
                                f"{self.loss.target!r}, {self.loss.target_form!r}")
        if not self.loss.target_pixels >= 0:
            raise FaceanimError(f"loss.target_pixels must be ≥ 0 (0 = off), got {self.loss.target_pixels}")
        if (self.loss.target or self.loss.target_pixels) and not (self.target_latents and self.mode == "latent"):
            raise FaceanimError("loss.target and loss.target_pixels need `target_latents` (e.g. toonface) and latent mode: the targets "
                                "are computed from the sampled faces' z")
        if not self.loss.directional >= 0:
            raise FaceanimError(f"loss.directional must be ≥ 0 (0 = off), got {self.loss.directional}")
        if self.loss.lpips_frames not in LPIPS_FRAMES:
            raise FaceanimError(f"loss.lpips_frames must be one of {', '.join(LPIPS_FRAMES)}, "
                                f"got {self.loss.lpips_frames!r}")
        if not (isinstance(self.loss.lpips_size, int) and self.loss.lpips_size >= 0):
            raise FaceanimError(f"loss.lpips_size must be a size in px or 0 (the generator's), got {self.loss.lpips_size!r}")
        if self.activation_checkpointing not in (True, False, "auto"):
            raise FaceanimError("activation_checkpointing must be true, false or auto, "
                                f"got {self.activation_checkpointing!r}")
        if self.render_batch_size < 0 or self.sample_size < 0:
            raise FaceanimError("render_batch_size must be ≥ 0 (0: auto) and sample_size ≥ 0 (0: the generator's "
                                "resolution)")
        if self.mode == "image" and not (self.images and self.latents):
            raise FaceanimError("image mode needs `images` (a folder) and `latents` (their inverted codes)")

    def check_paths(self) -> None:
        """Every file or folder the config names exists; a missing one is reported with its config key."""
        def looks_like_path(v: Any) -> bool:  # CLIP cache names ("RN50") and hf-hub: ids are not paths
            return isinstance(v, str) and not v.startswith("hf-hub:") and \
                (os.sep in v or v.endswith((".pt", ".pth", ".pkl", ".safetensors")))

        named = [("generator", self.generator), ("images", self.images), ("latents", self.latents),
                 ("evaluator", self.evaluator), ("clip_cache", self.clip_cache),
                 ("frozen_directions", self.frozen_directions),
                 ("prompts", self.prompts if isinstance(self.prompts, str) else None),
                 ("cond_clip", self.cond_clip if looks_like_path(self.cond_clip) else None)]
        named += [("loss_clip", c if looks_like_path(c) else None) for c in self.loss_clips]
        from faceanim.downloads import is_remote

        for key, value in named:
            if value and not is_remote(value) and not Path(value).exists():
                raise FaceanimError(f"config key `{key}`: no such file or folder: {value}")

    @property
    def loss_clips(self) -> list:
        """``loss_clip`` as a list (one CLIP, or the ensemble's)."""
        return list(self.loss_clip) if isinstance(self.loss_clip, (list, tuple)) else [self.loss_clip]

    def render_chunk(self, resolution: int) -> int:
        """Frames per generator call when rendering without gradients: ``render_batch_size``, or (0)
        :func:`faceanim.utils.perf.frames_per_call` (the pixels of 8 frames of 256 px: 1 frame at 1024 px)."""
        from faceanim.utils.perf import frames_per_call

        return self.render_batch_size or frames_per_call(resolution)

    def uses_checkpointing(self, resolution: int) -> bool:
        """Whether the synthesis is checkpointed in training at this generator resolution."""
        if self.activation_checkpointing == "auto":
            return resolution >= 512
        return bool(self.activation_checkpointing)

    def with_absolute_paths(self) -> "TrainConfig":
        """A copy whose relative paths are absolute (resolved against the working directory, where they exist; the
        output folder always): the run's saved config then works from any directory (``train --resume``)."""
        changes: dict[str, Any] = {"out_dir": os.path.abspath(self.out_dir)}
        def absolute(value: Any) -> Any:
            if isinstance(value, str) and value and not os.path.isabs(value) and Path(value).exists():
                return os.path.abspath(value)
            if isinstance(value, dict) and isinstance(value.get("path"), str) and Path(value["path"]).exists():
                return {**value, "path": os.path.abspath(value["path"])}  # a CLIP as {path, arch}
            return value

        for key in PATH_KEYS:
            value = getattr(self, key)
            new = [absolute(v) for v in value] if isinstance(value, (list, tuple)) and key == "loss_clip" \
                else absolute(value)
            if new != value:
                changes[key] = new
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key=value`` overrides (YAML values; dotted keys reach nested options: ``loss.contrastive=0``)."""
    import yaml

    for item in overrides:
        if "=" not in item:
            raise FaceanimError(f"override must look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        target = data
        *parents, leaf = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                raise FaceanimError(f"override {item!r}: {p} is not a group of options")
        target[leaf] = yaml.safe_load(value)
    return data


def latent_recipe(generator: str, cond_clip: str, prompts: list[str], out_dir: str, steps: int, batch_size: int = 4,
                  template: str = DEFAULT_TEMPLATE, z_sampler: str = "gaussian", truncation_psi: float = 1.0,
                  loss_clip: str | None = None, mapper_hidden: int = 512) -> dict:
    """The TrainConfig fields of a motion model trained in sampled-latent mode (IV-A-1) on a bundle's networks:
    the paper's settings (batch 4, T = 4 training frames, frozen text encoder), no LPIPS (no source image).
    Recipe changes go on top as dotted overrides (:func:`apply_overrides`)."""
    return {"generator": generator, "cond_clip": cond_clip, "loss_clip": loss_clip or cond_clip, "mode": "latent",
            "z_sampler": z_sampler, "truncation_psi": truncation_psi, "prompts": list(prompts),
            "template": template, "batch_size": batch_size, "num_frames": 4, "steps": steps,
            "train_text_encoder": False, "motion": {"mapper_hidden": mapper_hidden}, "loss": {"lpips": 0.0},
            "out_dir": out_dir, "name": "motion", "checkpoint_every": 100, "sample_every": 250}

"""Builds the objects a training run needs from a :class:`TrainConfig`, and the distributed context."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from faceanim.errors import FaceanimError
from faceanim.training.config import TrainConfig
from faceanim.training.trainer import DistInfo, Trainer
from faceanim.utils.device import pick_device


def init_distributed(device: torch.device) -> DistInfo:
    """Set up torch.distributed when launched by torchrun (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())


def next_run_dir(out_dir: str | os.PathLike, name: str, create: bool = True) -> Path:
    """``out_dir/00007-name`` with the next free number; ``create=False`` (a dry run) only names it, creating
    nothing (not even ``out_dir``)."""
    out = Path(out_dir)
    if create:
        out.mkdir(parents=True, exist_ok=True)
    nums = [int(m.group(1)) for p in (out.iterdir() if out.is_dir() else ()) if (m := re.match(r"(\d{5})-", p.name))]
    safe = re.sub(r"[^\w.-]+", "_", name)[:60] or "run"
    return out / f"{(max(nums) + 1) if nums else 0:05d}-{safe}"


def load_clip(spec, cache_dir: str | None, pretrained: str | None = None):
    """A CLIP from a config dict (random init), an open_clip name + pretrained tag or ``hf-hub:`` id (open_clip's
    loading and cache), or a file / folder / bare name in ``cache_dir`` (faceanim's reader)."""
    from faceanim.encoders.clip import CLIPEncoder
    from faceanim.encoders.pretrained import is_open_clip_name, load_open_clip

    if is_open_clip_name(spec, pretrained):  # a name + tag or an hf-hub: id: open_clip's loading and cache
        return load_open_clip(str(spec), pretrained)
    return CLIPEncoder.from_spec(spec, cache_dir=cache_dir)  # path / name, {path, arch}, or an architecture dict



def ddp_needs_unused_parameter_search(cfg: TrainConfig) -> bool:
    """Whether DDP must look for parameters that get no gradient (``find_unused_parameters``): a graph traversal
    per step, and a warning from DDP when nothing is unused.

    Every trainable parameter takes part in the codes w⁽¹⁾…w⁽ᵀ⁾ that every loss term reads: the encoders being
    trained (E_t always, E_v in image mode) through z⁽¹⁾, H_v through w_s (image mode; training never passes
    ``w_source``), H_t and M through the motion codes; frozen ones (E_v in latent mode, ``logit_scale``) are not
    DDP's concern. The exception is M's W₃ with T = 2 training frames: h⁽²⁾ is computed but no later step reads it.
    ``tests/test_training.py`` checks this rule against the gradients of real steps.
    """
    return cfg.num_frames < 3


def load_frozen_directions(path: str, w_dim: int) -> torch.Tensor:
    """W directions ``[K, w_dim]`` from a tensor file (``TrainConfig.frozen_directions``): a ``.safetensors`` /
    ``.npz`` holding "directions", or a bare tensor (``.npy``, ``.pt``; an InterFaceGAN boundary ``[1, w_dim]``
    is one)."""
    from faceanim.utils.io import read_tensor_file

    data = read_tensor_file(path, "frozen directions")
    directions = data.get("directions") if isinstance(data, dict) else data
    if not isinstance(directions, torch.Tensor) or directions.ndim != 2 or directions.shape[1] != w_dim \
            or not 0 < directions.shape[0] < w_dim:
        shape = list(directions.shape) if isinstance(directions, torch.Tensor) else None
        raise FaceanimError(f"frozen_directions {path}: expected a tensor 'directions' [K, {w_dim}] with "
                            f"0 < K < {w_dim}, got {shape}")
    return directions.float()


def save_run_config(cfg: TrainConfig, run_dir: Path) -> None:
    """``run_dir/config.yaml``: the config with absolute paths; a prompt file is copied into the run folder
    (``prompts.txt``, named relative to the config, so the folder can move) — ``--resume`` then works from any
    working directory."""
    import shutil

    import yaml

    data = cfg.to_dict()
    if isinstance(cfg.prompts, str):
        copy = run_dir / "prompts.txt"
        if not (copy.exists() and os.path.samefile(cfg.prompts, copy)):
            shutil.copyfile(cfg.prompts, copy)
        data["prompts"] = copy.name
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


MetricsHook = Callable[[TrainConfig, Any, torch.device], Callable]  # (cfg, loss CLIP, device) -> hook


def build_trainer(cfg: TrainConfig, run_dir: Path | None = None, metrics_hook: MetricsHook | None = None,
                  progress: bool = True, dry_run: bool = False) -> Trainer:
    """Everything a run needs from its config. ``metrics_hook`` builds the training-time metrics when
    ``cfg.metrics_every`` is set (the caller's: the core knows no metrics); ``progress`` shows a progress bar.
    ``dry_run``: build everything but write nothing (the trainer's ``run_dir`` is the folder a run would use)."""
    from faceanim.convert import load_generator
    from faceanim.data import ImageLatentDataset, SampledLatents, StepBatchSampler, load_prompts
    from faceanim.losses import AnimationLoss, ContrastiveLoss, DirectionalLoss, LossWeights, LPIPSLoss
    from faceanim.motion import LanguageGuidedAnimator, MotionConfig

    cfg.check_paths()
    cfg = cfg.with_absolute_paths()
    device = pick_device(cfg.device)
    dist = init_distributed(device)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank

    if not cfg.generator:
        raise FaceanimError("the config names no `generator`")
    G, _, _ = load_generator(cfg.generator)
    G = G.to(device).eval().requires_grad_(False)
    prompts = load_prompts(cfg.prompts) if isinstance(cfg.prompts, (str, os.PathLike)) else list(cfg.prompts)
    if len(prompts) < cfg.batch_size:
        raise FaceanimError(f"batch size {cfg.batch_size} needs at least {cfg.batch_size} distinct prompts, "
                            f"got {len(prompts)}")

    cond_clip = load_clip(cfg.cond_clip, cfg.clip_cache, cfg.pretrained)
    loss_clips = [load_clip(spec, cfg.clip_cache, cfg.pretrained).to(device) for spec in cfg.loss_clips]
    loss_clip = loss_clips[0]  # the training metrics' CLIP
    if dist.is_main:
        loss_text = loss_clip.origin if len(loss_clips) == 1 else \
            f"an ensemble of {len(loss_clips)}: " + " + ".join(str(spec) for spec in cfg.loss_clips)
        print(f"faceanim: conditioning {cond_clip.origin}; loss {loss_text}")
    frozen = load_frozen_directions(cfg.frozen_directions, G.w_dim) if cfg.frozen_directions else None
    motion_cfg = MotionConfig(**{"z_dim": cond_clip.embed_dim, "num_ws": G.num_ws, "w_dim": G.w_dim,
                                 "mode": cfg.mode, "template": cfg.template, "train_frames": cfg.num_frames,
                                 **cfg.motion,  # the file, not an override, says how many directions are frozen
                                 "frozen_directions": 0 if frozen is None else frozen.shape[0]})
    animator = LanguageGuidedAnimator(motion_cfg, cond_clip)
    if frozen is not None:
        try:
            animator.set_frozen_directions(frozen)
        except ValueError as exc:
            raise FaceanimError(f"frozen_directions {cfg.frozen_directions}: {exc}") from None
    animator = animator.to(device)

    lpips = None
    if cfg.loss.lpips:
        lpips = LPIPSLoss(size=cfg.loss.lpips_size or None)
        if not lpips.available and dist.is_main:
            print(f"faceanim: note: {lpips.reason}")
        lpips = lpips.to(device)
    weights = LossWeights(cfg.loss.w_reg, cfg.loss.path_reg, cfg.loss.contrastive, cfg.loss.lpips,
                          cfg.loss.directional, first_last=cfg.loss.first_last, outside=cfg.loss.outside,
                          target=cfg.loss.target, target_pixels=cfg.loss.target_pixels)
    contrastive = (ContrastiveLoss(loss_clips, cfg.loss.temperature, template=cfg.template, views=cfg.loss.views,
                                   form=cfg.loss.contrastive_form)
                   if cfg.loss.contrastive or cfg.loss.directional else None)
    directional = DirectionalLoss(contrastive, cfg.loss.neutral_prompt) if cfg.loss.directional else None
    loss = AnimationLoss(weights, contrastive, lpips, cfg.loss.path_order, cfg.loss.reduction, directional,
                         lpips_frames=cfg.loss.lpips_frames, target_form=cfg.loss.target_form,
                         target_gain=cfg.loss.target_gain)

    groups = animator.parameter_groups(cfg.lr_encoder, cfg.lr_mapper, cfg.lr_recurrent, cfg.train_visual_encoder,
                                       cfg.train_text_encoder)
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.Adam(groups, betas=cfg.betas)

    if cfg.mode == "latent":
        source = SampledLatents(G, cfg.num_items, cfg.truncation_psi, seed=cfg.seed, z_sampler=cfg.z_sampler)
    else:
        source = ImageLatentDataset(cfg.images, cfg.latents, G.img_resolution, G.num_ws, G.w_dim)
    sampler = StepBatchSampler(len(source), len(prompts), cfg.batch_size, cfg.seed, dist.rank, dist.world_size)

    train_module = animator
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_module = DDP(animator, device_ids=[device.index] if device.type == "cuda" else None,
                           find_unused_parameters=ddp_needs_unused_parameter_search(cfg))

    if run_dir is None:
        run_dir = next_run_dir(cfg.out_dir, cfg.name, create=not dry_run) if dist.is_main else None
        if dist.world_size > 1:
            import torch.distributed as tdist

            holder = [str(run_dir) if run_dir else None]
            tdist.broadcast_object_list(holder, src=0)
            run_dir = Path(holder[0])
    run_dir = Path(run_dir)
    if dist.is_main and not dry_run:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_run_config(cfg, run_dir)
    metrics = None
    if cfg.metrics_every and dist.is_main:
        if metrics_hook is None:
            raise FaceanimError("metrics_every is set but no metrics hook was given (faceanim train passes "
                                "faceanim.evaluation.hooks.training_metrics)")
        metrics = metrics_hook(cfg, loss_clip, device)
    return Trainer(cfg, animator, G, loss, optimizer, sampler, source, prompts, run_dir, device, dist, train_module,
                   metrics=metrics, progress=progress)

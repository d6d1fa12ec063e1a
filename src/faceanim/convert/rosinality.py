"""rosinality/stylegan2-pytorch ``.pt`` checkpoints (``g_ema`` + ``latent_avg``) → native generator.

Also reads the generator inside an e4e checkpoint (``decoder.*`` keys, same layout).
Equalized-LR gains and the √2 activation gain live in the forward pass in both codebases, so the
weights carry over unchanged; only names and a few shapes differ.
"""

from __future__ import annotations

import argparse
import os
import re
import zipfile
from pathlib import Path

import torch

from faceanim.errors import CheckpointError, UnsafePickleError
from faceanim.models.stylegan2 import Generator, GeneratorConfig


def torch_load_safe(path: str | os.PathLike, mmap: bool = False) -> object:
    """``torch.load`` with ``weights_only=True`` (no code from the file runs); errors become one line.

    ``mmap``: map the tensors instead of reading them (zip checkpoints only; a quick look at a 1 GB file's keys)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty")
    try:
        # argparse.Namespace holds the training options in rosinality checkpoints; it is inert data.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as exc:  # torch raises many types for bad files; turn all into one clear line
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Unsupported global" in str(exc) or "Weights only load failed" in str(exc):
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = found.group(1) if found else "a non-tensor object"
            raise UnsafePickleError(f"{path}: refused to load: the file asks to import {what}, which could run "
                                    f"code (only tensors and plain containers are allowed)") from None
        if isinstance(exc, (zipfile.BadZipFile, EOFError)) or "zip" in msg.lower() or "EOF" in msg:
            raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({msg})") from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({msg})") from None


def _strip(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def rosinality_to_native(g: dict[str, torch.Tensor], latent_avg: torch.Tensor | None = None,
                         lr_mlp: float = 0.01, source: str = "checkpoint"
                         ) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """Rename a rosinality ``Generator`` state dict into the native layout and infer its config."""
    if not all(isinstance(v, torch.Tensor) for v in g.values()):
        raise CheckpointError(f"{source}: g_ema is not a state dict of tensors")
    if "input.input" not in g or "conv1.conv.weight" not in g:
        raise CheckpointError(f"{source}: not a rosinality StyleGAN2 generator (no input.input / conv1.conv.weight)")
    mlp = sorted(int(m.group(1)) for k in g if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    if not mlp or mlp != list(range(1, len(mlp) + 1)):
        raise CheckpointError(f"{source}: mapping layers style.1..N not found or not contiguous")
    n_convs = len({int(m.group(1)) for k in g if (m := re.fullmatch(r"convs\.(\d+)\.conv\.weight", k))})
    if n_convs % 2:
        raise CheckpointError(f"{source}: odd number of synthesis convolutions ({n_convs})")
    log_size = n_convs // 2 + 2
    resolution = 2 ** log_size
    style_dim = g["style.1.weight"].shape[1]
    w_dim = g[f"style.{len(mlp)}.weight"].shape[0]
    img_channels = g["to_rgb1.conv.weight"].shape[1]
    channels = {"4": int(g["input.input"].shape[1])}

    out: dict[str, torch.Tensor] = {}
    for i in mlp:
        out[f"mapping.fc{i - 1}.weight"] = g[f"style.{i}.weight"]
        out[f"mapping.fc{i - 1}.bias"] = g[f"style.{i}.bias"]

    def styled(src: str, dst: str, noise_key: str) -> None:
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"].squeeze(0)
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = g[f"{src}.activate.bias"]
        out[f"{dst}.noise_strength"] = g[f"{src}.noise.weight"].reshape([])
        out[f"{dst}.noise_const"] = g[f"noises.{noise_key}"].reshape(g[f"noises.{noise_key}"].shape[-2:])

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"].squeeze(0)
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = g[f"{src}.bias"].reshape(-1)

    try:
        out["synthesis.b4.const"] = g["input.input"].squeeze(0)
        styled("conv1", "synthesis.b4.conv1", "noise_0")
        torgb("to_rgb1", "synthesis.b4.torgb")
        for k in range(n_convs // 2):
            res = 2 ** (k + 3)
            channels[str(res)] = int(g[f"convs.{2 * k}.conv.weight"].shape[1])
            styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", f"noise_{2 * k + 1}")
            styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", f"noise_{2 * k + 2}")
            torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
    except KeyError as exc:
        raise CheckpointError(f"{source}: incomplete rosinality generator, missing {exc.args[0]}") from None

    config = GeneratorConfig(z_dim=style_dim, w_dim=w_dim, img_resolution=resolution, img_channels=img_channels,
                             channels=channels, mapping_layers=len(mlp), mapping_lr_multiplier=lr_mlp)
    if latent_avg is not None:
        if latent_avg.numel() != w_dim:
            raise CheckpointError(f"{source}: latent_avg has {latent_avg.numel()} values, expected {w_dim}")
        out["mapping.w_avg"] = latent_avg.reshape(w_dim).float()
    return config, out


def load_rosinality(path: str | os.PathLike, lr_mlp: float = 0.01) -> tuple[Generator, list[str]]:
    """Load a rosinality ``.pt`` (or the decoder of an e4e ``.pt``) as a native :class:`Generator`.

    Returns the generator and notes for the user (e.g. that ``w_avg`` had to be estimated).
    """
    ckpt = torch_load_safe(path)
    notes: list[str] = []
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(ckpt).__name__}")
    if "g_ema" in ckpt:
        g, latent_avg = ckpt["g_ema"], ckpt.get("latent_avg")
    elif isinstance(ckpt.get("state_dict"), dict) and any(k.startswith("decoder.") for k in ckpt["state_dict"]):
        g, latent_avg = _strip(ckpt["state_dict"], "decoder."), ckpt.get("latent_avg")
        notes.append("read the generator (decoder.*) of an e4e checkpoint")
        if isinstance(latent_avg, torch.Tensor) and latent_avg.ndim == 2:
            latent_avg = latent_avg[0]  # e4e stores latent_avg repeated per W+ entry
    elif "g" in ckpt:
        g, latent_avg = ckpt["g"], ckpt.get("latent_avg")
        notes.append("no g_ema in checkpoint: converted the non-EMA generator 'g'")
    else:
        keys = ", ".join(sorted(map(str, ckpt))[:6])
        raise CheckpointError(f"{path}: no rosinality generator found (top-level keys: {keys})")
    if not isinstance(g, dict):
        raise CheckpointError(f"{path}: generator entry is not a state dict")
    config, state = rosinality_to_native(g, latent_avg if isinstance(latent_avg, torch.Tensor) else None,
                                         lr_mlp=lr_mlp, source=str(path))
    model = Generator(config)
    if "mapping.w_avg" not in state:
        state["mapping.w_avg"] = torch.zeros(config.w_dim)
        model.load_state_dict_checked(state, source=str(path))
        model.mapping.w_avg.copy_(model.estimate_w_avg())
        notes.append("checkpoint has no latent_avg: estimated w_avg from 10,000 samples of z (seed 0)")
    else:
        model.load_state_dict_checked(state, source=str(path))
    return model.eval().requires_grad_(False), notes

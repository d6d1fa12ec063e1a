"""Converters from the checkpoint formats users bring into the native ``config.json`` + safetensors format.

=============  ==================================================================================
format         file
=============  ==================================================================================
rosinality     ``torch.save`` dict with ``g_ema`` (+ ``latent_avg``), e.g. stylegan2-ffhq-config-f.pt
e4e            encoder4editing ``.pt``: its ``decoder.*`` generator (rosinality layout)
nvlabs         stylegan2-ada-pytorch / stylegan3 network pickle (``G_ema``), read without running its code
native         a folder written by :meth:`Generator.save_pretrained`
=============  ==================================================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from faceanim.errors import CheckpointError

FORMATS = ("auto", "rosinality", "e4e", "nvlabs", "native")


def detect_format(path: str | os.PathLike) -> str:
    """Guess the checkpoint format from the file's first bytes (never by unpickling)."""
    from faceanim.convert.safe_pickle import TORCH_LEGACY_HEAD

    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return "native"
        raise CheckpointError(f"{path} is a folder without config.json")
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise CheckpointError(f"{path} is empty")
    if head.startswith(b"PK\x03\x04") or head.startswith(TORCH_LEGACY_HEAD):
        return "rosinality"  # torch.save archive: rosinality or e4e, told apart by their keys
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "nvlabs"
    if head.startswith(b"\x89HDF") or head.startswith(b"{"):
        raise CheckpointError(f"{path}: unsupported file type (not a PyTorch checkpoint or network pickle)")
    raise CheckpointError(f"{path}: unrecognized file (not a PyTorch checkpoint, network pickle or model folder)")


def load_generator(src: str | os.PathLike, fmt: str = "auto", lr_mlp: float = 0.01):
    """Load a StyleGAN2 generator from any supported format. Returns ``(Generator, notes, format)``.

    ``src`` may also be a URL or a named source (``nvlabs:ffhq``): downloaded into the cache first
    (:func:`faceanim.downloads.fetch`)."""
    from faceanim.downloads import fetch, is_remote
    from faceanim.models.stylegan2 import Generator

    if is_remote(src):
        src = fetch(src)

    if fmt not in FORMATS:
        raise CheckpointError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(src)
    if fmt == "native":
        return Generator.from_pretrained(src), [], fmt
    if fmt in ("rosinality", "e4e"):
        from faceanim.convert.rosinality import load_rosinality

        G, notes = load_rosinality(src, lr_mlp=lr_mlp)
        return G, notes, ("e4e" if any("e4e" in n for n in notes) else "rosinality")
    from faceanim.convert.nvlabs import convert_nvlabs

    notes: list[str] = []
    G = convert_nvlabs(src, notes=notes)
    return G, notes, fmt


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, fmt: str = "auto", lr_mlp: float = 0.01,
                       overwrite: bool = False):
    """Convert a checkpoint into a native generator folder ``dst``. Returns ``(Generator, notes, format)``."""
    out = Path(dst)
    if out.exists() and not overwrite:
        raise CheckpointError(f"{dst} already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{dst} exists and is not a folder")
    G, notes, found = load_generator(src, fmt=fmt, lr_mlp=lr_mlp)
    G.save_pretrained(out)
    return G, notes, found

"""Converters from the checkpoint formats users bring into the native ``config.json`` + safetensors format.

=============  ==================================================================================
format         file
=============  ==================================================================================
rosinality     ``torch.save`` dict with ``g_ema`` (+ ``latent_avg``), e.g. stylegan2-ffhq-config-f.pt
e4e            encoder4editing ``.pt``: its encoder (``encoder.*`` + ``latent_avg`` → a native e4e folder), or
               with ``part="generator"`` its ``decoder.*`` generator (rosinality layout)
nvlabs         stylegan2-ada-pytorch / stylegan3 network pickle (``G_ema``), read without running its code
native         a folder written by :meth:`Generator.save_pretrained`
torchscript    a TorchScript archive (OpenAI's CLIP): tensors read without running it (:mod:`.torchscript`)
=============  ==================================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceanim.errors import CheckpointError

FORMATS = ("auto", "rosinality", "e4e", "nvlabs", "native")
PARTS = ("auto", "generator", "encoder")  # what to take from a file; auto: an e4e file's encoder, else the generator


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


@dataclass
class Converted:
    """What :func:`convert_checkpoint` wrote: the model, which part of which format, and notes for the user."""

    model: Any
    part: str                     # "generator" or "encoder"
    found: str                    # the source format
    notes: list[str] = field(default_factory=list)

    def summary(self, dst: str | os.PathLike) -> list[str]:
        n_params = sum(p.numel() for p in self.model.parameters())
        if self.part == "encoder":
            c = self.model.config
            lines = [f"converted the e4e encoder of {self.found} checkpoint → {dst}",
                     f"  IR-SE-{c.num_layers} for a {c.stylegan_size} px generator: W+ {c.n_styles}x512, "
                     f"{n_params / 1e6:.1f} M parameters"]
        else:
            c, G = self.model.config, self.model
            lines = [f"converted {self.found} checkpoint → {dst}",
                     f"  {c.img_resolution}x{c.img_resolution}, W+ {G.num_ws}x{c.w_dim}, z {c.z_dim}"
                     f"{f', labels {c.c_dim}' if c.c_dim else ''}, {n_params / 1e6:.1f} M parameters"]
        return lines + [f"  note: {note}" for note in self.notes]


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, fmt: str = "auto", lr_mlp: float = 0.01,
                       overwrite: bool = False, part: str = "auto") -> Converted:
    """Convert a checkpoint into a native folder ``dst``: a generator, or the encoder of an e4e file (``part``
    "auto" takes an e4e file's encoder, any other file's generator)."""
    if part not in PARTS:
        raise CheckpointError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
    out = Path(dst)
    if out.exists() and not overwrite:
        raise CheckpointError(f"{dst} already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{dst} exists and is not a folder")
    if part != "generator" and fmt in ("auto", "e4e", "rosinality") and Path(src).is_file() \
            and detect_format(src) == "rosinality":
        from faceanim.inversion.e4e import is_e4e_checkpoint, load_e4e

        if is_e4e_checkpoint(src):
            encoder = load_e4e(src)
            encoder.save_pretrained(out)
            return Converted(encoder, "encoder", "e4e",
                             ["its generator (decoder.*) is left out: convert it with --part generator"])
    if part == "encoder":
        raise CheckpointError(f"{src} holds no e4e encoder (no state_dict with encoder.styles.* keys)")
    G, notes, found = load_generator(src, fmt=fmt, lr_mlp=lr_mlp)
    G.save_pretrained(out)
    return Converted(G, "generator", found, notes)

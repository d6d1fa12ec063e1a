"""Which device to run on: ``--device auto | cpu | cuda | mps`` (one meaning in every command)."""

from __future__ import annotations

import os

import torch

from faceanim.errors import FaceanimError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA (this process's LOCAL_RANK under torchrun), else Apple MPS, else the CPU; or exactly the one named
    (a one-line error when it is not available)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FaceanimError("--device cuda requested but CUDA is not available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FaceanimError("--device mps requested but Apple MPS is not available")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)

"""Training checkpoints without pickles: weights and optimizer tensors in safetensors, the rest in JSON.

A checkpoint folder is written atomically (a crash mid-write leaves the previous one intact).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from faceanim.errors import CheckpointError
from faceanim.utils.io import atomic_dir


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for pid, st in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    step: int, extra: dict | None = None) -> Path:
    from faceanim.utils.io import save_safetensors

    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    with atomic_dir(folder) as tmp:
        save_safetensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                         tmp / "model.safetensors")
        save_safetensors(opt_tensors, tmp / "optimizer.safetensors")
        (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": opt_meta, **(extra or {})}, indent=1))
    return Path(folder)


def load_checkpoint(folder: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    device: str | torch.device = "cpu") -> dict:
    """Restore weights (and optimizer) in place; returns the JSON state (``step`` …)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / "state.json").read_text())
        weights = load_file(str(folder / "model.safetensors"), device=str(device))
        opt = load_file(str(folder / "optimizer.safetensors"), device=str(device)) if optimizer is not None else None
    except FileNotFoundError as exc:
        raise CheckpointError(f"incomplete training checkpoint in {folder}: {Path(exc.filename).name} is missing") from None
    except Exception as exc:
        raise CheckpointError(f"unreadable training checkpoint in {folder} ({type(exc).__name__}: {exc})") from None
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {folder} does not match the model (missing {missing[:2]}, "
                              f"unexpected {unexpected[:2]})")
    if optimizer is not None:
        optimizer.load_state_dict(_unflatten_optimizer(opt, meta["optimizer"]))
    return meta

"""Files: atomic writes and the native model format (``config.json`` + ``model.safetensors``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, TypeVar

import torch

from faceanim.errors import CheckpointError, FaceanimError
from faceanim.utils.interrupts import critical

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

T = TypeVar("T")


def _usual_mode(path: Path) -> None:
    """mkstemp/mkdtemp create private files (0600/0700); give results the mode a plain open() would."""
    mask = os.umask(0)
    os.umask(mask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_path(dst: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; it replaces ``dst`` only if the block succeeds.

    An interrupted or failed write leaves no partial file at ``dst``.
    """
    dst = Path(dst)
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise FaceanimError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise FaceanimError(f"output folder is not writable: {parent}")
    tmp_path: Path | None = None
    try:
        # a signal while the file is being created waits until tmp_path names it, and is raised inside this try
        with critical():
            fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix or dst.suffix or ".tmp", dir=parent)
            os.close(fd)
            tmp_path = Path(tmp)
        yield tmp_path
        _usual_mode(tmp_path)
        os.replace(tmp_path, dst)
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``dst`` that becomes ``dst`` only if the block succeeds.

    An existing ``dst`` is replaced only after the new one is complete.
    """
    dst = Path(dst)
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise FaceanimError(f"output folder does not exist: {parent}")
    if dst.exists() and not dst.is_dir():
        raise FaceanimError(f"output exists and is not a folder: {dst}")
    tmp: Path | None = None
    try:
        with critical():  # as in atomic_path: a signal here is raised once tmp names the folder
            tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=parent))
        yield tmp
        _usual_mode(tmp)
        with critical():  # the swap is all or nothing
            if dst.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=parent))
                os.replace(dst, old / "x")
                os.replace(tmp, dst)
                _rmtree(old)
            else:
                os.replace(tmp, dst)
    finally:
        if tmp is not None and tmp.exists():
            _rmtree(tmp)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` with the file mode a plain open() would give (safetensors ≥ 0.7 writes 0600,
    which would make saved models and latents unreadable to other users)."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    _usual_mode(Path(path))


def save_pretrained(folder: str | os.PathLike, config: Any, state_dict: dict[str, torch.Tensor], kind: str) -> Path:
    """Write ``config.json`` (with a ``kind`` tag) and ``model.safetensors`` into ``folder`` atomically."""
    folder = Path(folder)
    payload = {"kind": kind, **config_to_dict(config)}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_dir(folder) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        save_safetensors(tensors, tmp / WEIGHTS_NAME, metadata={"kind": kind})
    return folder


def read_config(folder: str | os.PathLike, kind: str) -> dict:
    """Read ``config.json`` of a native model folder and check its ``kind``."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError(f"not a model folder (expected {CONFIG_NAME} + {WEIGHTS_NAME}): {folder}")
    if not path.is_file():
        raise CheckpointError(f"missing {CONFIG_NAME} in {folder}")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{folder} holds a {found!r} model, expected {kind!r}")
    payload.pop("kind")
    return payload


def read_typed_config(folder: str | os.PathLike, kind: str, config_cls: type[T]) -> T:
    """``config.json`` of a native folder as the typed config dataclass ``config_cls`` (unknown or missing
    fields → one-line CheckpointError)."""
    try:
        return config_cls(**read_config(folder, kind))
    except TypeError as exc:
        raise CheckpointError(f"{folder}/config.json does not describe a {kind} ({exc})") from None


def load_weights(folder: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load ``model.safetensors`` (no pickle involved)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"missing {WEIGHTS_NAME} in {folder}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None


TENSOR_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".npy", ".npz")


def read_tensor_file(path: str | os.PathLike, what: str = "tensor") -> torch.Tensor | dict:
    """Read a tensor container without running code from it: ``.safetensors`` (dict of tensors), ``.pt``/``.pth``
    (``torch.load(weights_only=True)``), ``.npy``/``.npz`` (``allow_pickle=False``). Unreadable → one-line
    FaceanimError naming ``what`` the file was meant to hold."""
    import numpy as np

    path = Path(path)
    kind = path.suffix.lower()
    if kind not in TENSOR_FILE_SUFFIXES:
        raise FaceanimError(f"unsupported {what} file {os.fspath(path)!r}: use {', '.join(TENSOR_FILE_SUFFIXES)}")
    if not path.is_file():
        raise FaceanimError(f"{what} file not found: {path}")
    try:
        if kind == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        if kind in (".pt", ".pth"):
            return torch.load(path, map_location="cpu", weights_only=True)
        arr = np.load(path, allow_pickle=False)
        if isinstance(arr, np.lib.npyio.NpzFile):
            return {k: torch.from_numpy(arr[k]) for k in arr.files}
        return torch.from_numpy(arr)
    except Exception as exc:  # each reader has its own error types; all mean "not a readable file"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FaceanimError(f"{path} is not a readable {kind} {what} file ({reason})") from None


def check_state_dict(expected: dict[str, torch.Tensor], state: dict, source: str, what: str,
                     optional: tuple[str, ...] = ("num_batches_tracked",)) -> None:
    """Raise a one-line CheckpointError if ``state`` does not fit ``expected`` (missing, unexpected, non-tensor or
    wrongly shaped entries). Keys ending in one of ``optional`` may be missing."""
    missing = [k for k in expected if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {list(getattr(state[k], 'shape', []))}≠{list(v.shape)}" for k, v in expected.items()
             if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(keys)} {label} (e.g. {', '.join(keys[:2])})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise CheckpointError(f"{source}: weights do not match the {what}: {'; '.join(parts)}")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON record as a line (run logs: ``log.jsonl``, ``eval.jsonl``)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")

"""TorchScript archives (OpenAI's CLIP ``RN50.pt``, ``ViT-B-32.pt``) → tensors, read without running them.

A TorchScript archive is a zip with one top folder ``<name>/``:

- ``data.pkl``: the module tree, pickled. Each module is an instance of a class ``__torch__.<qualname>`` (created
  by NEWOBJ) whose attributes — parameters, buffers, submodules, flags — are set by a BUILD with a dict; tensors
  are ``torch._utils._rebuild_tensor_v2`` views of storages named by persistent id ``('storage', torch.FloatStorage,
  key, location, numel)``, whose bytes are the entry ``data/<key>``.
- ``code/__torch__/…py``: the TorchScript source of every class. Each class lists its ``__parameters__`` and
  ``__buffers__`` (the names ``state_dict()`` holds); a class may also define ``__setstate__``, which
  ``torch.jit.load`` compiles and *runs* on load with the pickled state — code from the file.
- ``constants.pkl``, ``version``, ``byteorder``, debug pickles: not needed for the weights.

:func:`read_torchscript` never compiles or runs any of it: ``data.pkl`` goes through a restricted unpickler in which
every ``__torch__`` class becomes an inert :class:`ScriptObject`, only tensor rebuilding and containers resolve,
and storages are read from their zip entries with size checks. The ``code/`` files are read as text only, for
the parameter and buffer lists and to refuse an archive whose classes define ``__setstate__`` (nothing of it is
run either way; the refusal is a warning sign — OpenAI's archives define none). The result equals
what ``state_dict()`` of the module torch.jit.load builds holds (tests/test_convert_torchscript.py).
"""

from __future__ import annotations

import ast
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from faceanim.convert.safe_pickle import STORAGE_DTYPES, Storage, rebuild_tensor
from faceanim.errors import CheckpointError, FaceanimError, UnsafePickleError

__all__ = ["ScriptArchive", "ScriptObject", "is_torchscript_archive", "read_torchscript"]

_MAX_OBJECTS = 200_000   # modules in one archive (RN50: ≈ 400)
_KEY = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(eq=False)
class ScriptObject:
    """An instance of a TorchScript class as data: its qualified name and its pickled state (never run)."""

    qualname: str = ""
    state: Any = None
    _built: bool = field(default=False, repr=False)

    def __setstate__(self, state: Any) -> None:  # the BUILD opcode: keep the state, run nothing
        if self._built:
            raise CheckpointError("malformed TorchScript archive: an object's state is set twice")
        self.state, self._built = state, True

    @property
    def class_name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]


@dataclass
class ScriptArchive:
    """What :func:`read_torchscript` found: the state dict, the root object and every class named in ``data.pkl``."""

    state_dict: dict[str, torch.Tensor]
    root: ScriptObject
    classes: set[str]


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """A zip holding TorchScript code (``*/code/…``) or constants (``*/constants.pkl``); opened, never run."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _script_class(qualname: str) -> type:
    """A class whose NEWOBJ yields an inert :class:`ScriptObject` named ``qualname``; calling it is refused."""

    def __new__(cls, *args: Any) -> ScriptObject:
        if args:
            raise CheckpointError(f"malformed TorchScript archive: {qualname} created with arguments")
        return ScriptObject(qualname)

    def __init__(self, *args: Any) -> None:  # REDUCE would call the class: TorchScript never writes that
        raise CheckpointError(f"malformed TorchScript archive: {qualname} called like a function")

    return type("ScriptClass", (), {"__new__": __new__, "__init__": __init__})


def _typed_list(items: Any) -> list:
    if not isinstance(items, list):
        raise CheckpointError("malformed TorchScript archive: a typed list is not a list")
    return items


def _restore_type_tag(value: Any, type_str: Any) -> Any:
    return value


def _ordered_dict(*args: Any) -> dict:
    if args and not isinstance(args[0], (list, tuple, dict)):
        raise CheckpointError("malformed TorchScript archive: OrderedDict built from something that is not pairs")
    return dict(*args)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    **{("torch.jit._pickle", f"build_{kind}list"): _typed_list for kind in ("int", "double", "bool", "tensor")},
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _ArchiveUnpickler(pickle.Unpickler):
    """``data.pkl`` with every ``__torch__`` class inert, an allow-list of callables, storages from the zip."""

    def __init__(self, file, zf: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.zf, self.prefix = zf, prefix
        self.storages: dict[str, Storage] = {}
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            if len(self.classes) > _MAX_OBJECTS:
                raise CheckpointError("malformed TorchScript archive: too many classes")
            return self.classes.setdefault(qualname, _script_class(qualname))
        found = _ALLOWED.get((module, name))
        if found is None:
            raise UnsafePickleError(f"refused to load: the archive asks for {module}.{name}, which is not on the "
                                    f"allow-list of tensor and container types (nothing was run)")
        return found

    def persistent_load(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError("malformed TorchScript archive: unexpected persistent id")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType) or not isinstance(key, str) or not _KEY.match(key) \
                or not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise CheckpointError("malformed TorchScript archive: malformed storage reference")
        if key in self.storages:
            return self.storages[key]
        itemsize = torch.empty(0, dtype=stype.dtype).element_size()
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise CheckpointError(f"truncated TorchScript archive: no storage {name}") from None
        if info.file_size < numel * itemsize:
            raise CheckpointError(f"truncated TorchScript archive: storage {key} holds {info.file_size} bytes, "
                                  f"{numel * itemsize} expected")
        data = self.zf.read(name)[: numel * itemsize]
        flat = torch.frombuffer(bytearray(data), dtype=stype.dtype) if numel else torch.empty(0, dtype=stype.dtype)
        self.storages[key] = Storage(flat)
        return self.storages[key]


def _top_folder(zf: zipfile.ZipFile, source: str) -> str:
    pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError(f"{source} is not a TorchScript archive (no single <name>/data.pkl)")
    return pickles[0][: -len("data.pkl")]


def _class_code(zf: zipfile.ZipFile, prefix: str) -> dict[str, str]:
    """Text of every ``code/`` source file, by module qualname (``__torch__.torch.nn.modules.conv``)."""
    out = {}
    for name in zf.namelist():
        if name.startswith(prefix + "code/") and name.endswith(".py"):
            module = name[len(prefix + "code/"): -len(".py")].replace("/", ".")
            out[module] = zf.read(name).decode("utf-8", errors="replace")
    return out


def _declared(code: dict[str, str], qualname: str) -> tuple[list[str], list[str]] | None:
    """``(__parameters__, __buffers__)`` of class ``qualname`` as its source lists them (literals only)."""
    module, _, cls = qualname.rpartition(".")
    text = code.get(module)
    if text is None:
        return None
    block = re.search(rf"^class {re.escape(cls)}\(.*?(?=^class |\Z)", text, re.MULTILINE | re.DOTALL)
    if block is None:
        return None
    lists = []
    for attr in ("__parameters__", "__buffers__"):
        found = re.search(rf"^\s+{attr} = (\[.*?\])\s*$", block.group(0), re.MULTILINE)
        try:
            names = ast.literal_eval(found.group(1)) if found else None
        except (ValueError, SyntaxError):
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        lists.append(names)
    return lists[0], lists[1]


def _flatten(root: ScriptObject, code: dict[str, str], source: str) -> dict[str, torch.Tensor]:
    """The object tree → ``{dotted name: tensor}`` of the parameters and buffers (as ``state_dict()``)."""
    out: dict[str, torch.Tensor] = {}
    stack: list[tuple[str, ScriptObject]] = [("", root)]
    seen = 0
    while stack:
        prefix, obj = stack.pop()
        seen += 1
        if seen > _MAX_OBJECTS or prefix.count(".") > 64:
            raise CheckpointError(f"{source}: malformed TorchScript archive (module cycle or too many modules)")
        if not isinstance(obj.state, dict):
            raise UnsafePickleError(f"{source}: refused to load: {obj.qualname} has a custom pickled state, which "
                                    f"only TorchScript code could restore (nothing was run)")
        declared = _declared(code, obj.qualname)
        keep = set(declared[0]) | set(declared[1]) if declared else None
        for name, value in obj.state.items():
            path = f"{prefix}{name}"
            if isinstance(value, torch.Tensor) and (keep is None or name in keep):
                out[path] = value
            elif isinstance(value, ScriptObject):
                stack.append((path + ".", value))
    return out


def read_torchscript(path: str | os.PathLike) -> ScriptArchive:
    """Read the parameters and buffers of a TorchScript archive without running any of it (see the module doc).

    Raises :class:`~faceanim.errors.UnsafePickleError` for an archive whose classes define ``__setstate__`` or
    whose pickle names anything beyond tensors and containers, :class:`~faceanim.errors.CheckpointError` for a
    missing, truncated or malformed one; messages are one line and start with the path.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            prefix = _top_folder(zf, source)
            if prefix + "byteorder" in zf.namelist() and zf.read(prefix + "byteorder").strip() != b"little":
                raise CheckpointError(f"{source}: big-endian TorchScript archives are not supported")
            code = _class_code(zf, prefix)
            for module, text in code.items():
                found = re.search(r"^\s+def __setstate__\(", text, re.MULTILINE)
                if found:
                    owner = re.findall(r"^class (\w+)\(", text[: found.start()], re.MULTILINE)
                    cls = f"{module}.{owner[-1]}" if owner else module
                    raise UnsafePickleError(f"{source}: refused to load: its TorchScript class {cls} defines "
                                            f"__setstate__, code that loading would run (nothing was run)")
            with zf.open(prefix + "data.pkl") as f:
                unpickler = _ArchiveUnpickler(f, zf, prefix)
                root = unpickler.load()
            classes = set(unpickler.classes)
    except FaceanimError as exc:
        msg = str(exc)
        raise type(exc)(msg if msg.startswith(source) else f"{source}: {msg}") from None
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, OSError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{source} is truncated or not a TorchScript archive ({detail})") from None
    except (RecursionError, MemoryError):
        raise CheckpointError(f"{source}: malformed TorchScript archive") from None
    except Exception as exc:  # TypeError, ValueError, KeyError… from malformed opcodes or arguments
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{source} is not a readable TorchScript archive ({type(exc).__name__}: {detail})") \
            from None
    if not isinstance(root, ScriptObject):
        raise CheckpointError(f"{source}: the archive's data.pkl holds a {type(root).__name__}, not a module")
    return ScriptArchive(_flatten(root, code, source), root, classes)

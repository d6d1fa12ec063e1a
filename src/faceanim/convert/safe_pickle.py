"""A restricted unpickler for NVlabs network pickles (stylegan2-ada-pytorch, stylegan3).

NVlabs pickles whole ``torch.nn.Module`` objects through ``torch_utils.persistence``: each module is
stored as ``_reconstruct_persistent_obj(meta)``, where ``meta`` carries the *Python source* of the module
that defined the class (``module_src``), the bare class name and the instance ``__dict__`` (``state``).
Plain ``pickle.load`` would ``exec`` that source. Here every persistent object becomes an inert
:class:`PersistentRecord`, the source is kept as text and never run, and only these globals resolve:

- ``torch_utils.persistence._reconstruct_persistent_obj`` → a :class:`PersistentRecord` (no code run);
- ``torch.storage._load_from_bytes`` → a storage, parsed here from its legacy ``torch.save`` bytes (no
  ``torch.load``, so the result does not depend on the installed torch's own unpickler);
- ``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter`` (+ ``_with_state``), ``_rebuild_from_type_v2``
  → plain tensors, bounds-checked views of those storages (hooks, ``requires_grad`` and metadata dropped);
- ``collections.OrderedDict``, ``builtins.set`` / ``frozenset``, ``dnnlib.util.EasyDict`` → containers
  (OrderedDict and EasyDict end up as plain ``dict``);
- ``numpy`` arrays, scalars and dtypes (numeric and text kinds only) → arrays and Python scalars;
- ``torch.Size`` and ``torch.<dtype>`` → themselves; ``torch.device`` → its name.

Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ``torch.load``…) raises
:class:`~faceanim.errors.UnsafePickleError` naming the global *before* it is returned, so nothing it names is
ever called. Persistent ids (``BINPERSID``) are refused, except the single storage reference inside each
storage blob. Only pickled *data* reaches the callables above, and each validates its arguments.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from faceanim.errors import CheckpointError, FaceanimError, UnsafePickleError

__all__ = ["PersistentRecord", "Storage", "load_pickle_file", "rebuild_tensor", "restricted_load", "STORAGE_DTYPES"]


# -- inert results ---------------------------------------------------------------------------------------------

@dataclass(eq=False)
class PersistentRecord:
    """What a ``torch_utils.persistence`` object turns into: data only, its source never executed.

    ``class_name`` is the bare class name stored by NVlabs (``"Generator"``); ``module`` is inferred from the
    embedded source text (``"training.networks"``, ``"training.networks_stylegan2"``,
    ``"training.networks_stylegan3"``, ``"training.augment"`` or ``"unknown"``); ``state`` is the module's
    ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ``_init_args``, attributes…).
    """

    class_name: str
    module: str
    state: dict
    module_src: str = field(repr=False, default="")
    version: int | None = None

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.class_name}"

    @property
    def init_kwargs(self) -> dict:
        kw = self.state.get("_init_kwargs")
        return kw if isinstance(kw, dict) else {}

    def submodules(self) -> dict[str, "PersistentRecord | None"]:
        mods = self.state.get("_modules")
        return mods if isinstance(mods, dict) else {}

    def __setstate__(self, state: Any) -> None:  # a BUILD opcode aimed at a record: not something NVlabs writes
        raise CheckpointError("malformed network pickle: state applied to a persistent object")


class _TypeTag:
    """Stands in for a class the pickle may *name* (as an argument) but must never call."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<type tag {self.name}>"


class Storage:
    """A storage read from a legacy ``torch.save`` blob, held as a flat 1-D tensor."""

    def __init__(self, flat: torch.Tensor):
        self.flat = flat


class _EasyDict(dict):
    """Target of ``dnnlib.util.EasyDict``; turned into a plain ``dict`` after loading."""

    def __setstate__(self, state: Any) -> None:  # EasyDict keeps everything in its items; nothing to restore
        pass


_NDARRAY = _TypeTag("numpy.ndarray")
_TENSOR = _TypeTag("torch.Tensor")
_PARAMETER = _TypeTag("torch.nn.Parameter")

_MAX_DIMS = 16


# -- the callables a pickle may reach --------------------------------------------------------------------------

def _bad(msg: str) -> CheckpointError:
    return CheckpointError(f"malformed network pickle: {msg}")


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # header of a legacy (non-zip) torch.save stream
_LEGACY_PROTOCOL = 1001
TORCH_LEGACY_HEAD = pickle.dumps(_LEGACY_MAGIC, protocol=2)[:-1]  # how a legacy torch.save file starts
STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _StorageBlobUnpickler(pickle.Unpickler):
    """The pickles inside a legacy storage blob: plain data, storage type names and one storage reference."""

    def __init__(self, file: BinaryIO):
        super().__init__(file)
        self.refs: list[tuple[str, torch.dtype, int]] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        raise UnsafePickleError(f"refused to load: an embedded tensor storage asks for {module}.{name}, which could "
                                f"run code (nothing was run)")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage type, key, location, element count, view metadata = None)
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise _bad("unexpected reference inside a tensor storage")
        _, stype, key, _location, numel, *view = pid
        if not isinstance(stype, _StorageType) or not isinstance(key, str) or view not in ([], [None]) \
                or not isinstance(numel, int) or numel < 0:
            raise _bad("malformed storage reference inside a tensor storage")
        self.refs.append((key, stype.dtype, numel))
        return self.refs[-1]


def _load_storage(blob: Any) -> Storage:
    """``torch.storage._load_from_bytes``: parse the legacy ``torch.save`` stream of one storage ourselves.

    The stream is: pickled magic number, protocol version, system info, a pickle referencing the storage by
    persistent id, the pickled list of storage keys, then per storage an int64 element count and the raw
    little-endian bytes. Parsing it here (rather than with ``torch.load``) keeps the reading independent of
    the installed torch version's own pickle handling.
    """
    if not isinstance(blob, (bytes, bytearray)):
        raise _bad(f"storage payload is {type(blob).__name__}, expected bytes")
    f = io.BytesIO(bytes(blob))
    try:
        magic, protocol, sys_info = (_StorageBlobUnpickler(f).load() for _ in range(3))
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise _bad("tensor storage is not a legacy torch.save stream")
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise _bad("big-endian tensor storages are not supported")
        main = _StorageBlobUnpickler(f)
        ref = main.load()
        keys = _StorageBlobUnpickler(f).load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise _bad(f"unreadable tensor storage ({type(exc).__name__})") from None
    if len(main.refs) != 1 or ref is not main.refs[0] or keys != [ref[0]]:
        raise _bad("tensor storage blob does not hold exactly one storage")
    _key, dtype, numel = ref
    count = int.from_bytes(f.read(8), "little", signed=True)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    data = f.read(numel * itemsize)
    if count != numel or len(data) != numel * itemsize:
        raise _bad("tensor storage is truncated")
    flat = torch.frombuffer(bytearray(data), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
    return Storage(flat)


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS:
        raise _bad(f"tensor {what} is not a short tuple of integers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise _bad(f"tensor {what} holds negative or non-integer values")
    return tuple(value)


def rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2``: a bounds-checked view of a storage. Hooks and metadata are dropped."""
    if not isinstance(storage, Storage):
        raise _bad("tensor built on something that is not a storage")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise _bad("tensor storage offset is not a non-negative integer")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise _bad("tensor size and stride differ in length")
    try:
        return storage.flat.as_strided(size, stride, storage_offset)
    except RuntimeError as exc:
        raise _bad(f"tensor does not fit its storage ({str(exc).splitlines()[0]})") from None


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    """``torch._utils._rebuild_parameter`` (and ``_with_state``): the parameter's data as a plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise _bad("parameter data is not a tensor")
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    """``torch._utils._rebuild_from_type_v2``: rebuild with an allowed tensor function; type and state dropped."""
    if func not in (rebuild_tensor, _rebuild_parameter) or new_type not in (_TENSOR, _PARAMETER):
        raise _bad("tensor subclass rebuilt through an unexpected function or type")
    if not isinstance(args, tuple):
        raise _bad("tensor rebuild arguments are not a tuple")
    return func(*args)


def _reconstruct_persistent(meta: Any) -> PersistentRecord:
    """``torch_utils.persistence._reconstruct_persistent_obj``: an inert record; ``module_src`` is NOT executed."""
    if not isinstance(meta, dict):
        raise _bad("persistent object metadata is not a dict")
    kind, class_name, src, state = meta.get("type"), meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if kind != "class" or not isinstance(class_name, str) or not isinstance(src, str):
        raise _bad("persistent object metadata lacks type='class', class_name or module_src")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise _bad(f"persistent {class_name} has a {type(state).__name__} state, expected a dict")
    module = infer_module(src)
    if "." in class_name:  # tolerate a qualified name, e.g. "training.networks.Generator"
        module, class_name = class_name.rsplit(".", 1)
    version = meta.get("version")
    return PersistentRecord(class_name=class_name, module=module, state=state, module_src=src,
                            version=version if isinstance(version, int) else None)


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    if args and not isinstance(args[0], (list, tuple, dict)):
        raise _bad("OrderedDict built from something that is not a sequence of pairs")
    return collections.OrderedDict(*args)


def _set(items: Any = ()) -> set:
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise _bad("set built from something that is not a sequence")
    return set(items)


def _frozenset(items: Any = ()) -> frozenset:
    return frozenset(_set(items))


_NP_KINDS = set("biufcSU")  # bool, ints, floats, complex, bytes, text; never objects or structured records


def _np_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype``: only simple numeric / text types (no object or structured dtypes)."""
    if not isinstance(spec, str):
        raise _bad("numpy dtype spec is not a string")
    try:
        dt = np.dtype(spec)
    except TypeError:
        raise _bad(f"unknown numpy dtype {spec!r}") from None
    if dt.kind not in _NP_KINDS or dt.hasobject or dt.fields is not None:
        raise UnsafePickleError(f"refused to load: numpy dtype {spec!r} is not allowed (only numeric and text "
                                f"arrays, never object arrays; nothing was run)")
    return dt


def _np_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct``: an empty array that the following BUILD fills from raw bytes."""
    if subtype is not _NDARRAY:
        raise _bad("numpy array of an unexpected subtype")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar``: decode the raw bytes of one numeric value into a Python scalar."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NP_KINDS:
        raise _bad("numpy scalar of an unexpected dtype")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise _bad("numpy scalar payload has the wrong size")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0].item()


def _torch_size(dims: Any = ()) -> torch.Size:
    return torch.Size(_int_tuple(dims, "size"))


def _torch_device(spec: Any, index: Any = None) -> str:
    if not isinstance(spec, str):
        raise _bad("device spec is not a string")
    return spec if index is None else f"{spec}:{index}"


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
        ("torch.storage", "_load_from_bytes"): _load_storage,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._utils", "_rebuild_from_type_v2"): _rebuild_from_type,
        ("torch._tensor", "Tensor"): _TENSOR,
        ("torch", "Tensor"): _TENSOR,
        ("torch.nn.parameter", "Parameter"): _PARAMETER,
        ("torch", "Size"): _torch_size,
        ("torch", "device"): _torch_device,
        ("collections", "OrderedDict"): _ordered_dict,
        ("builtins", "set"): _set,
        ("builtins", "frozenset"): _frozenset,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("dnnlib", "EasyDict"): _EasyDict,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _np_dtype,
    }
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(core, "_reconstruct")] = _np_reconstruct
        allowed[(core, "scalar")] = _np_scalar
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[("torch", name)] = getattr(torch, name)
    return allowed


_ALLOWED = _allowed_globals()


# -- module inference from the (never executed) source text ----------------------------------------------------

def _defines(src: str, name: str) -> bool:
    return re.search(rf"^class\s+{name}\b", src, re.MULTILINE) is not None


def infer_module(src: str) -> str:
    """Which NVlabs module the embedded source is, from the classes it defines (text search only)."""
    if _defines(src, "SynthesisInput") or "filtered_lrelu" in src:
        return "training.networks_stylegan3"
    if _defines(src, "SynthesisBlock"):
        return "training.networks_stylegan2" if "fused_modconv_default" in src else "training.networks"
    if _defines(src, "AugmentPipe"):
        return "training.augment"
    return "unknown"


# -- the unpickler ---------------------------------------------------------------------------------------------

class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` resolves only the allow-list; persistent ids are refused."""

    def find_class(self, module: str, name: str) -> Any:  # GLOBAL, STACK_GLOBAL, INST and EXT* all land here
        obj = _ALLOWED.get((module, name))
        if obj is not None:
            return obj
        if module.startswith("dnnlib.tflib"):
            raise CheckpointError("this is a TensorFlow-era StyleGAN pickle (dnnlib.tflib); convert it to PyTorch "
                                  "with stylegan2-ada-pytorch's legacy.py first")
        raise UnsafePickleError(f"refused to load: the pickle asks for {module}.{name}, which is not on the "
                                f"allow-list of tensor and container types (nothing was run)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused to load: the pickle uses persistent ids, which network pickles never "
                                "contain (nothing was run)")


def _plain(obj: Any, memo: dict[int, Any]) -> Any:
    """EasyDict/OrderedDict → dict, recursively (records' states included); tensors and scalars untouched."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, PersistentRecord):
        memo[key] = obj
        obj.state = _plain(obj.state, memo)
        return obj
    if isinstance(obj, dict):
        out: dict = {}
        memo[key] = out
        for k, v in obj.items():
            out[k] = _plain(v, memo)
        return out
    if isinstance(obj, list):
        out_list: list = []
        memo[key] = out_list
        out_list.extend(_plain(v, memo) for v in obj)
        return out_list
    if isinstance(obj, tuple):
        memo[key] = obj  # a cycle through this tuple keeps the original; NVlabs pickles have none
        out_tuple = tuple(_plain(v, memo) for v in obj)
        memo[key] = out_tuple
        return out_tuple
    return obj


def restricted_load(file: BinaryIO, source: str = "pickle") -> Any:
    """Unpickle ``file`` with the allow-list; returns plain containers, tensors and :class:`PersistentRecord`s.

    Raises :class:`UnsafePickleError` for any global outside the allow-list (nothing it names is called) and
    :class:`CheckpointError` for truncated or malformed data. Messages are one line and start with ``source``.
    """
    try:
        data = _RestrictedUnpickler(file).load()
        return _plain(data, {})
    except FaceanimError as exc:
        raise type(exc)(f"{source}: {exc}") from None
    except (EOFError, pickle.UnpicklingError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "unexpected end of data"
        raise CheckpointError(f"{source} is truncated or not a network pickle ({detail})") from None
    except RecursionError:
        raise CheckpointError(f"{source}: malformed network pickle (nesting too deep)") from None
    except MemoryError:
        raise CheckpointError(f"{source}: malformed network pickle (asks for more memory than available)") from None
    except Exception as exc:  # TypeError, ValueError, KeyError… from malformed opcodes or arguments
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{source} is not a readable network pickle ({type(exc).__name__}: {detail})") from None


def load_pickle_file(path: str | os.PathLike) -> Any:
    """Open ``path`` and :func:`restricted_load` it, with clear errors for missing, empty and non-pickle files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
        if not head:
            raise CheckpointError(f"{path} is empty")
        if head.startswith(b"PK\x03\x04") or head.startswith(TORCH_LEGACY_HEAD):
            raise CheckpointError(f"{path} is a torch.save checkpoint, not an NVlabs network pickle "
                                  f"(convert it with --format rosinality)")
        f.seek(0)
        return restricted_load(f, source=str(path))

"""Process-level speed settings for CPU inference and training."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Keep freed memory inside glibc's heap instead of returning it to the kernel.

    Large tensors are otherwise ``mmap``-ed and zeroed by the kernel on every allocation, which costs
    40–50% of CPU time in generator inference (the same effect as starting Python with
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=…``). A no-op off glibc/Linux or when
    ``FACEANIM_NO_MALLOC_TUNING=1``. Returns whether the setting was applied.
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get("FACEANIM_NO_MALLOC_TUNING") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    _tuned = bool(ok)
    return _tuned


def allocator_setting() -> str:
    """Human-readable name of the allocator setting in force (for benchmark reports)."""
    if _tuned:
        return "glibc mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1)"
    if os.environ.get("MALLOC_MMAP_MAX_") == "0":
        return "glibc via MALLOC_MMAP_MAX_=0 environment"
    return "default allocator"


def frames_per_call(resolution: int, pixels: int = 8 * 256 ** 2, most: int = 8) -> int:
    """Frames per generator call when rendering without gradients: as many as hold ``pixels`` output pixels (the
    pixels of 8 frames of 256 px), at most ``most`` — so a call's transient activations stay about constant across
    resolutions (1 frame at 1024 px, where 8 frames per call took a 1024 px training run from 6.7 to 12–14 GiB and
    `animate` to 9.65 GiB; docs/BENCHMARKS.md)."""
    return max(1, min(most, pixels // resolution ** 2))


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op thread count (process-wide; None or the current count: unchanged),
    restoring it afterwards. Imports torch only when called."""
    import torch

    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""Ctrl-C, SIGTERM and SIGHUP end a run the same way: an exception that unwinds every atomic write (no partial
output), raised where Python is — except inside :func:`critical` sections (starting a subprocess whose output file
must not be orphaned), where the signal waits until the section ends."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Interrupted(KeyboardInterrupt):
    """SIGTERM / SIGHUP, handled like Ctrl-C (KeyboardInterrupt); ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_depth = 0
_pending: int | None = None


def _raise(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def _handler(signum: int, frame) -> None:
    global _pending
    if _depth:
        _pending = signum
        return
    _raise(signum)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A block that a signal does not cut in two: the signal is raised when the block ends."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending is not None:
            signum, _pending = _pending, None
            _raise(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Install the handlers for the duration of a command (main thread only); the previous ones come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

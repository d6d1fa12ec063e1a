"""SIGTERM and SIGHUP end `faceanim animate` like Ctrl-C at every phase: exit 128 + signal, "aborted", and nothing
partial left behind (the process runs on a pseudo-terminal so that its progress output shows which phase it is in)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tiny_models import tiny_bundle

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals and a pty")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return str(tiny_bundle(tmp_path_factory.mktemp("b")))


def _run_until(args: list[str], ready, timeout: float = 120.0) -> tuple[subprocess.Popen, int, str]:
    """Start ``faceanim`` on a pty; call ``ready(output_so_far)`` until it is true; return (proc, master fd, text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal's size: bars draw
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "faceanim", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    text, t0 = "", time.monotonic()
    while time.monotonic() - t0 < timeout:
        if ready(text):
            return proc, master, text
        if proc.poll() is not None:
            break
        r, _, _ = select.select([master], [], [], 0.01)
        if r:
            try:
                text += os.read(master, 4096).decode(errors="replace")
            except OSError:
                break
    proc.kill()
    pytest.fail(f"the phase never came (exit {proc.poll()}): {text[-500:]}")


def _finish(proc: subprocess.Popen, master: int, text: str) -> tuple[int, str]:
    code = proc.wait(timeout=60)
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    os.close(master)
    return code, text


def _temp_in(folder: Path):
    return lambda text: any(p.name.startswith(".") for p in folder.iterdir())


PHASES = {
    # phase: (output name, extra args, when to send)
    "loading": ("x.mp4", [], lambda out: (lambda text: "loading" in text)),
    "synthesis": ("x.mp4", ["-n", "1000", "--batch-size", "1"], lambda out: (lambda text: "frames:" in text)),
    "writing-mp4": ("x.mp4", ["-n", "120", "--size", "1024"], _temp_in),
    "writing-gif": ("x.gif", ["-n", "120", "--size", "1024"], _temp_in),
    "writing-frames": ("frames/", ["-n", "120", "--size", "1024"], _temp_in),
}


@pytest.mark.parametrize("sig, phase", [(signal.SIGTERM, p) for p in PHASES] + [(signal.SIGHUP, "loading"),
                                                                                   (signal.SIGHUP, "writing-mp4")])
def test_signal_aborts_cleanly(bundle, tmp_path, sig, phase):
    name, extra, when = PHASES[phase]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc, master, text = _run_until(["animate", "-b", bundle, "-p", "smiling", "-o", str(out_dir / name), *extra],
                                    when(out_dir))
    proc.send_signal(sig)
    code, text = _finish(proc, master, text)
    assert code == 128 + sig, text[-400:]
    assert f"aborted ({signal.Signals(sig).name})" in text and "Traceback" not in text
    assert list(out_dir.iterdir()) == [], "a partial or temporary output was left behind"


def test_something_is_said_within_a_second(bundle, tmp_path):
    """On a terminal, `animate` names what it loads within 1 s of starting (torch alone takes seconds to import)."""
    t0 = time.monotonic()
    proc, master, text = _run_until(["animate", "-b", bundle, "-p", "smiling", "-n", "2", "-o",
                                     str(tmp_path / "x.gif")], lambda text: "loading tiny" in text)
    first = time.monotonic() - t0
    code, text = _finish(proc, master, text)
    assert code == 0 and "wrote" in text
    assert first <= 1.0, f"first output after {first:.2f} s"

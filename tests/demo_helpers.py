"""Helpers of the demo tests: a served demo on a tiny bundle, request arguments, hostile uploads."""

from __future__ import annotations

import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

from tiny_models import tiny_bundle

FPS = 4
FRAMES = 4


@contextmanager
def served_demo(tmp: Path, invert_steps: int = 3, **server_options):
    """A demo on a tiny 16 px bundle, served on a free 127.0.0.1 port; yields (engine, server, url)."""
    from faceanim.web.demo import DemoConfig, DemoEngine, build_app
    from faceanim.web.server import ServerConfig, WebServer

    tmp.mkdir(parents=True, exist_ok=True)
    bundle = tiny_bundle(tmp)
    engine = DemoEngine(DemoConfig(bundles=[str(bundle)], device="cpu", invert_steps=invert_steps))
    server = WebServer(ServerConfig(port=None, **server_options), device=engine.device)
    try:
        url = server.launch(build_app(engine, server))
        yield engine, server, url
    finally:
        server.close()


def animate_args(*prompts: str, source: str = "seed", seed: int = 3, photo=None, aligned_crop: bool = True,
                 strength: float = 1.0, frames: int = FRAMES, fps: int = FPS, ping_pong: bool = False,
                 compare: bool = False) -> list:
    """The /animate endpoint's arguments in order (bundle None: the server's first)."""
    rows = list(prompts) + [""] * (4 - len(prompts))
    return ["tiny", source, seed, photo, aligned_crop, *rows, strength, frames, fps, ping_pong, compare]


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 1-bit PNG of width × height (all black, ~60 kB on disk; 400 M pixels once decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def rss_bytes() -> int:
    """Resident memory of this process (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

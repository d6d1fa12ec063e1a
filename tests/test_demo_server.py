"""The demo served for real and driven through gradio_client: by seed, by photo, a timeline, the grid; bad inputs
each answered with one line and followed by a normal request; no network; `faceanim demo` stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo_helpers import FPS, FRAMES, animate_args, huge_png, served_demo
from tiny_models import tiny_bundle

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

UPLOAD_LIMIT = 1_000_000  # bytes, small so the test can exceed it cheaply


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with served_demo(tmp_path_factory.mktemp("served"), max_upload_bytes=UPLOAD_LIMIT) as served:
        yield served


@pytest.fixture(scope="module")
def client(demo):
    return Client(demo[2], verbose=False)


def _duration(path) -> float:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return float(frames[-1].time + 1 / float(s.average_rate))


def _photo(path: Path, size=(48, 64)) -> Path:
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def test_animate_by_seed(client):
    video, files, face, recon, note, timings = client.predict(*animate_args("smiling", seed=7), api_name="/animate")
    assert Path(video).suffix == ".mp4" and _duration(video) == pytest.approx(FRAMES / FPS, abs=0.01)
    assert sorted(Path(f).suffix for f in files) == [".gif", ".mp4", ".safetensors"]
    assert face is not None and recon is None and "seed 7" in note
    assert f"{FRAMES} frames at {FPS} fps" in timings and "synthesis" in timings


def test_animate_by_photo_shows_the_reconstruction(client, tmp_path):
    out = client.predict(*animate_args("smiling", source="photo", photo=handle_file(str(_photo(tmp_path / "me.png")))),
                         api_name="/animate")
    video, files, face, recon, note, timings = out
    assert recon is not None and Image.open(recon).size == Image.open(face).size
    assert "projector" in note and "MSE" in note and "inversion" in timings
    assert _duration(video) == pytest.approx(FRAMES / FPS, abs=0.01)


def test_images_are_handed_to_gradio_as_files(client, tmp_path, monkeypatch):
    """Gradio writes a returned array to its content-named cache file in place, every time: a browser downloading
    that face while another request returned the same face got a short read (the load test's intermittent "Too little
    data for declared Content-Length"). The page returns PNG files, which Gradio copies and renames into place."""
    import gradio.processing_utils as pu

    calls = []
    real = pu.save_pil_to_cache
    monkeypatch.setattr(pu, "save_pil_to_cache", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    _, _, face, recon, *_ = client.predict(*animate_args("smiling", source="photo",
                                                         photo=handle_file(str(_photo(tmp_path / "me.png")))),
                                           api_name="/animate")
    _, _, again, *_ = client.predict(*animate_args("smiling", seed=7), api_name="/animate")
    assert calls == []
    assert [Path(p).name for p in (face, recon, again)] == ["face.png", "reconstruction.png", "face.png"]


def test_the_gallery_outlives_the_cache_policy(tmp_path):
    """The gallery shown at page load stays served after ``cache_seconds`` while outputs go (before, the janitor
    removed it with the outputs: every page opened an hour after start showed broken images)."""
    import json

    with served_demo(tmp_path, cache_seconds=1) as (_, server, url):
        video, *_ = Client(url, verbose=False).predict(*animate_args("smiling"), api_name="/animate")
        time.sleep(3.5)  # the janitor runs every second
        config = json.load(urllib.request.urlopen(url + "config", timeout=10))
        gallery = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "gallery")
        urls = [item["image"]["url"] for item in gallery["props"]["value"]]
        assert len(urls) == 8
        for u in urls:
            with urllib.request.urlopen(u, timeout=10) as r:
                assert r.status == 200 and r.read(8) == b"\x89PNG\r\n\x1a\n"
        assert list(server.outputs_dir.iterdir()) == []  # the request's folder went


def test_timeline_and_grid(client):
    video, *_ = client.predict(*animate_args("smiling", "crying", "angry"), api_name="/animate")
    assert _duration(video) == pytest.approx((3 * FRAMES - 2) / FPS, abs=0.01)
    grid, files, *_ = client.predict(*animate_args("smiling", "crying", compare=True), api_name="/animate")
    import av

    with av.open(grid) as c, av.open(video) as single:
        assert c.streams.video[0].width > 2 * single.streams.video[0].width
    assert sum(Path(f).suffix == ".safetensors" for f in files) == 2


BAD = {
    "non-image upload": ("photo", "is not an image file"),
    "20000x20000 PNG": ("huge", "larger than the limit of 64,000,000 pixels"),
    "empty prompt": (dict(prompts=("   ",)), "prompt is empty"),
    "5000-character prompt": (dict(prompts=("x" * 5000,)), "5,000 characters"),
    "0 frames": (dict(frames=0), "frames per prompt must be between 2"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_one_line_and_the_next_request_is_served(client, tmp_path, case):
    change, needle = BAD[case]
    kw: dict = {}
    prompts: tuple = ("smiling",)
    if change == "photo":
        bad = tmp_path / "holiday.jpg"
        bad.write_bytes(b"GIF89a but not really" * 10)
        kw = dict(source="photo", photo=handle_file(str(bad)))
    elif change == "huge":
        kw = dict(source="photo", photo=handle_file(str(huge_png(tmp_path / "huge.png"))))
    else:
        prompts = change.pop("prompts", prompts)
        kw = change
    t0 = time.perf_counter()
    with pytest.raises(AppError) as info:
        client.predict(*animate_args(*prompts, **kw), api_name="/animate")
    message = str(info.value)
    assert needle in message and "\n" not in message and "Traceback" not in message
    assert time.perf_counter() - t0 < 10
    video, *_ = client.predict(*animate_args("smiling"), api_name="/animate")  # served normally afterwards
    assert Path(video).stat().st_size > 0


def test_upload_over_the_byte_limit_is_refused(client, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > UPLOAD_LIMIT
    with pytest.raises(Exception) as info:
        client.predict(*animate_args("smiling", source="photo", photo=handle_file(str(big))), api_name="/animate")
    assert "size" in str(info.value).lower() or "large" in str(info.value).lower() or "413" in str(info.value)
    video, *_ = client.predict(*animate_args("smiling"), api_name="/animate")
    assert Path(video).stat().st_size > 0


def test_no_network_beyond_this_machine(tmp_path, monkeypatch):
    """Start a server, load the page, animate (the client in the same process): every connection and name
    lookup stays on 127.0.0.1. (The CLI test below checks a `faceanim demo` process the same way.)"""
    seen: list = []
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        seen.append(address)
        return real_connect(self, address)

    def lookup(host, *args, **kwargs):
        seen.append((host,))
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    with served_demo(tmp_path) as (_, _, url):
        assert urllib.request.urlopen(url, timeout=10).status == 200
        Client(url, verbose=False).predict(*animate_args("smiling"), api_name="/animate")
    hosts = {a[0] for a in seen if isinstance(a, tuple) and a}
    assert seen and hosts <= {"127.0.0.1", "localhost", "::1"}, hosts


# `faceanim demo` in a subprocess whose every name lookup and connection is logged (host per line).
WATCHED_CLI = """
import socket, sys
log = open(sys.argv[1], "a", buffering=1)
real_lookup, real_connect = socket.getaddrinfo, socket.socket.connect
def lookup(host, *a, **k):
    log.write(f"{host}\\n")
    return real_lookup(host, *a, **k)
def connect(self, address):
    if isinstance(address, tuple):
        log.write(f"{address[0]}\\n")
    return real_connect(self, address)
socket.getaddrinfo, socket.socket.connect = lookup, connect
from faceanim.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _start_cli(bundle: Path, tmp_path: Path) -> tuple[subprocess.Popen, str, Path]:
    from faceanim.web.server import free_port

    port, log = free_port(), tmp_path / "network.log"
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WATCHED_CLI, str(log), "demo", "-b", str(bundle),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return proc, url, log
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"the demo did not start:\n{proc.communicate()[0]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_cli_serves_and_stops_cleanly(tmp_path, sig):
    (tmp_path / "b").mkdir()
    bundle = tiny_bundle(tmp_path / "b")
    proc, url, log = _start_cli(bundle, tmp_path)
    try:
        assert list(tmp_path.glob("faceanim-web-*"))  # its private temp folder
        video, *_ = Client(url, verbose=False).predict(*animate_args("smiling"), api_name="/animate")
        assert Path(video).stat().st_size > 0
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "open http://127.0.0.1" in out and "faceanim demo: stopped" in out and "Traceback" not in out
    assert not list(tmp_path.glob("faceanim-web-*"))  # removed at shutdown
    hosts = set(log.read_text().split())  # start-up, page load, a request, shutdown: nothing beyond this machine
    assert hosts and hosts <= {"127.0.0.1", "localhost", "::1"}, hosts

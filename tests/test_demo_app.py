"""The demo's functions called directly (no server): animation by seed, photo, timeline, grid; every check."""

from __future__ import annotations

import os
import time

import av
import numpy as np
import pytest
import torch
from PIL import Image

from faceanim.errors import FaceanimError
from faceanim.outputs import load_latents_file

from demo_helpers import FPS, FRAMES, huge_png
from tiny_models import tiny_bundle

pytest.importorskip("gradio")

from faceanim.web.demo import DemoConfig, DemoEngine, DemoRequest  # noqa: E402
from faceanim.web.server import ServerConfig, WebServer, check_upload, host_warning, offline_environment  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("demo-bundle"))


@pytest.fixture(scope="module")
def engine(bundle):
    return DemoEngine(DemoConfig(bundles=[str(bundle)], device="cpu", invert_steps=3))


def _req(*prompts, **kw) -> DemoRequest:
    kw.setdefault("frames", FRAMES)
    kw.setdefault("fps", FPS)
    return DemoRequest(prompts=list(prompts), **kw)


def _video(path) -> tuple[int, float, tuple[int, int]]:
    """(frames, duration in seconds, (width, height)) of an MP4, decoded."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f for f in c.decode(s)]
        return len(frames), float(frames[-1].time + 1 / float(s.average_rate)), (s.width, s.height)


def test_seed_animation_writes_video_gif_and_reusable_latents(engine, bundle, tmp_path):
    result = engine.animate(_req("smiling", seed=3), tmp_path)
    assert [p.suffix for p in result.files] == [".mp4", ".gif", ".safetensors"]
    n, duration, size = _video(result.video)
    assert n == FRAMES == result.num_frames and duration == pytest.approx(FRAMES / FPS, abs=0.01)
    with Image.open(result.files[1]) as gif:
        assert gif.n_frames == FRAMES
    codes = load_latents_file(result.files[2])
    G = engine.pipe(None).G
    assert codes.shape == (FRAMES, G.num_ws, G.w_dim)
    # the first frame is the seed's face, shown on the page
    assert result.face.shape == (16, 16, 3) and result.reconstruction is None
    first = engine.pipe(None).latent_from_seed(3)
    assert torch.allclose(codes[0], first, atol=1e-5)
    assert set(result.timings) >= {"motion", "synthesis", "mp4", "gif", "latents", "total"}
    # `faceanim animate --latent` reads the downloaded latents
    from faceanim.cli.main import main

    assert main(["animate", "-b", str(bundle), "-p", "crying", "-n", "3", "--latent", str(result.files[2]),
                 "-o", str(tmp_path / "next/")]) == 0
    assert len(list((tmp_path / "next").glob("frame_*.png"))) == 3


def test_same_request_same_video(engine, tmp_path):
    a = engine.animate(_req("smiling", seed=5), tmp_path / "a")
    b = engine.animate(_req("smiling", seed=5), tmp_path / "b")
    c = engine.animate(_req("smiling", seed=6), tmp_path / "c")
    la, lb, lc = (load_latents_file(r.files[2]) for r in (a, b, c))
    assert torch.equal(la, lb) and not torch.equal(la, lc)


def test_timeline_pingpong_and_compare_grid(engine, tmp_path):
    timeline = engine.animate(_req("smiling", "", "crying", seed=1), tmp_path / "t")  # blank rows are dropped
    assert timeline.num_frames == 2 * FRAMES - 1 and _video(timeline.video)[0] == 2 * FRAMES - 1
    loop = engine.animate(_req("smiling", ping_pong=True), tmp_path / "p")
    assert loop.num_frames == 2 * FRAMES - 2
    grid = engine.animate(_req("smiling", "angry", "surprised", compare=True), tmp_path / "g")
    n, _, (width, height) = _video(grid.video)
    single_width = _video(timeline.video)[2][0]
    assert n == FRAMES and width > 3 * single_width
    latents = [p for p in grid.files if p.suffix == ".safetensors"]
    assert len(latents) == 3 and all(load_latents_file(p).shape[0] == FRAMES for p in latents)


def test_photo_center_square_is_inverted_once_and_cached(engine, tmp_path):
    photo = tmp_path / "face.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(photo)
    first = engine.animate(_req("smiling", source="photo", photo=str(photo), aligned_crop=True), tmp_path / "a")
    assert "projector" in first.face_note and "MSE" in first.face_note and "center square" in first.face_note
    assert first.reconstruction is not None and first.reconstruction.shape == first.face.shape
    assert first.timings["inversion"] > 0
    again = engine.animate(_req("smiling", source="photo", photo=str(photo), aligned_crop=True), tmp_path / "b")
    assert "reused" in again.face_note
    assert torch.equal(load_latents_file(first.files[2])[0], load_latents_file(again.files[2])[0])


def test_photo_note_states_alignment_and_projector_time(engine):
    pipe = engine.pipe(None)
    note = engine.photo_note()
    assert "projector (3 steps, about" in note
    alignment = pipe.info.alignment
    pipe.info.alignment = "center-crop"  # as the ToonFace bundle states
    try:
        assert not engine.aligns_photos()
        assert "center square" in engine.photo_note() and "cartoons" in engine.photo_note()
    finally:
        pipe.info.alignment = alignment
    assert engine.projector_step_seconds() > 0
    assert len(engine.gallery()) == 8 and engine.gallery()[2][1] == "seed 2"
    assert np.array_equal(engine.gallery()[2][0], engine.seed_face(None, 2))


@pytest.mark.parametrize("change,needle", [
    (dict(prompts=["", "  "]), "prompt is empty"),
    (dict(prompts=["x" * 5000]), "5,000 characters"),
    (dict(prompts=["word " * 39]), "too long for the text encoder"),
    (dict(prompts=["a", "b", "c", "d", "e"]), "at most 4 prompts"),
    (dict(frames=0), "frames per prompt"),
    (dict(frames=100000), "frames per prompt"),
    (dict(fps=0), "fps"),
    (dict(strength=-1), "strength"),
    (dict(strength="much"), "strength"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(bundle="nope"), "unknown bundle"),
    (dict(source="photo"), "upload a photo"),
    (dict(source="webcam"), "'seed' or 'photo'"),
])
def test_bad_requests_are_one_line_errors_before_any_work(engine, tmp_path, change, needle):
    req = _req("smiling")
    for k, v in change.items():
        setattr(req, k, v)
    t0 = time.perf_counter()
    with pytest.raises(FaceanimError) as info:
        engine.animate(req, tmp_path)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - t0 < 1.0
    assert not list(tmp_path.iterdir())  # nothing written


def test_uploads_are_limited_in_bytes_and_pixels(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(FaceanimError, match="notes.png is not an image file"):
        check_upload(text)
    t0 = time.perf_counter()
    with pytest.raises(FaceanimError, match="huge.png: .*larger than the limit of 64,000,000 pixels"):
        check_upload(huge_png(tmp_path / "huge.png"))
    assert time.perf_counter() - t0 < 2.0  # refused from the header, never decoded
    ok = tmp_path / "ok.png"
    Image.new("RGB", (300, 200)).save(ok)
    assert check_upload(ok).size == (300, 200)
    with pytest.raises(FaceanimError, match="the limit is"):
        check_upload(ok, max_bytes=100)
    with pytest.raises(FaceanimError, match="missing"):
        check_upload(tmp_path / "gone.png")


def test_server_settings_and_cache_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "example.org")
    monkeypatch.setenv("GRADIO_TEMP_DIR", os.environ.get("GRADIO_TEMP_DIR", ""))
    offline_environment()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["NO_PROXY"] == "example.org,127.0.0.1,localhost"
    assert host_warning("127.0.0.1") is None and "every machine" in host_warning("0.0.0.0")
    for bad in (dict(port=0), dict(queue_size=0), dict(concurrency=0), dict(cache_seconds=0)):
        with pytest.raises(FaceanimError):
            ServerConfig(**bad)
    server = WebServer(ServerConfig(port=None, keep_outputs=3, cache_seconds=100))
    try:
        assert server.concurrency == 1 and os.environ["GRADIO_TEMP_DIR"] == str(server.cache_dir)
        folders = []
        for i in range(5):
            d = server.new_output_dir()
            (d / "a.mp4").write_bytes(b"x")
            folders.append(d)
        server.prune()
        assert [d.exists() for d in folders] == [False, False, True, True, True]
        old = server.cache_dir / "h" / "old.mp4"
        old.parent.mkdir()
        old.write_bytes(b"x")
        past = time.time() - 200
        os.utime(old, (past, past))
        fresh = server.cache_dir / "new-hash"
        fresh.mkdir()  # Gradio makes a folder, then writes into it: an empty new folder is not removed
        (server.static_dir / "seed-0.png").write_bytes(b"x")
        server.prune()
        assert not old.exists() and old.parent.exists() and fresh.exists()  # folders go once old and empty
        server.prune(now=time.time() + 1000)  # everything is older than the policy now
        assert not old.parent.exists() and not fresh.exists()
        assert server.temp_files() == [server.static_dir / "seed-0.png"]  # the page's own files stay
        assert server.kept_files() == {(server.static_dir / "seed-0.png").resolve()}
        # a running request's folder is never pruned, however long it runs; it counts as new when it ends
        with server.output_dir() as running:
            (running / "v.mp4").write_bytes(b"video")
            past = time.time() - 500
            os.utime(running, (past, past))
            server.prune(now=time.time() + 1000)
            assert running.exists()
        server.prune()
        assert running.exists()
        # Gradio keeps one copy per content: an identical animation returned now gets the old, long-dated copy,
        # which must live as long as an output folder that holds the same file
        copy = server.cache_dir / "hash-of-v" / "v.mp4"
        copy.parent.mkdir()
        copy.write_bytes(b"video")
        os.utime(copy, (past, past))
        other = server.cache_dir / "hash-of-w" / "v.mp4"  # same name, other content
        other.parent.mkdir()
        other.write_bytes(b"other video")
        os.utime(other, (past, past))
        server.prune()
        assert copy.exists() and not other.exists()
        server.prune(now=time.time() + 1000)
        assert not running.exists() and not copy.exists()
        root = server.root
    finally:
        server.close()
    assert not root.exists()


def test_cli_demo_checks_options_before_serving(bundle, capsys):
    from faceanim.cli.main import main

    assert main(["demo", "--help"]) == 0
    assert "--bundle" in capsys.readouterr().out
    assert main(["demo", "-b", str(bundle), "--invert-steps", "0"]) == 2
    assert "--invert-steps" in capsys.readouterr().err
    assert main(["demo", "-b", str(bundle), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["demo", "-b", "no-such-bundle"]) == 2
    assert "unknown bundle" in capsys.readouterr().err

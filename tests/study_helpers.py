"""Helpers of the study tests: an evaluate results folder written directly, a study on it, a server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faceanim.study import StudyConfig, StudyStore, create_study, plan_study, read_evaluate_run


def write_run(root: Path, methods=("ours", "styleclip"), prompts=("smiling", "crying", "angry"), faces=4,
              real_videos: bool = False, frames: int = 4, size: int = 32) -> Path:
    """The layout `faceanim evaluate --save-videos` writes (results.json + videos/METHOD/PROMPT/faceNNN.mp4).

    Without ``real_videos`` the files are placeholders (the store only needs them to exist); with it, tiny MP4s
    whose colour tells method, prompt and face apart."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for k, m in enumerate(methods):
        for j, p in enumerate(prompts):
            for i in range(faces):
                rel = f"videos/{m}/{j:02d}-{p}/face{i:03d}.mp4"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                if real_videos:
                    import torch

                    from faceanim.outputs import write_animation

                    g = torch.Generator().manual_seed(100 * k + 10 * j + i)
                    base = torch.rand(3, 1, 1, generator=g) * 2 - 1
                    video = base.expand(frames, 3, size, size).clone()
                    video[:, :, : size // 2] *= torch.linspace(1, -1, frames).view(frames, 1, 1, 1)
                    write_animation(video, root / rel, fps=10)
                else:
                    (root / rel).write_bytes(b"placeholder")
                records.append({"method": m, "prompt": p, "key": None, "face": i, "seed": i, "seconds": 0.1,
                                "video": rel})
    results = {"bundle": "test", "domain": "toon", "features": {"fid": "clip-test"}, "videos": records,
               "methods": {m: {"overall": {}, "per_prompt": {}, "set": {"fid": 40.0 + k}}
                           for k, m in enumerate(methods)}}
    (root / "results.json").write_text(json.dumps(results))
    return root


def make_study(tmp: Path, cfg: StudyConfig | None = None, **run_kw) -> StudyStore:
    cfg = cfg or StudyConfig(raters=4, per_rater=6)
    run = read_evaluate_run(write_run(tmp / "run", **run_kw), cfg.methods)
    return create_study(tmp / "study.db", run, cfg, plan_study(run, cfg))


def item_sides(store: StudyStore) -> dict[int, tuple[str, str, str, str | None]]:
    """item id → (kind, left method, right method, expected side), read from the file (what a test may know)."""
    import sqlite3

    con = sqlite3.connect(store.path)
    try:
        rows = con.execute("SELECT i.id, i.kind, lv.method, rv.method, i.expected FROM items i "
                           "JOIN videos lv ON lv.id = i.left_video JOIN videos rv ON rv.id = i.right_video")
        return {r[0]: tuple(r[1:]) for r in rows}
    finally:
        con.close()


class Server:
    """``faceanim study serve DB --port 0`` in a subprocess; ``base`` is its URL once it listens."""

    def __init__(self, db: Path, timeout: float = 60):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        self.log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would block the server
        self.proc = subprocess.Popen([sys.executable, "-m", "faceanim", "study", "serve", str(db), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
                                     start_new_session=True)
        line = self.proc.stdout.readline()  # then nothing more is printed on stdout
        if not line.startswith("serving on "):
            self.stop()
            raise RuntimeError(f"server did not start: {line!r} {self.errors()}")
        self.base = line.split()[-1]
        deadline = time.monotonic() + timeout
        import httpx2 as httpx

        while True:  # the socket listens before uvicorn accepts: wait for the first answer
            try:
                httpx.get(self.base + "/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("server did not answer") from None
                time.sleep(0.05)

    def errors(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

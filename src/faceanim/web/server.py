"""The server setup every faceanim page shares (the demo, the study's rater pages).

* offline: analytics and the Hugging Face hub off, proxies bypassed for 127.0.0.1, no share links; Gradio's
  fonts and assets are served locally, so a page load and a request contact nothing but this machine;
* a bounded queue: ``concurrency`` jobs run at once (1 on CPU: two jobs would only share the same cores) and
  at most ``queue_size`` wait; one more is answered "queue is full, try again" at once instead of waiting;
* uploads limited in bytes (Gradio refuses larger ones) and pixels (:func:`check_upload` for the app's own check);
* a private temp folder (Gradio's cache and the app's outputs) that is pruned while serving (files older than
  ``cache_seconds``; at most ``keep_outputs`` output folders) and removed at shutdown. The page's own files stay
  for the server's life: the components' initial values (Gradio's ``keep_in_cache``) and ``static_dir``;
* SIGINT/SIGTERM stop the server cleanly (:meth:`WebServer.serve_forever`).

Import order matters: :class:`WebServer` sets the environment before Gradio is imported or components are built.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from faceanim.errors import FaceanimError
from faceanim.utils.images import MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    import gradio as gr
    import torch

MAX_UPLOAD_BYTES = 50 * 1024 * 1024   # larger uploads are refused by the server before they reach the app
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",   # no telemetry, no version check
    "HF_HUB_OFFLINE": "1",                 # huggingface_hub (a Gradio dependency) never reaches the hub
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_SSR_MODE": "False",            # no Node server for server-side rendering
}


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"            # 0.0.0.0 serves every machine that reaches this one (a warning is printed)
    port: int | None = 7860            # None: a free port
    queue_size: int = 8                # jobs that may wait; one more is told "busy" at once
    concurrency: int | None = None     # jobs run at once; None: by device (1 on CPU/MPS, 2 on CUDA)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    cache_seconds: int = 3600          # outputs and uploads older than this are deleted (checked as often)
    keep_outputs: int = 32             # at most this many output folders are kept (the oldest go first)
    temp_dir: str | None = None        # the private temp root (default: a fresh folder, removed at shutdown)

    def __post_init__(self) -> None:
        if self.port is not None and not 1 <= self.port <= 65535:
            raise FaceanimError(f"--port must be between 1 and 65535, got {self.port}")
        if self.queue_size < 1:
            raise FaceanimError(f"the queue size must be at least 1, got {self.queue_size}")
        if self.concurrency is not None and self.concurrency < 1:
            raise FaceanimError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.cache_seconds < 1 or self.keep_outputs < 1:
            raise FaceanimError("cache_seconds and keep_outputs must be at least 1")


def offline_environment() -> None:
    """Analytics and hub access off; 127.0.0.1 bypasses any HTTP proxy (Gradio's own start-up check uses it).

    huggingface_hub (imported by Gradio and open_clip) reads its switches once, at import: when it already is
    imported, they are set on its constants too, or its telemetry thread and agent lookup would reach the hub."""
    os.environ.update(OFFLINE_ENV)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
        constants.HF_HUB_DISABLE_TELEMETRY = True
    for key in ("NO_PROXY", "no_proxy"):
        have = [h for h in os.environ.get(key, "").split(",") if h]
        os.environ[key] = ",".join(have + [h for h in ("127.0.0.1", "localhost") if h not in have])


def default_concurrency(device: "torch.device | str") -> int:
    """Jobs a device sustains at once: one on CPU (a second would halve the speed of both) and MPS, two on CUDA."""
    return 2 if str(device).startswith("cuda") else 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def host_warning(host: str) -> str | None:
    if host in LOCAL_HOSTS:
        return None
    return (f"warning: --host {host} serves the app to every machine that can reach this one: no login, no "
            "encryption, and each request uses this machine's CPU/GPU")


def check_upload(path: str | os.PathLike, max_bytes: int = MAX_UPLOAD_BYTES,
                 max_pixels: int = MAX_IMAGE_PIXELS):
    """An uploaded image as RGB PIL image, or a one-line FaceanimError (too many bytes or pixels, not an image)."""
    from faceanim.utils.images import load_image

    name = Path(path).name
    try:
        size = os.path.getsize(path)
    except OSError:
        raise FaceanimError(f"the upload {name} is missing (upload it again)") from None
    if size > max_bytes:
        raise FaceanimError(f"the upload is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    try:
        return load_image(path, max_pixels=max_pixels)
    except FaceanimError as exc:  # name the file as the user knows it, not by its temp path
        raise FaceanimError(str(exc).replace(os.fspath(path), name)) from None


def _names_and_sizes(folder: Path) -> set[tuple[str, int]]:
    """(name, size) of the files directly in ``folder`` (none if it vanished meanwhile)."""
    out = set()
    with contextlib.suppress(OSError):
        for f in folder.iterdir():
            with contextlib.suppress(OSError):
                if f.is_file():
                    out.add((f.name, f.stat().st_size))
    return out


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """(files, folders) under ``root``, folders deepest first. Entries that Gradio or the janitor remove during the
    walk are skipped (``Path.rglob`` raised FileNotFoundError when a folder vanished under it)."""
    files: list[Path] = []
    folders: list[Path] = []
    for parent, subdirs, names in os.walk(root):
        folders += [Path(parent, d) for d in subdirs]
        files += [Path(parent, n) for n in names]
    return files, folders[::-1]


class WebServer:
    """One Gradio app on a bounded queue, in a private temp folder.

    >>> server = WebServer(ServerConfig(port=None))   # before building the Blocks: sets the environment
    >>> blocks = build_app(..., server)                 # Blocks(**server.blocks_kwargs())
    >>> url = server.launch(blocks)                     # returns at once
    >>> server.serve_forever()                          # blocks until SIGINT/SIGTERM, then closes
    """

    def __init__(self, config: ServerConfig | None = None, device: "torch.device | str" = "cpu"):
        self.config = config or ServerConfig()
        self.concurrency = self.config.concurrency or default_concurrency(device)
        offline_environment()
        self._own_root = self.config.temp_dir is None
        self.root = Path(self.config.temp_dir or tempfile.mkdtemp(prefix="faceanim-web-"))
        self.cache_dir = self.root / "gradio"
        self.outputs_dir = self.root / "outputs"
        self.static_dir = self.root / "static"  # files a page shows for the server's whole life: never pruned
        for d in (self.cache_dir, self.outputs_dir, self.static_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._old_temp_env = os.environ.get("GRADIO_TEMP_DIR")
        self._old_module_dirs: dict = {}
        os.environ["GRADIO_TEMP_DIR"] = str(self.cache_dir)  # read by Gradio when components are built
        self.blocks: "gr.Blocks | None" = None
        self.url: str | None = None
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None
        self._lock = threading.Lock()
        self._active: set[Path] = set()  # output folders of requests still running: never pruned

    # -- building --------------------------------------------------------------------------------------------------
    def blocks_kwargs(self) -> dict:
        """Keyword arguments for ``gr.Blocks``: analytics off, the cache policy."""
        age = self.config.cache_seconds
        return {"analytics_enabled": False, "delete_cache": (age, age)}

    def new_output_dir(self) -> Path:
        """A fresh folder for one request's outputs (pruned by the cache policy)."""
        d = self.outputs_dir / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        d.mkdir(parents=True)
        self.prune()
        return d

    @contextlib.contextmanager
    def output_dir(self) -> Iterator[Path]:
        """A fresh output folder for one request, never pruned while the request runs (a queued request can take
        longer than ``cache_seconds``), and counted as new again when it ends: Gradio copies the returned files
        into its cache right after."""
        d = self.new_output_dir()
        with self._lock:
            self._active.add(d)
        try:
            yield d
        finally:
            with contextlib.suppress(OSError):
                os.utime(d)
            with self._lock:
                self._active.discard(d)

    def kept_files(self) -> set[Path]:
        """Files pruning never removes: ``static_dir``'s, and Gradio's copies of the components' initial values
        (a gallery shown at page load: without them every page opened after ``cache_seconds`` had broken images)."""
        kept = {p.resolve() for p in _walk(self.static_dir)[0]}
        blocks = self.blocks
        if blocks is not None:
            for block in list(blocks.blocks.values()):
                kept.update(Path(p).resolve() for p in list(getattr(block, "keep_in_cache", ())))
        return kept

    def prune(self, now: float | None = None) -> int:
        """Delete output folders older than ``cache_seconds`` (and the oldest beyond ``keep_outputs``) except those
        of running requests, and files of Gradio's cache older than ``cache_seconds`` except :meth:`kept_files` and
        the copies of outputs still kept (same name and size: Gradio copies a file only once per content, so a
        request that returns an animation identical to an old one gets the old, long-dated copy); returns how many
        entries went."""
        now = time.time() if now is None else now
        age = self.config.cache_seconds
        removed = 0
        kept = self.kept_files()
        with self._lock:
            folders = sorted((p for p in self.outputs_dir.iterdir() if p.is_dir() and p not in self._active),
                             key=lambda p: p.name)
            excess = max(0, len(folders) - self.config.keep_outputs)
            live: set[tuple[str, int]] = set()  # (name, size) of the files of the output folders that stay
            for i, d in enumerate(folders):
                try:
                    if i < excess or now - d.stat().st_mtime > age:
                        shutil.rmtree(d, ignore_errors=True)
                        removed += 1
                        continue
                except FileNotFoundError:
                    continue
                live.update(_names_and_sizes(d))
            for d in list(self._active):
                live.update(_names_and_sizes(d))
            files, folders = _walk(self.cache_dir)
            for f in files:
                try:
                    st = f.stat()
                    if now - st.st_mtime > age and f.resolve() not in kept and (f.name, st.st_size) not in live:
                        f.unlink()
                        removed += 1
                except FileNotFoundError:
                    pass
            for d in folders:
                try:  # empty and old only: Gradio makes a folder, then writes its file into it
                    if now - d.stat().st_mtime > age:
                        d.rmdir()
                except OSError:
                    pass
        return removed

    def temp_files(self) -> list[Path]:
        """Every file in the server's temp folder (for tests and reports; :meth:`kept_files` among them)."""
        return _walk(self.root)[0]

    # -- running ---------------------------------------------------------------------------------------------------
    def launch(self, blocks: "gr.Blocks") -> str:
        """Start serving ``blocks`` (returns at once with its URL). A busy port is a one-line error."""
        cfg = self.config
        warning = host_warning(cfg.host)
        if warning:
            print(f"faceanim: {warning}", file=sys.stderr)
        port = cfg.port if cfg.port is not None else free_port()
        self.blocks = blocks
        self._gradio_temp_dir()
        blocks.queue(max_size=cfg.queue_size, default_concurrency_limit=self.concurrency)
        try:
            blocks.launch(server_name=cfg.host, server_port=port, share=False, prevent_thread_lock=True,
                          show_error=False, quiet=True, max_file_size=cfg.max_upload_bytes, ssr_mode=False,
                          footer_links=["api"], enable_monitoring=False, inbrowser=False)
        except OSError as exc:
            raise FaceanimError(f"cannot serve on {cfg.host}:{port} ({str(exc).splitlines()[0]}); "
                                "is the port in use? try another --port") from None
        self.url = f"http://{'127.0.0.1' if cfg.host in ('0.0.0.0', '::') else cfg.host}:{port}/"
        self._janitor = threading.Thread(target=self._prune_loop, name="faceanim-web-janitor", daemon=True)
        self._janitor.start()
        return self.url

    def _gradio_temp_dir(self) -> None:
        """Some Gradio modules read GRADIO_TEMP_DIR once, at import: point them at this server's folder too (or a
        later server in the same process would recreate folders inside an earlier server's removed one)."""
        import importlib

        for name in ("gradio.routes", "gradio.route_utils", "gradio.screen_recording_utils"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(module, "DEFAULT_TEMP_DIR"):
                self._old_module_dirs.setdefault(module, module.DEFAULT_TEMP_DIR)
                module.DEFAULT_TEMP_DIR = str(self.cache_dir)

    def _prune_loop(self) -> None:
        period = min(self.config.cache_seconds, 60)
        while not self._stop.wait(period):
            try:
                self.prune()
            except OSError:
                pass

    def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM, then close (main thread only)."""
        stop = threading.Event()

        def handler(signum, frame):  # noqa: ARG001
            stop.set()

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.close()

    def close(self) -> None:
        """Stop the server, the pruning thread, and remove the private temp folder (if this server made it)."""
        self._stop.set()
        if self.blocks is not None:
            try:
                self.blocks.close()
            finally:
                self.blocks = None
        if self._janitor is not None:
            self._janitor.join(timeout=5)
            self._janitor = None
        # point Gradio back where it was, so nothing later in this process writes into the removed folder
        for module, old in self._old_module_dirs.items():
            module.DEFAULT_TEMP_DIR = old
        self._old_module_dirs = {}
        if os.environ.get("GRADIO_TEMP_DIR") == str(self.cache_dir):
            if self._old_temp_env is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = self._old_temp_env
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "WebServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

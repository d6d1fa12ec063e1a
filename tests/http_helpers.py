"""A stand-in file server on 127.0.0.1 (http.server in a thread) for download tests: byte ranges, a connection
dropped part-way, and a log of the requests it saw."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)   # URL path ("/a/b.pkl") → content
    drop_after: dict[str, int] = field(default_factory=dict)  # path → bytes sent before the next GET is cut (once)
    always_cut: set[str] = field(default_factory=set)        # paths whose every GET is cut before any byte
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range header)
    url: str = ""

    def __call__(self, path: str) -> str:
        return self.url + path


def _handler(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = self.path.split("?")[0]
            rng = self.headers.get("Range")
            server.requests.append((self.command, path, rng))
            data = server.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if rng and rng.startswith("bytes="):
                start = int(rng[len("bytes="):].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not body:
                return
            cut = server.drop_after.pop(path, None) if self.command == "GET" else None
            if path in server.always_cut:
                cut = 0
            chunk = data[start:] if cut is None else data[start:start + cut]
            self.wfile.write(chunk)
            if cut is not None:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

    return Handler


@contextlib.contextmanager
def running(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 in a thread; yields the base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def serve(files: dict[str, bytes] | None = None) -> Iterator[FileServer]:
    state = FileServer(files=dict(files or {}))
    with running(_handler(state)) as state.url:
        yield state

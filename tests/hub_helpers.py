"""A minimal stand-in for the Hugging Face Hub on 127.0.0.1: the endpoints ``huggingface_hub`` calls to create a
repository, commit small files (regular uploads, base64 in the commit payload), describe a revision, list its
files and serve them — enough for ``upload_folder``, ``snapshot_download`` and ``hf_hub_download``. Point
``HF_ENDPOINT`` at ``Hub.url``.

It is a test double, not a Hub: no auth, no LFS / Xet uploads, no pagination, models only."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from http_helpers import running


@dataclass
class Hub:
    repos: dict[str, dict] = field(default_factory=dict)  # repo id → {"refs": {name: sha}, "commits": {sha: files}}
    requests: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # requests no route answered
    url: str = ""

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo["commits"][repo["refs"].get(revision, revision)]


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler(hub: Hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _json(self, obj, status: int = 200, headers: dict | None = None) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            self._json({"error": message}, status, {"X-Error-Code": code} if code else None)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _resolve(self, repo_id: str, rev: str):
            repo = hub.repos.get(repo_id)
            if repo is None:
                return None, None
            sha = repo["refs"].get(unquote(rev), unquote(rev))
            return sha, repo["commits"].get(sha)

        def do_HEAD(self) -> None:
            self._route()

        def do_GET(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

        def _route(self) -> None:
            path = self.path.split("?")[0]
            hub.requests.append((self.command, path))
            if self.command == "POST" and path == "/api/repos/create":
                payload = json.loads(self._body() or b"{}")
                repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") \
                    else payload["name"]
                if repo_id not in hub.repos:
                    sha = hashlib.sha1(repo_id.encode()).hexdigest()
                    hub.repos[repo_id] = {"refs": {"main": sha}, "commits": {sha: {}}}
                return self._json({"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})
            if self.command == "POST" and path == "/api/validate-yaml":  # the README's metadata block
                self._body()
                return self._json({"errors": [], "warnings": []})
            if path == "/api/agent-harnesses":  # a registry huggingface_hub reads for its user agent (optional)
                return self._error(404, "not served")
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", path)
            if m and self.command == "POST":
                files = json.loads(self._body())["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in files]})
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", path)
            if m and self.command == "POST":
                return self._commit(m.group(1), unquote(m.group(2)))
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/(.+)", path)
            if m:
                sha, files = self._resolve(m.group(1), m.group(2))
                if sha is None:
                    return self._error(404, "Repository not found", "RepoNotFound")
                if files is None:
                    return self._error(404, "Revision not found", "RevisionNotFound")
                return self._json({"id": m.group(1), "modelId": m.group(1), "sha": sha, "private": False,
                                   "siblings": [{"rfilename": p} for p in sorted(files)]})
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path)
            if m:
                sha, files = self._resolve(m.group(1), m.group(2))
                if files is None:
                    return self._error(404, "Repository not found", "RepoNotFound")
                return self._json([{"type": "file", "oid": git_oid(d), "size": len(d), "path": p}
                                   for p, d in sorted(files.items())])
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m and self.command in ("GET", "HEAD"):
                sha, files = self._resolve(m.group(1), m.group(2))
                if sha is None:
                    return self._error(404, "Repository not found", "RepoNotFound")
                if files is None:
                    return self._error(404, "Revision not found", "RevisionNotFound")
                data = files.get(unquote(m.group(3)))
                if data is None:
                    return self._error(404, "Entry not found", "EntryNotFound")
                self.send_response(200)
                self.send_header("X-Repo-Commit", sha)
                self.send_header("ETag", f'"{git_oid(data)}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(data)
                return None
            hub.unknown.append((self.command, path))
            return self._error(404, f"stand-in hub: no route for {self.command} {path}")

        def _commit(self, repo_id: str, rev: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "Repository not found", "RepoNotFound")
            files = dict(repo["commits"][repo["refs"].get(rev, rev)])
            message = ""
            for line in self._body().splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    message = item["value"].get("summary", "")
                elif item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    files.pop(item["value"]["path"], None)
            sha = hashlib.sha1(json.dumps([message, sorted((p, git_oid(d)) for p, d in files.items())])
                               .encode()).hexdigest()
            repo["commits"][sha] = files
            repo["refs"][rev] = sha
            return self._json({"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                               "pullRequestUrl": None})

    return Handler


def point_hf_at(monkeypatch, home: str | os.PathLike, endpoint: str | None = None, offline: bool = False) -> None:
    """Set HF_HOME / HF_ENDPOINT / HF_HUB_OFFLINE for this test — in the environment and in huggingface_hub's
    constants, which it reads once, at import."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_standin")
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(Path(home) / "hub"))
    if endpoint is not None:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            endpoint + "/{repo_id}/resolve/{revision}/{filename}")


@contextlib.contextmanager
def stand_in_hub() -> Iterator[Hub]:
    hub = Hub()
    with running(_handler(hub)) as hub.url:
        yield hub

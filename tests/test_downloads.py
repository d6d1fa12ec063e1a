"""Checkpoints by URL (issue 22, point 3): `faceanim convert URL OUT` and named NVlabs sources, against a stand-in
HTTP server on 127.0.0.1 — a normal download, a dropped connection resumed, a truncated file and a wrong checksum
refused with nothing left in the cache."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch

from faceanim import downloads
from faceanim.cli.main import main
from faceanim.downloads import SOURCES, Source, cached_path, fetch, is_remote, resolve_source
from faceanim.errors import CheckpointError, FaceanimError
from faceanim.models.stylegan2 import Generator
from http_helpers import serve
from test_convert_nvlabs import CASES, build_generator, snapshot, write_pickle

BLOB = bytes(range(256)) * 4096  # 1 MiB, more than one read chunk


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEANIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(downloads.time, "sleep", lambda s: None)


def cache_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "home" / "downloads"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_named_sources_are_nvlabs_stylegan2_ada_pickles():
    assert resolve_source("nvlabs:ffhq").url == \
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl"
    assert {n.split(":")[1] for n in SOURCES} == {"ffhq", "metfaces", "afhqcat", "afhqdog", "afhqwild", "brecahad",
                                                  "cifar10"}
    assert all(s.sha256 is None and s.size is None for s in SOURCES.values())  # NVlabs publishes neither
    assert is_remote("nvlabs:ffhq") and is_remote("https://x/y.pkl") and not is_remote("models/ffhq.pkl")
    with pytest.raises(FaceanimError, match="unknown source 'nvlabs:horse'.*nvlabs:ffhq"):
        resolve_source("nvlabs:horse")
    with pytest.raises(FaceanimError, match="fragment"):
        resolve_source("https://x/y.pkl#md5=abc")
    assert resolve_source("https://x/y.pkl#sha256=" + "A" * 64).sha256 == "a" * 64


def test_download_is_cached_and_not_fetched_again(tmp_path):
    with serve({"/w/blob.bin": BLOB}) as srv:
        path = fetch(srv("/w/blob.bin"))
        assert path.read_bytes() == BLOB
        assert path == cached_path(srv("/w/blob.bin"))
        assert fetch(srv("/w/blob.bin")) == path
        assert [r[0] for r in srv.requests] == ["GET"]  # the second call found it in the cache
    assert cache_files(tmp_path) == ["blob.bin"]


def test_dropped_connection_is_resumed_with_a_range_request(tmp_path):
    sha = hashlib.sha256(BLOB).hexdigest()
    with serve({"/blob.bin": BLOB}) as srv:
        srv.drop_after["/blob.bin"] = 300_000
        path = fetch(f"{srv('/blob.bin')}#sha256={sha}")
        assert path.read_bytes() == BLOB
        assert srv.requests == [("GET", "/blob.bin", None), ("GET", "/blob.bin", "bytes=300000-")]
        # the cached file is checked against the checksum asked for; another checksum means another file
        assert fetch(f"{srv('/blob.bin')}#sha256={sha}") == path and len(srv.requests) == 2
        with pytest.raises(CheckpointError, match="differs from the published"):
            fetch(f"{srv('/blob.bin')}#sha256={'1' * 64}")
    assert cache_files(tmp_path) == []


def test_interrupted_download_resumes_from_its_part_file(tmp_path):
    with serve({"/blob.bin": BLOB}) as srv:
        part = cached_path(srv("/blob.bin"))
        part.parent.mkdir(parents=True)
        part.with_name("blob.bin.part").write_bytes(BLOB[:1000])  # what a Ctrl-C left behind
        assert fetch(srv("/blob.bin")).read_bytes() == BLOB
        assert srv.requests == [("GET", "/blob.bin", "bytes=1000-")]


def test_truncated_file_is_refused_and_nothing_is_cached(tmp_path):
    with serve({"/f.pkl": BLOB[:5000]}) as srv:
        with pytest.raises(CheckpointError, match="5000 bytes.*6000 are published; refused"):
            fetch(Source("test:f", srv("/f.pkl"), size=6000))
    assert cache_files(tmp_path) == []


def test_connection_that_keeps_dropping_is_reported(tmp_path):
    with serve({"/f.pkl": BLOB}) as srv:
        srv.always_cut.add("/f.pkl")  # every request is cut before any byte: give up after the retries
        with pytest.raises(CheckpointError, match="keeps stopping at 0 of 1048576 bytes; run the same command again"):
            fetch(srv("/f.pkl"), retries=2)


def test_wrong_checksum_is_refused_and_nothing_is_cached(tmp_path):
    with serve({"/f.pkl": BLOB}) as srv:
        with pytest.raises(CheckpointError, match="SHA-256 .* differs from the published"):
            fetch(srv("/f.pkl") + "#sha256=" + "0" * 64)
        assert cache_files(tmp_path) == []
        with pytest.raises(CheckpointError, match="HTTP 404"):
            fetch(srv("/missing.pkl"))
    assert cache_files(tmp_path) == []


def nvlabs_bytes(tmp_path: Path) -> tuple[bytes, torch.nn.Module]:
    case = CASES["ada-4"]
    G_ema = build_generator(case, seed=1)
    path = write_pickle(tmp_path / "snap.pkl", snapshot(case, G_ema, build_generator(case, seed=2)))
    return path.read_bytes(), G_ema


def test_cli_convert_named_source_from_the_stand_in_server(tmp_path, monkeypatch, capsys):
    data, G_ema = nvlabs_bytes(tmp_path)
    with serve({"/pretrained/ffhq.pkl": data}) as srv:
        monkeypatch.setitem(SOURCES, "nvlabs:ffhq", Source("nvlabs:ffhq", srv("/pretrained/ffhq.pkl")))
        srv.drop_after["/pretrained/ffhq.pkl"] = len(data) // 2
        assert main(["convert", "nvlabs:ffhq", str(tmp_path / "ffhq-1024")]) == 0
        assert "converted nvlabs checkpoint" in capsys.readouterr().out
        assert srv.requests[-1][2] == f"bytes={len(data) // 2}-"
        G = Generator.from_pretrained(tmp_path / "ffhq-1024")
        torch.testing.assert_close(G.mapping.w_avg, G_ema.mapping.w_avg)
        # a URL works the same; an existing output is refused before anything is downloaded
        n = len(srv.requests)
        assert main(["convert", srv("/pretrained/ffhq.pkl"), str(tmp_path / "ffhq-1024")]) == 2
        assert "already exists" in capsys.readouterr().err
        assert len(srv.requests) == n
        assert main(["convert", "nvlabs:nope", str(tmp_path / "x")]) == 2
        assert "unknown source 'nvlabs:nope'" in capsys.readouterr().err

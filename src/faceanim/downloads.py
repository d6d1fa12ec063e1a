"""Checkpoints by URL: named public sources, a download cache, resume after a dropped connection, size and
checksum checks.

    path = fetch("nvlabs:ffhq")                                   # a named source (see SOURCES)
    path = fetch("https://host/some.pkl#sha256=<64 hex digits>")  # any URL; a checksum pip-style, if known

Files land in ``$FACEANIM_HOME/downloads/<host>/<path>`` (default ``~/.cache/faceanim/downloads``). A download
grows ``<file>.part`` and becomes ``<file>`` only once complete and checked, so the cache never holds a partial or
wrong file under its final name; a dropped connection is resumed with an HTTP ``Range`` request (and so is an
interrupted command, from the ``.part`` it left). A file that ends short of its announced or published size, or
whose checksum differs from the published one, is deleted and refused. Only the standard library is used here.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from faceanim.errors import CheckpointError, FaceanimError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """A checkpoint at a stable public address. ``sha256`` and ``size`` only where the publisher states them."""

    name: str                     # "nvlabs:ffhq", or the URL itself
    url: str                      # where it is downloaded from
    description: str = ""         # what it holds, for `faceanim convert --help` and error messages
    sha256: str | None = None     # published checksum (hex), checked after download
    size: int | None = None       # published size in bytes, checked after download


_NVLABS = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
# stylegan2-ada-pytorch's pretrained pickles (its README, "Data repository"); NVlabs publishes no checksums or sizes.
SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("nvlabs:ffhq", f"{_NVLABS}/ffhq.pkl", "StyleGAN2-ADA, FFHQ faces, 1024 px"),
    Source("nvlabs:metfaces", f"{_NVLABS}/metfaces.pkl", "StyleGAN2-ADA, MetFaces (faces in art), 1024 px"),
    Source("nvlabs:afhqcat", f"{_NVLABS}/afhqcat.pkl", "StyleGAN2-ADA, AFHQ cats, 512 px"),
    Source("nvlabs:afhqdog", f"{_NVLABS}/afhqdog.pkl", "StyleGAN2-ADA, AFHQ dogs, 512 px"),
    Source("nvlabs:afhqwild", f"{_NVLABS}/afhqwild.pkl", "StyleGAN2-ADA, AFHQ wild animals, 512 px"),
    Source("nvlabs:brecahad", f"{_NVLABS}/brecahad.pkl", "StyleGAN2-ADA, BreCaHAD histology, 512 px"),
    Source("nvlabs:cifar10", f"{_NVLABS}/cifar10.pkl", "StyleGAN2-ADA, CIFAR-10 (class-conditional), 32 px"),
)}


def download_cache_dir() -> Path:
    """``$FACEANIM_HOME/downloads``, else ``~/.cache/faceanim/downloads``."""
    home = os.environ.get("FACEANIM_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "faceanim") / "downloads"


def is_remote(spec: object) -> bool:
    """Whether ``spec`` names a download (an http(s) URL or a ``scheme:name`` source) rather than a local path."""
    if not isinstance(spec, str):
        return False
    return spec.startswith(("http://", "https://")) or spec.split(":", 1)[0] in _schemes()


def _schemes() -> set[str]:
    return {name.split(":", 1)[0] for name in SOURCES}


def resolve_source(spec: str | Source) -> Source:
    """A :class:`Source` for a named source or a URL (``#sha256=HEX`` at the end of a URL: its checksum)."""
    if isinstance(spec, Source):
        return spec
    if spec in SOURCES:
        return SOURCES[spec]
    if spec.startswith(("http://", "https://")):
        url, _, fragment = spec.partition("#")
        sha = None
        if fragment:
            m = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", fragment)
            if m is None:
                raise FaceanimError(f"unsupported URL fragment #{fragment} (only #sha256=<64 hex digits>)")
            sha = m.group(1).lower()
        return Source(url, url, sha256=sha)
    scheme = spec.split(":", 1)[0]
    known = ", ".join(n for n in SOURCES if n.startswith(scheme + ":"))
    raise FaceanimError(f"unknown source {spec!r} (known: {known})")


def cached_path(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``url`` is kept in the cache: ``<cache>/<host>/<path>``."""
    parts = urlsplit(url)
    segments = [re.sub(r"[^\w.\-]+", "_", unquote(s)) for s in parts.path.split("/") if s not in ("", ".", "..")]
    if not segments:
        raise FaceanimError(f"URL names no file: {url}")
    host = re.sub(r"[^\w.\-]+", "_", parts.netloc)
    return Path(cache_dir if cache_dir is not None else download_cache_dir()).joinpath(host, *segments)


def fetch(spec: str | Source, cache_dir: str | os.PathLike | None = None, progress: bool | None = None,
          retries: int = 5, timeout: float = 60.0) -> Path:
    """The local path of a named source or URL, downloaded into the cache unless it is there already.

    A dropped connection is resumed (up to ``retries`` times in a row without progress) from where it stopped.
    ``progress``: a byte bar on stderr (None: on interactive terminals, unless ``TQDM_DISABLE`` is set).
    Raises :class:`CheckpointError` (one line) for HTTP errors, a file shorter than announced or published, or a
    checksum that differs from the published one; nothing is then left in the cache.
    """
    source = resolve_source(spec)
    dest = cached_path(source.url, cache_dir)
    if dest.is_file():
        if (source.size is None or dest.stat().st_size == source.size) and \
                (source.sha256 is None or _sha256(dest) == source.sha256.lower()):
            return dest
        dest.unlink()  # a cached file that does not match what is published now: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    total = _download(source, part, progress, retries, timeout)
    _verify(source, part, total)
    os.replace(part, dest)
    return dest


def _download(source: Source, part: Path, progress: bool | None, retries: int, timeout: float) -> int | None:
    """Grow ``part`` until it holds the whole file; returns the size the server announced (None if it did not)."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    total: int | None = None
    failures = 0
    if os.environ.get("TQDM_DISABLE", "") not in ("", "0"):
        progress = False
    bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=Path(part.stem).name,
               disable=None if progress is None else not progress, leave=False)
    try:
        while True:
            have = part.stat().st_size if part.exists() else 0
            if total is not None and have >= total:
                return total
            headers = {"User-Agent": "faceanim", "Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
            request = urllib.request.Request(source.url, headers=headers)
            before = have
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    if have and response.status == 206:
                        m = re.search(r"/(\d+)\s*$", response.headers.get("Content-Range", ""))
                        total = int(m.group(1)) if m else total
                        mode = "ab"
                    else:  # 200: the server sends the whole file (it ignored or does not support Range)
                        length = response.headers.get("Content-Length")
                        total = int(length) if length and length.isdigit() else None
                        have, mode = 0, "wb"
                    if total is not None and source.size is not None and total != source.size:
                        _discard(part)
                        raise CheckpointError(f"{source.name}: the server announces {total} bytes but "
                                              f"{source.size} are published; refused")
                    bar.reset(total=total)
                    bar.update(have)
                    with open(part, mode) as f:
                        while chunk := response.read(CHUNK):
                            f.write(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and have:  # our partial file is not a prefix of what the server has now
                    _discard(part)
                    continue
                raise CheckpointError(f"cannot download {source.url}: HTTP {exc.code} {exc.reason}") from None
            except urllib.error.URLError as exc:
                if before == 0 and not part.exists():
                    raise CheckpointError(f"cannot download {source.url}: {exc.reason}") from None
            except (http.client.HTTPException, ConnectionError, TimeoutError, OSError):
                pass  # dropped mid-transfer: resume from what arrived
            size = part.stat().st_size if part.exists() else 0
            if total is None and size > 0 and size > before:
                return None  # no announced size and the server closed: that was the whole file
            if total is not None and size >= total:
                return total
            failures = 0 if size > before else failures + 1
            if failures > retries:
                raise CheckpointError(f"download of {source.url} keeps stopping at {size} of "
                                      f"{total if total is not None else '?'} bytes; run the same command again to "
                                      "resume")
            time.sleep(min(0.5 * failures, 5.0))
    finally:
        bar.close()


def _verify(source: Source, part: Path, total: int | None) -> None:
    size = part.stat().st_size
    for expected, what in ((total, "announced by the server"), (source.size, "published")):
        if expected is not None and size != expected:
            _discard(part)
            raise CheckpointError(f"{source.name}: downloaded {size} bytes but {expected} were {what} "
                                  "(truncated or wrong file); refused")
    if source.sha256:
        digest = _sha256(part)
        if digest != source.sha256.lower():
            _discard(part)
            raise CheckpointError(f"{source.name}: SHA-256 {digest[:12]}… differs from the published "
                                  f"{source.sha256[:12]}…; refused")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _discard(part: Path) -> None:
    try:
        part.unlink()
    except FileNotFoundError:
        pass

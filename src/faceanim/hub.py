"""Bundles on the Hugging Face Hub, through ``huggingface_hub`` (its cache, ``HF_HOME``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``, ``HF_TOKEN`` and revisions):

    hf:ORG/NAME          the bundle in that model repository (its main branch)
    hf:ORG/NAME@REV      at a branch, tag or commit
    ORG/NAME             the same, where a library call (``AnimationPipeline.from_pretrained``) takes it — when no
                         folder of that name exists

A repository holds a bundle folder as is (``bundle.json`` at its root). ``push_bundle`` uploads one, with its
``MODEL_CARD.md`` also as the repository's ``README.md`` (the page the Hub shows) when the folder has none.
``huggingface_hub`` is imported only when a Hub id is used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from faceanim.errors import FaceanimError

PREFIX = "hf:"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*")
CARD_HEADER = "---\nlibrary_name: faceanim\ntags:\n- faceanim\n- face-animation\n- stylegan2\n---\n"


def is_hub_id(spec: object) -> bool:
    """Whether ``spec`` is an explicit Hub id (``hf:ORG/NAME[@REV]``)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def is_bare_repo_id(spec: object) -> bool:
    """``ORG/NAME`` that is not an existing path (how diffusers' ``from_pretrained`` tells a Hub id from a folder)."""
    return isinstance(spec, str) and _REPO_ID.fullmatch(spec) is not None and not Path(spec).exists()


def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """``hf:ORG/NAME@REV`` → ``("ORG/NAME", "REV")`` (REV None: the main branch)."""
    body = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    repo_id, _, revision = body.partition("@")
    if _REPO_ID.fullmatch(repo_id) is None:
        raise FaceanimError(f"not a Hub id: {spec!r} (expected hf:ORG/NAME or hf:ORG/NAME@REVISION)")
    return repo_id, (revision or None)


def hub_spec(repo_id: str, revision: str | None = None) -> str:
    return f"{PREFIX}{repo_id}" + (f"@{revision}" if revision else "")


def resolve_pretrained(spec, revision: str | None = None):
    """What ``from_pretrained`` was given → what :meth:`Bundle.open` takes: a Hub id (``hf:ORG/NAME[@REV]``, or a
    bare ``ORG/NAME`` that is neither a folder nor an installed bundle's name) becomes the downloaded folder."""
    if isinstance(spec, str) and not is_hub_id(spec) and is_bare_repo_id(spec):
        from faceanim.bundles import available_bundles

        if spec not in available_bundles():
            spec = PREFIX + spec
    if is_hub_id(spec):
        return download_bundle(spec, revision)
    if revision is not None:
        raise FaceanimError(f"revision={revision!r} applies to Hub ids only, not to {spec!r}")
    return spec


def download_bundle(spec: str, revision: str | None = None) -> Path:
    """The local folder of the bundle ``hf:ORG/NAME[@REV]``: from the Hugging Face cache, downloaded if missing
    (unless ``HF_HUB_OFFLINE=1``). ``revision`` overrides an ``@REV`` in ``spec``. One-line FaceanimError when it
    cannot be had."""
    repo_id, rev = parse_hub_id(spec)
    rev = revision or rev
    shown = hub_spec(repo_id, rev)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)
    except ImportError as exc:
        raise FaceanimError(f"Hub ids need huggingface_hub (pip install huggingface_hub): {exc}") from None
    try:
        folder = Path(snapshot_download(repo_id, revision=rev, repo_type="model"))
    except RevisionNotFoundError:
        raise FaceanimError(f"bundle {shown}: no revision {rev!r} in that repository") from None
    except GatedRepoError:
        raise FaceanimError(f"bundle {shown} is gated: accept its terms on the Hub and log in (hf auth login)") \
            from None
    except RepositoryNotFoundError:
        raise FaceanimError(f"no bundle {shown} on the Hub (or it is private: log in with hf auth login or set "
                            "HF_TOKEN)") from None
    except LocalEntryNotFoundError:
        where = _hub_cache()
        why = "HF_HUB_OFFLINE is set" if _offline() else "the Hub cannot be reached"
        raise FaceanimError(f"bundle {shown} is not in the Hugging Face cache ({where}) and {why}") from None
    except HfHubHTTPError as exc:
        raise FaceanimError(f"bundle {shown}: the Hub answered {_first_line(exc)}") from None
    except (OSError, ValueError) as exc:
        raise FaceanimError(f"bundle {shown}: {_first_line(exc)}") from None
    if not (folder / "bundle.json").is_file():
        raise FaceanimError(f"{shown} is not a faceanim bundle (no bundle.json at the repository's root)")
    return folder


def push_bundle(folder: str | os.PathLike, repo_id: str, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, token: str | None = None) -> str:
    """Upload a bundle folder to the model repository ``repo_id`` (created if needed) in one commit; returns the
    commit's URL. Loadable afterwards as ``hf:REPO_ID`` (``faceanim animate -b hf:REPO_ID``)."""
    from faceanim.bundles import read_bundle_info

    folder = Path(folder)
    if not folder.is_dir():
        raise FaceanimError(f"no such bundle folder: {folder}")
    info = read_bundle_info(folder)  # refuses anything that is not a bundle
    repo_id, _ = parse_hub_id(repo_id)
    try:
        from huggingface_hub import CommitOperationAdd, HfApi
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError as exc:
        raise FaceanimError(f"pushing needs huggingface_hub (pip install huggingface_hub): {exc}") from None
    if _offline():
        raise FaceanimError("cannot push while HF_HUB_OFFLINE is set")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(s.startswith(".") for s in
                                                                            p.relative_to(folder).parts))
    ops = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files]
    if not (folder / "README.md").is_file():
        card = (folder / "MODEL_CARD.md").read_text() if (folder / "MODEL_CARD.md").is_file() else \
            f"# {info.name}\n\n{info.description}\n"
        ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=(CARD_HEADER + card).encode()))
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.create_commit(repo_id, ops, commit_message=commit_message or f"faceanim bundle {info.name}",
                                   revision=revision, repo_type="model")
    except HfHubHTTPError as exc:
        raise FaceanimError(f"push to {repo_id} failed: the Hub answered {_first_line(exc)}") from None
    except OSError as exc:
        raise FaceanimError(f"push to {repo_id} failed: {_first_line(exc)}") from None
    return str(commit.commit_url)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]

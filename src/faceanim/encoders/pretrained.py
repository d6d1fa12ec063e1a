"""CLIP weights named as open_clip names them: an architecture with a pretrained tag (``RN50`` + ``openai``,
``ViT-B-32`` + ``laion2b_s34b_b79k``, …) or an ``hf-hub:ORG/NAME`` id, loaded through open_clip's own pretrained
loading and cache (``open_clip.create_model(name, pretrained=tag, cache_dir=…)``: the Hugging Face cache for tags
published on the Hub, ``~/.cache/clip`` for URLs), so they download where there is a connection.

Offline (``HF_HUB_OFFLINE=1`` or no network), what is already on disk is used: open_clip's caches, and OpenAI's
archive of a tag (``RN50.pt``) where OpenAI's ``clip`` package keeps it (``~/.cache/clip``) or in faceanim's CLIP
folder (:func:`faceanim.encoders.clip.default_cache_dir`) — checked against the SHA-256 in its published URL and
read by faceanim's own reader. When nothing is found, one line says which file to put where.

open_clip is imported here only (training and ``faceanim recipe``); running a bundle never comes here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

from faceanim.encoders.clip import CLIPConfig, CLIPEncoder, default_cache_dir
from faceanim.errors import CheckpointError, FaceanimError
from faceanim.utils.init import no_weight_init

HF_HUB = "hf-hub:"


def is_open_clip_name(spec: object, pretrained: str | None) -> bool:
    """Whether ``spec`` asks for open_clip's pretrained loading: an ``hf-hub:`` id, or a name with a tag that is not
    an existing file or folder."""
    if not isinstance(spec, str):
        return False
    return spec.startswith(HF_HUB) or (bool(pretrained) and not Path(spec).exists())


def openai_clip_dir() -> Path:
    """Where OpenAI's ``clip`` package and open_clip keep downloaded archives."""
    return Path(os.path.expanduser("~/.cache/clip"))


def load_open_clip(name: str, pretrained: str | None = None, cache_dir: str | os.PathLike | None = None
                   ) -> CLIPEncoder:
    """A :class:`CLIPEncoder` holding open_clip's pretrained ``name`` / ``pretrained`` tag (or ``hf-hub:…``).

    ``cache_dir``: open_clip's download folder (default: its own — the Hugging Face cache, ``~/.cache/clip``).
    Raises a one-line :class:`CheckpointError` naming the file to bring when the weights cannot be had."""
    open_clip = _open_clip()
    if name.startswith(HF_HUB):
        model = _create(open_clip, name, None, cache_dir, lambda exc: _missing_hub(name, exc))
        return _wrap(model, _hub_config(open_clip, name[len(HF_HUB):], cache_dir), name)
    arch = name.replace("/", "-")
    if open_clip.get_model_config(arch) is None:
        raise CheckpointError(f"open_clip knows no CLIP architecture {name!r} (open_clip.list_models())")
    if not pretrained:
        raise FaceanimError(f"CLIP {name}: give a pretrained tag (pretrained: openai, …) or a file")
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise CheckpointError(f"open_clip has no pretrained tag {pretrained!r} for {arch} (its tags: {tags})")
    try:
        model = _create(open_clip, arch, pretrained, cache_dir, None, bool(tag_cfg.get("quick_gelu", False)))
    except _NotFound as exc:
        found = _find_openai_archive(tag_cfg, cache_dir)
        if found is None:
            raise CheckpointError(_where_to_put(arch, pretrained, tag_cfg, exc.reason)) from None
        encoder = CLIPEncoder.from_pretrained(found)
        encoder.config.name = arch
        return encoder
    config = CLIPConfig.from_open_clip(arch, quick_gelu=bool(tag_cfg.get("quick_gelu", False)))
    for key in ("mean", "std"):
        if tag_cfg.get(key):
            setattr(config, key, tuple(float(x) for x in tag_cfg[key]))
    return _wrap(model, config, f"{arch} ({pretrained})")


class _NotFound(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _create(open_clip, name: str, pretrained: str | None, cache_dir, on_missing, quick_gelu: bool = False):
    """open_clip.create_model, quiet; any failure to obtain the weights → _NotFound (or ``on_missing``'s error).
    ``quick_gelu``: the activation the tag was trained with (OpenAI's: QuickGELU; open_clip only warns otherwise)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # open_clip logs each failed download attempt at ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return open_clip.create_model(name, pretrained=pretrained, force_quick_gelu=quick_gelu,
                                          cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as exc:  # noqa: BLE001 - open_clip wraps download errors in RuntimeError, hub errors vary
        reason = _first_line(exc)
        if on_missing is not None:
            raise on_missing(reason) from None
        raise _NotFound(reason) from None
    finally:
        logger.setLevel(level)


def _hub_config(open_clip, model_id: str, cache_dir) -> CLIPConfig:
    """The CLIPConfig of an open_clip Hub repository, from its open_clip_config.json (in the cache by now)."""
    from open_clip.pretrained import download_pretrained_from_hf

    path = download_pretrained_from_hf(model_id, filename="open_clip_config.json",
                                       cache_dir=None if cache_dir is None else str(cache_dir))
    data = json.loads(Path(path).read_text())
    cfg, pre = data["model_cfg"], data.get("preprocess_cfg", {})
    extra = {k: tuple(pre[k]) for k in ("mean", "std") if pre.get(k)}
    return CLIPConfig(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                      name=model_id.split("/")[-1], quick_gelu=bool(cfg.get("quick_gelu", False)), **extra)


def _wrap(model, config: CLIPConfig, shown: str) -> CLIPEncoder:
    """open_clip's model → a CLIPEncoder with the same weights (its own towers kept: open_clip built them)."""
    with no_weight_init():
        encoder = CLIPEncoder(config, impl="open_clip")
    try:
        encoder.model.load_state_dict(model.state_dict())
    except RuntimeError as exc:
        raise CheckpointError(f"CLIP {shown}: open_clip's model does not fit a plain CLIP "
                              f"({_first_line(exc)})") from None
    return encoder.float().eval()


def _find_openai_archive(tag_cfg: dict[str, Any], cache_dir) -> Path | None:
    """OpenAI's archive of a tag already on disk, checked against the SHA-256 its URL carries."""
    url = tag_cfg.get("url", "")
    if not url:
        return None
    filename = url.rstrip("/").split("/")[-1]
    m = re.search(r"/([0-9a-f]{64})/", url)
    folders = [Path(cache_dir)] if cache_dir is not None else []
    folders += [openai_clip_dir(), default_cache_dir()]
    for folder in folders:
        path = folder / filename
        if path.is_file() and (m is None or _sha256(path) == m.group(1)):
            return path
    return None


def _where_to_put(arch: str, tag: str, tag_cfg: dict[str, Any], reason: str) -> str:
    url, hub = tag_cfg.get("url", ""), tag_cfg.get("hf_hub", "")
    if url:
        filename = url.rstrip("/").split("/")[-1]
        where = f"put {filename} from {url} in {openai_clip_dir()}/"
    else:
        where = "run once with a connection"
    if hub:
        where += f" (or the Hugging Face repository {hub.rstrip('/')} in the HF cache)"
    return f"CLIP {arch} ({tag}) is not on this machine and cannot be downloaded ({reason[:120]}): {where}"


def _missing_hub(name: str, reason: str) -> CheckpointError:
    return CheckpointError(f"CLIP {name} is not in the Hugging Face cache and cannot be downloaded "
                           f"({reason[:120]}): run once with a connection, or copy the repository's "
                           "open_clip_config.json and weights into the HF cache")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _open_clip():
    try:
        import open_clip
    except ImportError as exc:
        raise FaceanimError(f"CLIP by open_clip name needs open_clip (pip install open_clip_torch): {exc}") from None
    return open_clip


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

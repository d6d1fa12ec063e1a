"""Prompt lists: one prompt per line, ``#`` comments, templated later by the model's template."""

from __future__ import annotations

import os
from pathlib import Path

from faceanim.errors import FaceanimError


def load_prompts(path: str | os.PathLike) -> list[str]:
    """Read prompts (blank lines and ``#`` comments skipped, duplicates removed, order kept)."""
    path = Path(path)
    if not path.is_file():
        raise FaceanimError(f"prompt file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise FaceanimError(f"prompt file is not UTF-8 text: {path}") from None
    prompts = [ln.split("#", 1)[0].strip() for ln in lines]
    prompts = list(dict.fromkeys(p for p in prompts if p))
    if not prompts:
        raise FaceanimError(f"prompt file has no prompts: {path}")
    return prompts

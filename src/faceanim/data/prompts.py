"""Prompts: files of prompts, and the templates that make a bare motion prompt a sentence for CLIP — the one
place for both.

The paper (IV-F-3) finds that wrapping the motion words in a domain sentence, e.g. "The person is {}.", matters for
quality. Every encoder, trainer and demo goes through :func:`apply_template` so that the same prompt always becomes
the same sentence. Prompt files hold one prompt per line, ``#`` comments; they are templated later by the model's
template.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from faceanim.errors import FaceanimError

# Domain → template; "{}" marks where the motion prompt goes.
TEMPLATES: dict[str, str] = {
    "person": "The person is {}.",            # the paper's human-face template (the default everywhere)
    "cartoon": "The cartoon person is {}.",
    "cartoon_girl": "The cartoon girl is {}.",
    "dog": "The dog is {}.",
}

DEFAULT_TEMPLATE = TEMPLATES["person"]

_FILLER_WORDS = {"the", "a", "an", "is", "are"}
_SENTENCE_END = (".", "!", "?")


def resolve_template(template: str) -> str:
    """Return the format string of ``template``: a key of :data:`TEMPLATES` or a string containing one ``{}``."""
    if template in TEMPLATES:
        return TEMPLATES[template]
    if template.count("{}") == 1:
        return template
    known = ", ".join(TEMPLATES)
    raise FaceanimError(f"unknown prompt template {template!r}: use one of {known} or a string with one '{{}}'")


def template_subject(template: str) -> str:
    """The subject named by a template, lower-cased: "The cartoon girl is {}." → "cartoon girl"."""
    prefix = resolve_template(template).split("{}")[0]
    words = [w for w in re.findall(r"[\w'-]+", prefix.lower()) if w not in _FILLER_WORDS]
    return " ".join(words)


def is_sentence(prompt: str, template: str | None = None) -> bool:
    """Whether ``prompt`` already reads as a full sentence (see :func:`apply_template` for the rule)."""
    text = prompt.strip()
    if text.endswith(_SENTENCE_END):
        return True
    words = text.split()
    if text[:1].isupper() and len(words) >= 3:
        return True
    if template is not None:
        subject = template_subject(template)
        if subject and re.search(rf"\b{re.escape(subject)}\b", text.lower()):
            return True
    return False


def apply_template(prompt: str, template: str | None) -> str:
    """Wrap a bare motion prompt in ``template``; keep a full sentence as the user wrote it.

    ``template`` is a key of :data:`TEMPLATES` ("person", "cartoon", "cartoon_girl", "dog"),
    a format string with one ``{}``, or ``None`` (no templating). The prompt is stripped of
    surrounding whitespace, then kept unchanged if ANY of these holds, else templated:

    1. it ends with ".", "!" or "?"                         ("smiling.", "Is she smiling?");
    2. it starts with a capital letter and has ≥ 3 words    ("She opens her mouth");
    3. it contains the template's subject as whole words,
       case-insensitively ("person", "cartoon girl", "dog") ("a person smiling").

    Examples with ``template="person"``: "smiling" → "The person is smiling.";
    "closing eyes" → "The person is closing eyes."; "Smiling widely" → "The person is Smiling widely."
    (two words only); "The man smiles." → unchanged.

    Raises:
        FaceanimError: the prompt is empty or only whitespace, or the template is unknown.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise FaceanimError(f"empty prompt {prompt!r}: describe the motion, e.g. 'smiling'")
    text = prompt.strip()
    if template is None or is_sentence(text, template):
        return text
    return resolve_template(template).format(text)


def wordings(entry: str) -> list[str]:
    """The wordings of one training prompt: ``"smiling | grinning | happy"`` → ``["smiling", "grinning", "happy"]``.

    A training prompt may name one motion in several phrasings separated by ``|``; the trainer draws one per use
    (samples and metrics use the first). An entry without ``|`` is its own single wording."""
    return [w.strip() for w in entry.split("|") if w.strip()] or [entry.strip()]


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

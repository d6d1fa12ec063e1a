"""Captions for ToonFace parameters: templates × synonyms, with a held-out set of phrasings.

Every expression (and the two attributes) has phrasings in three grammatical slots: ``adj`` (before
a noun: "a *smiling* girl"), ``pred`` (after "is": "the person is *closing their eyes*") and ``with``
(after "with": "a face with *rosy cheeks*"). Each slot has a ``train`` list and a disjoint ``heldout``
list; templates are split the same way. ``caption(..., split="train")`` only ever uses train
phrasings, so zero-shot evaluation on ``split="heldout"`` measures generalisation to new wording.

Keys: the unit expressions by factor name, the signed ones by direction (``gaze_left``,
``gaze_right``, ``tilt_left``, ``tilt_right``; left/right are the *image's*), the attributes
``grey_hair`` and ``age``, and ``neutral``.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from typing import Literal, Mapping

import torch

from faceanim.toon.factors import ToonParams

Split = Literal["train", "heldout"]


@dataclass(frozen=True)
class Phrasing:
    adj: tuple[str, ...] = ()    # pre-noun adjectives ("smiling")
    pred: tuple[str, ...] = ()   # predicates after "is" ("closing their eyes")
    with_: tuple[str, ...] = ()  # noun phrases after "with" ("closed eyes")

    def all(self) -> tuple[str, ...]:
        return self.adj + self.pred + self.with_


def _p(adj: str = "", pred: str = "", with_: str = "") -> Phrasing:
    """Phrasing from '|'-separated lists (keeps the vocabulary table compact)."""
    def split(s: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in s.split("|") if x.strip())
    return Phrasing(split(adj), split(pred), split(with_))


# key → {"train": Phrasing, "heldout": Phrasing}; train and held-out phrases never share a phrase.
VOCABULARY: Mapping[str, Mapping[Split, Phrasing]] = {
    "neutral": {
        "train": _p("calm|expressionless", "calm|expressionless", "a neutral expression|a blank expression"),
        "heldout": _p("impassive", "poker-faced|keeping a straight face", "a straight face"),
    },
    "smile": {
        "train": _p("smiling|grinning|happy", "smiling|grinning|happy", "a smile|a grin"),
        "heldout": _p("beaming|cheerful", "beaming|smiling from ear to ear", "a joyful expression"),
    },
    "laugh": {
        "train": _p("laughing", "laughing|laughing out loud", "a big laugh|an open-mouthed laugh"),
        "heldout": _p("giggling", "cracking up|bursting with laughter", "a hearty laugh"),
    },
    "sad": {
        "train": _p("sad|frowning|unhappy", "sad|frowning|unhappy", "a frown|a sad expression"),
        "heldout": _p("gloomy|sorrowful", "downcast|looking miserable", "a glum look"),
    },
    "angry": {
        "train": _p("angry|furious|mad", "angry|furious|mad", "an angry scowl|angry eyebrows"),
        "heldout": _p("irate|enraged", "fuming|seeing red", "a fierce glare"),
    },
    "surprise": {
        "train": _p("surprised|shocked|stunned", "surprised|shocked|stunned", "a surprised look|wide eyes and an open mouth"),
        "heldout": _p("astonished|amazed", "astonished|taken aback", "a look of amazement"),
    },
    "eyes_closed": {
        "train": _p("", "closing their eyes|closing eyes|keeping their eyes shut", "closed eyes|eyes shut|eyes closed"),
        "heldout": _p("", "shutting their eyes", "lowered eyelids"),
    },
    "wink": {
        "train": _p("winking", "winking|winking one eye", "a wink|one eye closed"),
        "heldout": _p("", "giving a cheeky wink|blinking one eye", "a playful wink"),
    },
    "pout": {
        "train": _p("pouting", "pouting|pouting their lips", "pouting lips|a pout"),
        "heldout": _p("", "puckering up|making a kissy face", "puckered lips"),
    },
    "cry": {
        "train": _p("crying|weeping", "crying|weeping|in tears", "tears|tears on the cheeks"),
        "heldout": _p("sobbing|tearful", "sobbing|bawling", "streaming tears"),
    },
    "blush": {
        "train": _p("blushing", "blushing|shy and blushing", "rosy cheeks|a blush|pink cheeks"),
        "heldout": _p("flushed", "turning pink|flushing", "flushed cheeks"),
    },
    "gaze_left": {
        "train": _p("", "looking left|looking to the left|glancing left", "eyes looking left|eyes to the left"),
        "heldout": _p("", "peeking to the left|eyeing something on the left", "a sideways glance to the left"),
    },
    "gaze_right": {
        "train": _p("", "looking right|looking to the right|glancing right", "eyes looking right|eyes to the right"),
        "heldout": _p("", "peeking to the right|eyeing something on the right", "a sideways glance to the right"),
    },
    "tilt_left": {
        "train": _p("", "tilting head to the left|tilting their head left", "a head tilted to the left|head tilted left"),
        "heldout": _p("", "cocking their head to the left|leaning their head leftwards", "a cocked head leaning leftwards"),
    },
    "tilt_right": {
        "train": _p("", "tilting head to the right|tilting their head right", "a head tilted to the right|head tilted right"),
        "heldout": _p("", "cocking their head to the right|leaning their head rightwards", "a cocked head leaning rightwards"),
    },
    "grey_hair": {
        "train": _p("grey-haired", "going grey|hair turning grey", "grey hair|white hair|gray hair"),
        "heldout": _p("silver-haired", "turning silver", "silvery hair|snow-white hair"),
    },
    "age": {
        "train": _p("old|aged|elderly", "old|aged|elderly|getting old", "wrinkles|a wrinkled face"),
        "heldout": _p("wrinkly|senior", "advanced in years|growing older", "crow's feet and laugh lines"),
    },
}

# Canonical prompt per key (train vocabulary) for zero-shot evaluation, and a held-out counterpart. Both are
# predicates, so they read after "is" ("The cartoon person is {}.") as well as alone.
EXPRESSION_PROMPTS: Mapping[str, str] = {
    "smile": "smiling", "laugh": "laughing", "sad": "sad", "angry": "angry", "surprise": "surprised",
    "eyes_closed": "closing eyes", "wink": "winking", "pout": "pouting", "cry": "crying", "blush": "blushing",
    "gaze_left": "looking left", "gaze_right": "looking right",
    "tilt_left": "tilting head to the left", "tilt_right": "tilting head to the right",
    "grey_hair": "going grey", "age": "old",
}
HELDOUT_PROMPTS: Mapping[str, str] = {
    "smile": "beaming", "laugh": "cracking up", "sad": "gloomy", "angry": "fuming", "surprise": "astonished",
    "eyes_closed": "shutting their eyes", "wink": "giving a cheeky wink", "pout": "puckering up",
    "cry": "sobbing", "blush": "turning pink", "gaze_left": "peeking to the left",
    "gaze_right": "peeking to the right", "tilt_left": "cocking their head to the left",
    "tilt_right": "cocking their head to the right", "grey_hair": "turning silver", "age": "advanced in years",
}
# What each key asks of the factors: (factor name, target value). Used to score animations.
PROMPT_TARGETS: Mapping[str, tuple[str, float]] = {
    **{k: (k, 1.0) for k in ("smile", "laugh", "sad", "angry", "surprise", "eyes_closed", "wink", "pout",
                             "cry", "blush", "grey_hair", "age")},
    "gaze_left": ("gaze", -1.0), "gaze_right": ("gaze", 1.0),
    "tilt_left": ("tilt", -1.0), "tilt_right": ("tilt", 1.0),
}

# {noun} {desc} {adj} {pred} {with}; "a" before a vowel becomes "an" afterwards.
TEMPLATES: Mapping[Split, tuple[str, ...]] = {
    "train": (
        "The cartoon {noun} is {pred}",
        "a {adj} {noun}{desc}",
        "a cartoon face with {with}",
        "a drawing of a {noun}{desc} who is {pred}",
        "a {adj} cartoon {noun}",
        "a cartoon {noun}{desc} with {with}",
        "a {noun}{desc} {pred}",
        "cartoon of a {adj} {noun}{desc}",
    ),
    "heldout": (
        "an illustration showing a {noun}{desc}, {pred}",
        "here the {noun}{desc} looks {adj}",
        "portrait of someone with {with}",
        "{pred}: a {noun} drawn in toon style",
    ),
}

NOUNS = {"female": ("girl", "woman", "lady"), "male": ("boy", "man", "guy"), "any": ("person", "character")}
MENTION = 0.4        # an expression at least this strong is named
GRADABLE = {"smile", "sad", "angry", "surprise", "blush"}
SLIGHT = 0.65        # gradable expressions weaker than this are "slightly …"


def phrase_key(phrase: str) -> str | None:
    """The prompt key of a canonical or held-out phrase ("smiling" → "smile", "beaming" → "smile"), else None."""
    for table in (EXPRESSION_PROMPTS, HELDOUT_PROMPTS):
        for key, text in table.items():
            if text == phrase:
                return key
    return None


def hair_color_name(hue: float, lightness: float, saturation: float, grey: float = 0.0) -> str:
    """A colour word for hair given HSL and the effective greying in [0, 1]."""
    if grey >= 0.5:
        return "grey"
    if lightness < 0.17:
        return "black"
    if saturation < 0.2:
        return "grey" if lightness > 0.35 else "black"
    h = hue % 1.0
    if 0.15 <= h < 0.25:
        return "blonde"
    if 0.25 <= h < 0.5:
        return "green"
    if 0.5 <= h < 0.7:
        return "blue"
    if 0.7 <= h < 0.85:
        return "purple"
    if 0.85 <= h < 0.97:
        return "pink"
    if lightness > 0.55 and h >= 0.09:
        return "blonde"
    if saturation > 0.65 and lightness > 0.4:
        return "red"
    if saturation > 0.55 and h < 0.045:
        return "auburn"
    return "dark brown" if lightness < 0.28 else "brown"


def active_keys(p: ToonParams, row: int) -> list[tuple[str, float]]:
    """Vocabulary keys shown by face ``row``, strongest first: ``[(key, intensity), …]`` (``neutral`` if none)."""
    out: list[tuple[str, float]] = []
    for k in ("smile", "laugh", "sad", "angry", "surprise", "eyes_closed", "wink", "pout", "cry", "blush",
              "grey_hair", "age"):
        val = float(p[k][row])
        if val >= MENTION:
            out.append((k, val))
    for k in ("gaze", "tilt"):
        val = float(p[k][row])
        if abs(val) >= MENTION:
            out.append((f"{k}_{'left' if val < 0 else 'right'}", abs(val)))
    out.sort(key=lambda kv: -kv[1])
    return out or [("neutral", 1.0)]


def _identity_desc(p: ToonParams, row: int, rng: random.Random, grey_named: bool) -> str:
    style = p.hair_style_names()[row]
    grey = 1 - (1 - float(p["grey_hair"][row])) * (1 - 0.85 * float(p["age"][row]))
    color = "" if grey_named else hair_color_name(float(p["hair_hue"][row]), float(p["hair_lightness"][row]),
                                                  float(p["hair_saturation"][row]), grey)
    c = f"{color} " if color else ""
    hair = {"bald": "a bald head", "short": f"short {c}hair", "long": f"long {c}hair", "bun": f"{c}hair in a bun",
            "bangs": f"{c}bangs", "curly": f"curly {c}hair"}[style]
    if style != "bald" and color and rng.random() < 0.4:
        hair = f"{color} hair"
    items = [hair]
    if float(p["glasses"][row]) >= 0.5:
        items.append("glasses")
    if float(p["freckles"][row]) >= 0.5:
        items.append("freckles")
    rng.shuffle(items)
    items = items[: rng.choice((0, 1, 1, 2, 2))]
    return f" with {' and '.join(items)}" if items else ""


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _phrase(key: str, level: float, slot: str, split: Split, rng: random.Random) -> str:
    text = rng.choice(getattr(VOCABULARY[key][split], slot))
    if slot != "with_" and key in GRADABLE and level < SLIGHT and " " not in text:
        text = f"slightly {text}"
    return text


def caption_row(p: ToonParams, row: int, rng: random.Random, split: Split = "train") -> str:
    """One caption for face ``row`` of ``p``."""
    keys = active_keys(p, row)[:3]
    names = {k for k, _ in keys}
    has_adj = all(VOCABULARY[k][split].adj for k in names)
    templates = [t for t in TEMPLATES[split] if has_adj or "{adj}" not in t]
    template = rng.choice(templates)
    fields = {}
    for slot, field in (("adj", "adj"), ("pred", "pred"), ("with_", "with")):
        if "{" + field + "}" in template:
            fields[field] = _join([_phrase(k, lvl, slot, split, rng) for k, lvl in keys])
    gender = "female" if float(p["lashes"][row]) >= 0.5 else "male"
    noun = rng.choice(NOUNS[gender] + NOUNS["any"])
    desc = _identity_desc(p, row, rng, grey_named="grey_hair" in names)
    text = template.format(noun=noun, desc=desc, **fields)
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)


def caption(params: ToonParams | torch.Tensor, rng: random.Random | int | None = None, split: Split = "train") -> list[str]:
    """One caption per face: ``[B, P]`` → ``B`` strings; deterministic for an integer seed or a seeded ``rng``."""
    p = params if isinstance(params, ToonParams) else ToonParams(params)
    if not isinstance(rng, random.Random):
        rng = random.Random(0 if rng is None else rng)
    return [caption_row(p, i, rng, split) for i in range(len(p))]


def prompt(key: str, rng: random.Random | int | None = None, split: Split = "train") -> str:
    """A random phrasing of one key as a motion prompt (a predicate, e.g. "grinning"), for animation training."""
    if not isinstance(rng, random.Random):
        rng = random.Random(0 if rng is None else rng)
    ph = VOCABULARY[key][split]
    return rng.choice(ph.pred or ph.with_)


def heldout_phrases() -> set[str]:
    """Every held-out synonym and the literal text of every held-out template (for leakage checks)."""
    out = {s for v in VOCABULARY.values() for s in v["heldout"].all()}
    for t in TEMPLATES["heldout"]:
        out.update(frag.strip(" ,:") for frag in re.split(r"\{\w+\}", t) if len(frag.strip(" ,:")) >= 4)
    return out


def _words(texts) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}


# Words about faces and feelings that no caption uses but that text noise must not teach the CLIP to ignore.
_NOT_FILLER = frozenset((
    "happy happiness joy joyful glad cheerful cheery grin grins grinned grinning beam beams smirk smirks "
    "giggle giggles chuckle frown scowl scowls upset unhappy sadness sorrow rage angst anger annoyed "
    "grumpy shock shocks wow kiss kisses kissing lip lips mouth mouths teeth tooth tongue eye eyeball "
    "eyebrow brow brows lash lashes blink blinks blinking cheek cheeks face faces facial nose chin "
    "forehead ear ears hair hairs haired bald blonde young youth aging ageing elder older oldest "
    "wrinkle glance glances gaze gazes stare stares staring peek lean tilt tilts nod nods smile smiles "
    "laugh laughs lol lmao haha hahaha cry cries tear tears sob weep blush pink rosy emotion emotional "
    "expression expressions mood moody feeling feelings feel feels smiley emoji").split())


@functools.cache
def filler_words() -> list[str]:
    """Whole words of the CLIP tokenizer's vocabulary that no caption uses, in any split: neither a phrasing, a
    template, a noun nor an identity description (read off 2,000 training captions). Held-out words are kept out
    with their stems too ("illustrations" as well as "illustration"), so that text noise never trains on any part
    of the held-out wording; so are the stems of every expression word and a list of face and feeling words, so
    that the noise never teaches the CLIP to ignore a word that names an expression. Sorted, built once (cached)."""
    from open_clip.tokenizer import SimpleTokenizer

    heldout = _words(heldout_phrases()) | _words(HELDOUT_PROMPTS.values())
    expression = _words(s for v in VOCABULARY.values() for sp in v.values() for s in sp.all())
    used = (heldout | expression | _NOT_FILLER | _words(EXPRESSION_PROMPTS.values())
            | _words(t for ts in TEMPLATES.values() for t in ts) | _words(n for ns in NOUNS.values() for n in ns)
            | _words(caption(ToonParams.sample(2000, rng=torch.Generator().manual_seed(0),
                                               expressions=True, attributes=True), rng=0)))
    stems = {w[:5] for w in heldout if len(w) >= 5} | {w[:4] for w in expression | _NOT_FILLER if len(w) >= 4}
    words = set()
    for token in SimpleTokenizer().encoder:
        if token.endswith("</w>"):
            w = token[:-4]
            if (3 <= len(w) <= 12 and w.isascii() and w.isalpha() and w not in used
                    and w[:5] not in stems and w[:4] not in stems):
                words.add(w)
    return sorted(words)


def add_filler(text: str, rng: random.Random, most: int = 4) -> str:
    """``text`` with 1 … ``most`` random :func:`filler_words` inserted between its words (text noise: the CLIP
    learns to read the expression phrase in sentence frames it has never seen)."""
    words, pool = text.split(" "), filler_words()
    for _ in range(rng.randint(1, most)):
        words.insert(rng.randint(0, len(words)), rng.choice(pool))
    return " ".join(words)


def shift_words(text: str, rng: random.Random) -> str:
    """``text`` with its words rotated cyclically so that a random word other than the first starts it ("The
    cartoon girl is pouting" → "pouting The cartoon girl is"): the CLIP learns to read an expression phrase
    wherever it stands, including first, where no training template puts it."""
    words = text.split(" ")
    if len(words) < 2:
        return text
    k = rng.randint(1, len(words) - 1)
    return " ".join(words[k:] + words[:k])

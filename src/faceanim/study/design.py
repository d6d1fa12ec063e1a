"""What a study shows to whom: the pairs of an evaluate run and their balanced assignment to raters.

A *pair* is two videos of the same face and prompt made by the two methods. Each rater gets ``per_rater`` distinct
pairs; over all raters every pair is shown ⌊R·m/P⌋ or ⌈R·m/P⌉ times (R raters, m pairs each, P pairs), so with the
paper's 24 raters × 100 pairs and 600 videos each pair is judged by 4 raters. Within a rater, the first method is on
the left for half of the pairs (the odd one out at random), in random order. *Attention checks* are added at
``attention_rate`` per pair: a pair whose one side was made for the shown prompt and the other for a different
prompt (same face, same method); a rater passes it by choosing the side made for the shown prompt in the
text-alignment question.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from faceanim.errors import FaceanimError

# key → (the paper's column name, the question a rater sees)
QUESTIONS: dict[str, tuple[str, str]] = {
    "frame": ("HP-frame", "Which video has the better frames (sharper, more natural images)?"),
    "video": ("HP-video", "Which video is more temporally consistent (smooth motion, the same face throughout)?"),
    "alignment": ("HP-alignment", "Which video matches the text better?"),
}
SIDES = ("left", "right")
TIE = "none"


@dataclass
class StudyConfig:
    methods: tuple[str, str] = ("ours", "styleclip")  # the two methods compared (A, B)
    raters: int = 24                                  # R raters, one token each
    per_rater: int = 100                              # m pairs each rater judges (attention checks come on top)
    attention_rate: float = 0.05                      # attention checks per judged pair (0: none)
    min_check_pass: float = 0.75                      # raters passing fewer of their answered checks are excluded
    allow_tie: bool = False                           # offer "no preference" (the paper had none)
    seed: int = 0                                     # seeds the assignment, the order and the sides

    def validate(self) -> None:
        if len(self.methods) != 2 or not all(m.strip() for m in self.methods):
            raise FaceanimError(f"--methods needs exactly two methods, got {','.join(self.methods) or 'none'}")
        if self.methods[0] == self.methods[1]:
            raise FaceanimError("--methods: the two methods must differ")
        if self.raters < 1:
            raise FaceanimError(f"--raters must be ≥ 1, got {self.raters}")
        if self.raters > 10_000:
            raise FaceanimError(f"--raters must be ≤ 10000, got {self.raters}")
        if self.per_rater < 1:
            raise FaceanimError(f"--per-rater must be ≥ 1, got {self.per_rater}")
        if not 0 <= self.attention_rate <= 1:
            raise FaceanimError(f"--attention-rate must be between 0 and 1, got {self.attention_rate}")
        if not 0 <= self.min_check_pass <= 1:
            raise FaceanimError(f"--min-check-pass must be between 0 and 1, got {self.min_check_pass}")

    @property
    def checks_per_rater(self) -> int:
        """Attention checks each rater gets: round(m · rate), at least one when the rate is positive."""
        return 0 if self.attention_rate == 0 else max(1, round(self.per_rater * self.attention_rate))

    def exclusion_rule(self) -> str:
        if self.checks_per_rater == 0:
            return "no attention checks: no rater is excluded"
        return (f"a rater is excluded when they chose the side made for the shown prompt in fewer than "
                f"{self.min_check_pass:.0%} of their answered attention checks (text-alignment question); "
                f"a rater who answered no check is kept; checks never count as judgments")


@dataclass(frozen=True)
class VideoRef:
    path: str        # relative to the evaluate run's folder (POSIX)
    method: str
    prompt: str
    face: int        # face index in the run
    seed: int | None


@dataclass(frozen=True)
class Pair:
    prompt: str
    face: int
    seed: int | None
    a: VideoRef      # the first method's video
    b: VideoRef      # the second method's video


@dataclass
class EvaluateRun:
    root: Path                                              # the results folder (absolute)
    pairs: list[Pair]
    videos: dict[tuple[str, str, int], VideoRef]           # (method, prompt, face) → video
    prompts: list[str]
    bundle: str | None = None
    fid: dict[str, float | None] = field(default_factory=dict)   # method → FID of the run (if measured)
    fid_features: str | None = None


def read_evaluate_run(folder: str | Path, methods: tuple[str, str]) -> EvaluateRun:
    """Pairs of ``methods`` in the results folder of ``faceanim evaluate --save-videos``."""
    root = Path(folder)
    if not root.is_dir():
        raise FaceanimError(f"--from: folder not found: {folder}")
    path = root / "results.json"
    if not path.is_file():
        raise FaceanimError(f"--from: {folder} holds no results.json (is it a `faceanim evaluate` output?)")
    try:
        results = json.loads(path.read_text())
        records = results["videos"]
        run_methods = list(results["methods"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FaceanimError(f"--from: {path} is not a faceanim evaluate results file ({exc})") from None
    for m in methods:
        if m not in run_methods:
            raise FaceanimError(f"method {m!r} is not in {folder} (it has {', '.join(run_methods)})")
    root = root.resolve()
    videos: dict[tuple[str, str, int], VideoRef] = {}
    for rec in records:
        if rec.get("method") not in methods:
            continue
        if not rec.get("video"):
            raise FaceanimError(f"{folder} has no per-video files: rerun `faceanim evaluate` with --save-videos")
        rel = Path(rec["video"])
        full = (root / rel).resolve()
        if rel.is_absolute() or root not in full.parents:
            raise FaceanimError(f"{path}: video path {rec['video']!r} is outside {folder}")
        if not full.is_file():
            raise FaceanimError(f"{folder}: video file missing: {rec['video']}")
        key = (rec["method"], rec["prompt"], int(rec["face"]))
        videos[key] = VideoRef(rel.as_posix(), rec["method"], rec["prompt"], int(rec["face"]), rec.get("seed"))
    prompts = list(dict.fromkeys(p for _, p, _ in videos))
    pairs = []
    for (method, prompt, face), va in videos.items():
        if method != methods[0] or (methods[1], prompt, face) not in videos:
            continue
        pairs.append(Pair(prompt, face, va.seed, va, videos[(methods[1], prompt, face)]))
    if not pairs:
        raise FaceanimError(f"{folder}: no face and prompt has videos of both {methods[0]} and {methods[1]}")
    fid = {m: (results["methods"][m].get("set") or {}).get("fid") for m in methods}
    return EvaluateRun(root, pairs, videos, prompts, results.get("bundle"), fid,
                       (results.get("features") or {}).get("fid"))


@dataclass(frozen=True)
class Item:
    kind: str                 # "pair" (a judgment) or "check" (an attention check)
    prompt: str               # the prompt the rater is shown
    left: VideoRef
    right: VideoRef
    pair: int | None = None   # index into run.pairs (judgments)
    expected: str | None = None  # checks: the side made for the shown prompt


def plan_study(run: EvaluateRun, cfg: StudyConfig) -> list[list[Item]]:
    """Each rater's items in the order shown (judgments and attention checks mixed at random)."""
    cfg.validate()
    n_pairs = len(run.pairs)
    if cfg.per_rater > n_pairs:
        raise FaceanimError(f"--per-rater {cfg.per_rater} exceeds the {n_pairs} pairs of the run "
                            f"(a rater would see a pair twice)")
    candidates = _check_candidates(run, cfg) if cfg.checks_per_rater else []
    if cfg.checks_per_rater and not candidates:
        raise FaceanimError("attention checks need videos of one face for two prompts (or use --attention-rate 0)")
    rng = random.Random(cfg.seed)
    counts = [0] * n_pairs
    plan = []
    for _ in range(cfg.raters):
        # the m least-shown pairs, ties broken at random: every pair is shown ⌊R·m/P⌋ or ⌈R·m/P⌉ times
        keys = [rng.random() for _ in range(n_pairs)]
        chosen = sorted(range(n_pairs), key=lambda i: (counts[i], keys[i]))[:cfg.per_rater]
        for i in chosen:
            counts[i] += 1
        a_left = [True] * math.ceil(cfg.per_rater / 2) + [False] * (cfg.per_rater // 2)
        if cfg.per_rater % 2 and rng.random() < 0.5:
            a_left = [not x for x in a_left]
        rng.shuffle(a_left)
        items = []
        for i, left_a in zip(chosen, a_left):
            p = run.pairs[i]
            items.append(Item("pair", p.prompt, p.a if left_a else p.b, p.b if left_a else p.a, pair=i))
        items += [_check(candidates, run, rng) for _ in range(cfg.checks_per_rater)]
        rng.shuffle(items)
        plan.append(items)
    return plan


def _check_candidates(run: EvaluateRun, cfg: StudyConfig) -> list[tuple[Pair, str, list[str]]]:
    """(pair, method, other prompts with a video of that face and method) for every possible attention check."""
    out = []
    for p in run.pairs:
        for method in cfg.methods:
            others = [q for q in run.prompts if q != p.prompt and (method, q, p.face) in run.videos]
            if others:
                out.append((p, method, others))
    return out


def _check(candidates: list[tuple[Pair, str, list[str]]], run: EvaluateRun, rng: random.Random) -> Item:
    """One attention check: the shown prompt's video against the same face and method made for another prompt."""
    p, method, others = candidates[rng.randrange(len(candidates))]
    right_one = run.videos[(method, p.prompt, p.face)]
    wrong_one = run.videos[(method, others[rng.randrange(len(others))], p.face)]
    side = SIDES[rng.randrange(2)]
    left, right = (right_one, wrong_one) if side == "left" else (wrong_one, right_one)
    return Item("check", p.prompt, left, right, expected=side)

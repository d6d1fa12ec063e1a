"""What a bundle can animate: its supported prompts, and a note for prompts far from all of them.

A bundle's motion model follows the prompts it was trained and checked on (``BundleInfo.supported_prompts``); a
prompt elsewhere in the CLIP text space still produces *some* motion, rarely the one asked for. The distance used
is the conditioning CLIP's own: the cosine similarity of the templated prompt's text embedding to the nearest
supported prompt's. Below the bundle's ``prompt_threshold`` the prompt is called *far*, and ``animate`` says so in
one line (naming the nearest supported prompts) before it runs anyway.

The threshold is calibrated, not guessed (:func:`calibrate_threshold`): from phrases that should pass (held-out
paraphrases of the supported prompts) and phrases that should not (unrelated phrases, phrasings of motions the
bundle does not support), split in two halves with a fixed seed. The threshold is the smallest value that no
negative of the *fit* half reaches; the *report* half gives the pass rates that a user can expect.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

MARGIN = 1e-3  # above the highest fit-half negative


@torch.no_grad()
def nearest_supported(clip, template: str | None, prompts: Sequence[str], supported: Sequence[str],
                      batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """For each prompt, the similarity to every supported prompt, sorted: ``(sims [P, S], order [P, S])``.

    ``clip``: a :class:`~faceanim.encoders.clip.CLIPEncoder` (its ``encode_text`` returns unit vectors).
    """
    def embed(texts: Sequence[str]) -> torch.Tensor:
        chunks = [clip.encode_text(list(texts[i:i + batch_size]), template=template)
                  for i in range(0, len(texts), batch_size)]
        return torch.cat(chunks).float().cpu()

    sims = embed(prompts) @ embed(supported).t()
    return sims.sort(dim=1, descending=True)


def far_prompt_notes(clip, template: str | None, prompts: Sequence[str], supported: Sequence[str],
                     threshold: float | None, bundle_name: str, show: int = 3) -> list[str]:
    """One line per prompt whose similarity to every supported prompt is below ``threshold`` (none when the bundle
    declares no supported prompts or no threshold)."""
    if not supported or threshold is None or not prompts:
        return []
    sims, order = nearest_supported(clip, template, prompts, supported)
    notes = []
    for p, s, o in zip(prompts, sims, order):
        if s[0].item() < threshold:
            near = ", ".join(f"{supported[j]!r}" for j in o[:show].tolist())
            notes.append(f"note: {p!r} is far from the prompts {bundle_name} was trained on (similarity "
                         f"{s[0].item():.2f} < {threshold:.3f}); the motion may not follow it. Nearest: {near}")
    return notes


@dataclass
class PromptCalibration:
    """The result of :func:`calibrate_threshold` (saved beside the run as JSON)."""
    threshold: float
    seed: int
    supported: list[str]
    counts: dict[str, int]                              # group → number of phrases (fit + report)
    pass_rate: dict[str, dict[str, float]]              # group → {"fit": share ≥ threshold, "report": …}
    passing: dict[str, list[str]] = field(default_factory=dict)  # report-half phrases of each group that pass

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> list[str]:
        lines = [f"threshold {self.threshold:.3f} (smallest value no fit-half negative reaches, + {MARGIN})"]
        for group, rates in self.pass_rate.items():
            lines.append(f"  {group:<22} {self.counts[group]:>4} phrases: pass {rates['fit']:.2f} (fit half), "
                         f"{rates['report']:.2f} (report half)")
        return lines


def _halves(items: Sequence[str], rng: random.Random) -> tuple[list[str], list[str]]:
    items = list(dict.fromkeys(items))
    rng.shuffle(items)
    return items[: (len(items) + 1) // 2], items[(len(items) + 1) // 2:]


def calibrate_threshold(clip, template: str | None, supported: Sequence[str], positives: dict[str, list[str]],
                        negatives: dict[str, list[str]], seed: int = 0) -> PromptCalibration:
    """Fit the far-prompt threshold on half of the negatives; report pass rates of every group on both halves.

    ``positives`` / ``negatives``: group name → phrases (e.g. "held-out paraphrases" / "unrelated phrases").
    Every group is split in halves by a ``random.Random(seed)`` shuffle (duplicates dropped first).
    """
    if not supported:
        raise ValueError("no supported prompts to calibrate against")
    if not any(negatives.values()):
        raise ValueError("calibration needs negative phrases (phrases the note must catch)")
    rng = random.Random(seed)
    groups = {**positives, **negatives}
    split = {g: _halves(phrases, rng) for g, phrases in groups.items()}
    everything = sorted({p for fit, rep in split.values() for p in fit + rep})
    best = dict(zip(everything, nearest_supported(clip, template, everything, supported)[0][:, 0].tolist()))
    fit_negatives = [best[p] for g in negatives for p in split[g][0]]
    threshold = round(max(fit_negatives) + MARGIN, 4)

    def rate(phrases: list[str]) -> float:
        return sum(best[p] >= threshold for p in phrases) / len(phrases) if phrases else float("nan")

    return PromptCalibration(
        threshold=threshold, seed=seed, supported=list(supported),
        counts={g: len(fit) + len(rep) for g, (fit, rep) in split.items()},
        pass_rate={g: {"fit": rate(fit), "report": rate(rep)} for g, (fit, rep) in split.items()},
        passing={g: sorted(p for p in rep if best[p] >= threshold) for g, (fit, rep) in split.items()},
    )

"""ToonFace as a faceanim plugin (entry point ``faceanim.plugins: toonface``): its z-sampler, its region masks and
target latents, its metrics and its evaluation domain, registered into the core's registries when the plugin is loaded."""

from __future__ import annotations

from typing import Any, Sequence

import torch

import faceanim.toon.metrics  # noqa: F401  (registers toon_truth, toon_reference)
from faceanim.data.regions import register_region_masks
from faceanim.data.targets import register_target_latents
from faceanim.data.z_samplers import register_z_sampler
from faceanim.evaluation.domains import Domain, Prompt, register_domain
from faceanim.toon.latent import sample_identity_z
from faceanim.toon.recipes import prompt_region_masks, prompt_target_z

register_z_sampler("toonface")(sample_identity_z)
register_region_masks("toonface")(prompt_region_masks)
register_target_latents("toonface")(prompt_target_z)

REAL_SEED = 10_000  # renderer draws for FID use seeds REAL_SEED + the evaluation's seed


class ToonDomain(Domain):
    """Cartoon faces of the ToonFace renderer: every prompt key names a factor its evaluator reads back."""

    name = "toon"
    evaluator_label = "ToonFace evaluator"

    def owns(self, info: Any) -> bool:
        return getattr(info, "z_sampler", "") == "toonface"

    def resolve_prompts(self, prompts: Sequence[str], info: Any) -> tuple[list[Prompt], list[str]]:
        """A prompt may be a key ("smile") or a known phrase ("smiling"); ``()``: every prompt key."""
        from faceanim.toon.captions import EXPRESSION_PROMPTS, PROMPT_TARGETS, phrase_key

        out, notes = [], []
        for p in (prompts or tuple(PROMPT_TARGETS)):
            p = p.strip()
            if p in PROMPT_TARGETS:
                out.append(Prompt(EXPRESSION_PROMPTS[p], p))
            elif phrase_key(p) is not None:
                out.append(Prompt(p, phrase_key(p)))
            else:
                out.append(Prompt(p))
                notes.append(f"prompt {p!r} names no ToonFace factor: no ground truth for it")
        return out, notes

    def prompt_key(self, text: str) -> str | None:
        from faceanim.toon.captions import phrase_key

        return phrase_key(text)

    def load_evaluator(self, path: str) -> Any:
        from faceanim.toon.evaluator import ToonEvaluator

        return ToonEvaluator.from_pretrained(path)

    def real_images(self, n: int, size: int, seed: int):
        """Renderer draws with the generator's training distribution, ``[B, 3, size, size]`` in [-1, 1]."""
        from faceanim.toon.recipes import training_params
        from faceanim.toon.renderer import render

        def batches():
            rng = torch.Generator().manual_seed(REAL_SEED + seed)
            done = 0
            while done < n:
                m = min(64, n - done)
                yield render(training_params(m, rng), size=size)
                done += m

        return batches, f"{n} ToonFace renderer draws (training distribution)"

    def draws_references(self, info: Any) -> bool:
        return self.owns(info)

    def training_prompts(self, prompts: Sequence[str]) -> list[str]:
        from faceanim.toon.recipes import motion_prompts

        return motion_prompts(list(prompts))


register_domain(ToonDomain())

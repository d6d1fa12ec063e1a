"""ToonFace: procedurally rendered cartoon faces with a known factor space, and their captions.

``ToonParams.sample`` draws faces as ``[B, P]`` factor vectors (layout in ``factors``), ``render``
turns them into ``[B, 3, S, S]`` images in [-1, 1], and ``caption`` describes them in words.
"""

from faceanim.toon.captions import EXPRESSION_PROMPTS, HELDOUT_PROMPTS, PROMPT_TARGETS, caption, prompt
from faceanim.toon.factors import (
    ATTRIBUTE,
    EXPRESSION,
    EXPRESSION_NAMES,
    FACTORS,
    HAIR_STYLES,
    IDENTITY,
    PARAM_DIM,
    SLICES,
    Factor,
    ToonParams,
)
from faceanim.toon.renderer import expression_sheet, render, render_uint8, render_unit

__all__ = [
    "ATTRIBUTE", "EXPRESSION", "EXPRESSION_NAMES", "EXPRESSION_PROMPTS", "FACTORS", "HAIR_STYLES",
    "HELDOUT_PROMPTS", "IDENTITY", "PARAM_DIM", "PROMPT_TARGETS", "SLICES", "Factor", "ToonParams",
    "caption", "expression_sheet", "prompt", "render", "render_uint8", "render_unit",
]

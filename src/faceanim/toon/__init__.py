"""ToonFace: procedurally rendered cartoon faces with a known factor space, and their captions.

``ToonParams.sample`` draws faces as ``[B, P]`` factor vectors (layout in ``factors``), ``render``
turns them into ``[B, 3, S, S]`` images in [-1, 1], ``caption`` describes them in words, and ``ToonEvaluator``
reads the factors back from an image (for objective metrics).

Names load on first use, so that the `faceanim toon` command group costs nothing at CLI start-up.
"""

from importlib import import_module

_HOME = {
    **{n: "captions" for n in ("EXPRESSION_PROMPTS", "HELDOUT_PROMPTS", "PROMPT_TARGETS", "caption", "prompt")},
    **{n: "factors" for n in ("ATTRIBUTE", "EXPRESSION", "EXPRESSION_NAMES", "FACTORS", "HAIR_STYLES", "IDENTITY",
                              "PARAM_DIM", "SLICES", "Factor", "ToonParams")},
    **{n: "renderer" for n in ("expression_sheet", "render", "render_uint8", "render_unit")},
    **{n: "evaluator" for n in ("EvaluatorConfig", "ToonEvaluator")},
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"faceanim.toon.{_HOME[name]}"), name)
    raise AttributeError(f"module 'faceanim.toon' has no attribute {name!r}")

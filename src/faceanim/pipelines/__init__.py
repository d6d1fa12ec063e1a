"""Inference pipelines with one ``__call__`` (diffusers-style), and ``faceanim animate``'s job around them.

Names load on first use, so that ``faceanim.pipelines.job`` (option checks) imports no torch.
"""

from importlib import import_module

_HOME = {"AnimationOutput": "animation", "AnimationPipeline": "animation", "AnimateJob": "job",
         "AnimateResult": "job"}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"faceanim.pipelines.{_HOME[name]}"), name)
    raise AttributeError(f"module 'faceanim.pipelines' has no attribute {name!r}")

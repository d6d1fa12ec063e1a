"""The metric registry: ``@register_metric`` turns a function into a named metric that returns named floats.

Two scopes, as in NVlabs' ``metrics/``:

- ``"video"``: ``fn(video: Video, ctx: MetricContext) -> dict[str, float]`` scores one video; the evaluate command
  averages over videos (with confidence intervals) and per prompt. A value that cannot be computed for a video
  (no face found, too few frames) is ``nan`` and left out of the averages.
- ``"set"``: ``fn(videos: list[Video], ctx: MetricContext) -> dict[str, float]`` scores all videos of a method at
  once (FID compares two distributions; it has no per-video value).

``requires`` names what a metric reads from the context (``"clip"``, ``"identity"``, ``"evaluator"``,
``"generator"``, ``"fid"``); the evaluate command runs only the metrics whose requirements are present. No torch
import here, so ``faceanim --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

Scope = Literal["video", "set"]
REQUIREMENTS = ("clip", "identity", "evaluator", "generator", "fid")


@dataclass(frozen=True)
class Metric:
    name: str                     # registry key (``--metrics`` / results.json)
    fn: Callable[..., dict]       # see the module docstring for the two signatures
    scope: Scope                  # "video" (per video, averaged) or "set" (per method)
    requires: tuple[str, ...]     # context entries it reads (subset of REQUIREMENTS)
    doc: str                      # first line of the function's docstring
    lower_is_better: tuple[str, ...] = ()  # named values where lower is better (for the tables' arrows)


METRICS: dict[str, Metric] = {}


def register_metric(name: str, scope: Scope = "video", requires: tuple[str, ...] = (),
                    lower_is_better: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator: ``@register_metric("acd", requires=("identity",), lower_is_better=("acd",))``."""
    if scope not in ("video", "set"):
        raise ValueError(f"metric scope must be 'video' or 'set', got {scope!r}")
    unknown = set(requires) - set(REQUIREMENTS)
    if unknown:
        raise ValueError(f"unknown metric requirements {sorted(unknown)} (known: {', '.join(REQUIREMENTS)})")

    def wrap(fn: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        METRICS[name] = Metric(name, fn, scope, tuple(requires), doc, tuple(lower_is_better))
        return fn

    return wrap


def get_metrics() -> dict[str, Metric]:
    """All registered metrics: the built-in ones, then those of the domain plugins (:mod:`faceanim.plugins`)."""
    import faceanim.evaluation.metrics  # noqa: F401  (registers on import)
    from faceanim.plugins import load_plugins

    load_plugins()
    return METRICS


def lower_is_better() -> set[str]:
    """Every named value, over all registered metrics, where lower is better (the one list the tables use)."""
    return {v for m in get_metrics().values() for v in m.lower_is_better}

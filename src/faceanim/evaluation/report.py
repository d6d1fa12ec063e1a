"""How numbers look in every table faceanim writes (results.md, the results page)."""

from __future__ import annotations

import math


def format_cell(s: dict | float | None, digits: int = 3) -> str:
    """A table cell: a summary ``{"mean", "low", "high", "n"}`` as ``mean [low, high]`` (the interval only when more
    than one value was averaged), a plain number, or "–" when there is none. ``digits`` significant digits; values
    below 1e-3 in scientific notation."""
    if isinstance(s, (int, float)):
        s = {"mean": float(s)}
    if not s or s.get("mean") is None or (isinstance(s["mean"], float) and math.isnan(s["mean"])):
        return "–"
    f = lambda v: f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"  # noqa: E731
    return f"{f(s['mean'])} [{f(s['low'])}, {f(s['high'])}]" if s.get("n", 0) > 1 else f(s["mean"])

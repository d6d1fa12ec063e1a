"""The study's statistics, from scipy and statsmodels (nothing re-derived here).

- share of judgments preferring a method with a Wilson score interval (``statsmodels`` ``proportion_confint``,
  ``method="wilson"``);
- a two-sided exact binomial test of "both methods equally preferred" (``scipy.stats.binomtest``, p = 0.5);
- agreement between raters: Fleiss' κ (``statsmodels.stats.inter_rater.fleiss_kappa``).

Both the interval and the test treat judgments as independent; judgments by one rater or of one pair may be
correlated, so with few raters the intervals are narrower than the rater-to-rater spread (the report shows the
per-rater shares beside them).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Iterable, Sequence


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n (nan, nan when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    return float(lo), float(hi)


def binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial test of k successes in n trials against p = 0.5 (nan when n = 0)."""
    if n == 0:
        return math.nan
    from scipy.stats import binomtest

    return float(binomtest(k, n, 0.5, alternative="two-sided").pvalue)


def preference(k_a: int, k_b: int, ties: int = 0, confidence: float = 0.95) -> dict:
    """Shares of the judgments that prefer a side: A's and B's share among them with Wilson intervals, the binomial
    p-value of A against B, and the share of "no preference" among all judgments."""
    n = k_a + k_b
    a_lo, a_hi = wilson_interval(k_a, n, confidence)
    b_lo, b_hi = wilson_interval(k_b, n, confidence)
    return {
        "n": n, "ties": ties, "tie_share": ties / (n + ties) if n + ties else math.nan,
        "a": {"k": k_a, "share": k_a / n if n else math.nan, "low": a_lo, "high": a_hi},
        "b": {"k": k_b, "share": k_b / n if n else math.nan, "low": b_lo, "high": b_hi},
        "p_value": binomial_p(k_a, n),
    }


def fleiss(ratings: dict[Hashable, Sequence[str]], categories: Iterable[str]) -> dict:
    """Fleiss' κ of subjects rated into ``categories``. Fleiss' κ needs the same number of ratings per subject: k is
    the most common count among subjects rated at least twice; subjects with more keep their first k ratings,
    subjects with fewer are left out. Returns κ (None when undefined: fewer than two such subjects or a single
    category used throughout), k and the number of subjects used."""
    counts = Counter(len(r) for r in ratings.values() if len(r) >= 2)
    if not counts:
        return {"kappa": None, "raters_per_subject": 0, "subjects": 0}
    k = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    cats = list(categories)
    table = [[list(r[:k]).count(c) for c in cats] for r in ratings.values() if len(r) >= k]
    kappa = None
    used = [sum(col) for col in zip(*table)]
    if len(table) >= 2 and sum(1 for u in used if u) >= 2:
        from statsmodels.stats.inter_rater import fleiss_kappa

        kappa = float(fleiss_kappa(table, method="fleiss"))
    return {"kappa": kappa, "raters_per_subject": k, "subjects": len(table)}

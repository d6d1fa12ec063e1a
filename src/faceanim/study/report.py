"""``faceanim study report``: the answers of a study as the paper's Table I (Markdown + JSON).

Per question: the share of judgments preferring each method with a Wilson interval and a two-sided binomial test;
the same per prompt and per rater; Fleiss' κ between raters; attention checks and the exclusion rule, applied.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from faceanim.study.design import QUESTIONS, TIE
from faceanim.study.stats import fleiss, preference
from faceanim.study.store import StudyStore


def _chosen_method(row: dict, question: str) -> str | None:
    side = row[question]
    return None if side == TIE else row["left_method"] if side == "left" else row["right_method"]


def _preferences(rows: list[dict], methods: tuple[str, str], confidence: float) -> dict[str, dict]:
    out = {}
    for q in QUESTIONS:
        chosen = [_chosen_method(r, q) for r in rows]
        out[q] = preference(chosen.count(methods[0]), chosen.count(methods[1]), chosen.count(None), confidence)
    return out


def build_report(store: StudyStore, confidence: float = 0.95) -> dict[str, Any]:
    """Everything the report shows, as a JSON-ready dict (see :func:`render_markdown`)."""
    if not 0 < confidence < 1:
        from faceanim.errors import FaceanimError

        raise FaceanimError(f"--confidence must be in (0, 1), got {confidence}")
    cfg = store.config
    a, b = cfg.methods
    rows = store.answers()

    raters = {}
    for p in store.progress():
        checks, passed = p["checks"] or 0, p["passed"] or 0
        raters[p["label"]] = {
            "answered": p["answered"], "items": p["total"], "checks_answered": checks, "checks_passed": passed,
            "excluded": bool(checks) and passed / checks < cfg.min_check_pass,
        }
    judgments = [r for r in rows if r["kind"] == "pair" and not raters[r["rater"]]["excluded"]]

    overall = _preferences(judgments, cfg.methods, confidence)
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    by_rater: dict[str, list[dict]] = defaultdict(list)
    by_pair: dict[int, list[dict]] = defaultdict(list)
    for r in judgments:
        by_prompt[r["prompt"]].append(r)
        by_pair[r["pair"]].append(r)
    for r in rows:
        if r["kind"] == "pair":
            by_rater[r["rater"]].append(r)
    categories = [a, b] + ([TIE] if cfg.allow_tie else [])
    agreement = {}
    for q in QUESTIONS:
        ratings = {pair: [_chosen_method(r, q) or TIE for r in rs] for pair, rs in by_pair.items()}
        agreement[q] = fleiss(ratings, categories)
    for label, info in raters.items():
        info["preferences"] = _preferences(by_rater.get(label, []), cfg.methods, confidence)

    counts = store.counts()
    table = {m: {q: {"share": overall[q][key]["share"], "low": overall[q][key]["low"],
                     "high": overall[q][key]["high"], "k": overall[q][key]["k"]} for q in QUESTIONS}
             for m, key in ((a, "a"), (b, "b"))}
    return {
        "study": {
            "methods": list(cfg.methods), "source": store.meta["source"], "bundle": store.meta.get("bundle"),
            "raters_assigned": counts["raters"], "raters_answering": sum(1 for v in raters.values() if v["answered"]),
            "raters_included": sum(1 for v in raters.values() if v["answered"] and not v["excluded"]),
            "raters_excluded": sorted(k for k, v in raters.items() if v["excluded"]),
            "pairs": counts["pairs"], "pairs_judged": len(by_pair), "per_rater": cfg.per_rater,
            "checks_per_rater": cfg.checks_per_rater, "allow_tie": cfg.allow_tie,
            "answers": len(rows), "judgments": len(judgments), "items": counts["items"],
        },
        "questions": {q: {"column": c, "text": t} for q, (c, t) in QUESTIONS.items()},
        "confidence": confidence,
        "interval": "Wilson score interval of the share among judgments preferring a side (statsmodels)",
        "test": "two-sided exact binomial test, H0: both methods preferred equally (scipy.stats.binomtest)",
        "exclusion_rule": store.meta["exclusion_rule"],
        "table": table,
        "fid": store.meta.get("fid") or {}, "fid_features": store.meta.get("fid_features"),
        "overall": overall,
        "per_prompt": {p: _preferences(rs, cfg.methods, confidence) for p, rs in sorted(by_prompt.items())},
        "per_rater": raters,
        "agreement": {"measure": "Fleiss' kappa (statsmodels), categories " + ", ".join(categories),
                      **agreement},
    }


# ----------------------------------------------------------------------------------------------------------------
# Markdown


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def render_markdown(rep: dict[str, Any]) -> str:
    s = rep["study"]
    a, b = s["methods"]
    qs = list(rep["questions"])
    cols = [rep["questions"][q]["column"] for q in qs]
    level = f"{rep['confidence']:.0%}"
    has_fid = any(v is not None for v in rep["fid"].values())
    lines = [f"# Human preference study: {a} vs {b}", "",
             f"In the layout of the paper's Table I: the share of judgments preferring each method, with its "
             f"{level} Wilson interval in brackets. {s['judgments']} judgments by {s['raters_included']} raters "
             f"({s['raters_answering']} answered of {s['raters_assigned']} assigned; "
             f"{len(s['raters_excluded'])} excluded by the attention checks) on {s['pairs_judged']} of "
             f"{s['pairs']} pairs (same face and prompt, one video of each method, sides at random).", ""]
    header = "| Method | " + " | ".join(f"{c} ↑" for c in cols) + (" | FID ↓ |" if has_fid else " |")
    lines += [header, "|---" * (len(cols) + 1 + has_fid) + "|"]
    for m, key in ((b, "b"), (a, "a")):  # the paper lists the baseline first
        cells = []
        for q in qs:
            o = rep["overall"][q]
            share = _num(o[key]["share"])
            best = o[key]["share"] > o["b" if key == "a" else "a"]["share"] if o["n"] else False
            cells.append(f"{'**' + share + '**' if best else share} [{_num(o[key]['low'])}, {_num(o[key]['high'])}]")
        fid = rep["fid"].get(m)
        lines.append(f"| {m} | " + " | ".join(cells) + (f" | {_num(fid, 2)} |" if has_fid else " |"))
    lines += ["", "| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
              "| judgments preferring a side | " + " | ".join(str(rep["overall"][q]["n"]) for q in qs) + " |",
              f"| binomial test p ({a} vs {b}, two-sided) | "
              + " | ".join(_p(rep["overall"][q]["p_value"]) for q in qs) + " |"]
    if s["allow_tie"]:
        lines.append("| \"no preference\" share | " + " | ".join(_num(rep["overall"][q]["tie_share"]) for q in qs)
                     + " |")
    lines.append("")

    lines += ["## Questions", ""] + [f"- {v['column']}: \"{v['text']}\"" for v in rep["questions"].values()] + [""]

    lines += ["## Per prompt", "", f"Share preferring {a} [{level} Wilson interval] (judgments).", "",
              "| prompt | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for prompt, prefs in rep["per_prompt"].items():
        lines.append(f"| {prompt} | " + " | ".join(
            f"{_num(prefs[q]['a']['share'])} [{_num(prefs[q]['a']['low'])}, {_num(prefs[q]['a']['high'])}] "
            f"({prefs[q]['n']})" for q in qs) + " |")
    lines.append("")

    lines += ["## Per rater", "", f"Share preferring {a} (judgments); attention checks passed / answered.", "",
              "| rater | answered | checks | excluded | " + " | ".join(cols) + " |",
              "|---" * (len(cols) + 4) + "|"]
    for label, r in rep["per_rater"].items():
        prefs = r["preferences"]
        checks = f"{r['checks_passed']} / {r['checks_answered']}" if r["checks_answered"] else "–"
        lines.append(f"| {label} | {r['answered']} / {r['items']} | {checks} | {'yes' if r['excluded'] else ''} | "
                     + " | ".join(f"{_num(prefs[q]['a']['share'], 2)} ({prefs[q]['n']})" for q in qs) + " |")
    lines.append("")

    ag = rep["agreement"]
    lines += ["## Agreement between raters", "",
              f"{ag['measure']}; pairs judged by at least k raters, their first k judgments (k = the most common "
              f"number of judgments per pair).", "", "| question | κ | k | pairs |", "|---|---|---|---|"]
    for q, c in zip(qs, cols):
        lines.append(f"| {c} | {_num(ag[q]['kappa'])} | {ag[q]['raters_per_subject']} | {ag[q]['subjects']} |")
    lines.append("")

    lines += ["## Method", "",
              f"- Interval: {rep['interval']}; test: {rep['test']}. Both treat judgments as independent; judgments "
              f"by one rater or of one pair can be correlated (see the per-rater table).",
              f"- Attention checks: {s['checks_per_rater']} per rater, mixed in among the {s['per_rater']} pairs: "
              f"one side made for the shown prompt, the other for another prompt (same face, same method). "
              f"Exclusion rule: {rep['exclusion_rule']}.",
              f"- Source: `faceanim evaluate` run {s['source']}" + (f" (bundle {s['bundle']})" if s["bundle"] else "")
              + "."]
    if has_fid:
        lines.append(f"- FID: from that run ({rep['fid_features'] or 'unknown'} features; not comparable to the "
                     f"paper's Inception FID unless those are Inception features).")
    return "\n".join(lines) + "\n"


def to_json(x: Any) -> Any:
    """The report with NaN / inf as null (valid JSON)."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    return x

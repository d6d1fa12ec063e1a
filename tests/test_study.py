"""The human preference study (issue 21): the assignment, the SQLite store, the statistics and the report, the
`faceanim study create | report` commands, and `study create --from` on a real `faceanim evaluate` output."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter

import pytest

from faceanim.cli.main import main
from faceanim.errors import FaceanimError
from faceanim.study import SCHEMA_VERSION, StudyConfig, StudyStore, plan_study, read_evaluate_run
from faceanim.study.report import build_report, render_markdown
from faceanim.study.stats import binomial_p, fleiss, preference, wilson_interval
from faceanim.study.store import InvalidAnswer, NotFound

from study_helpers import item_sides, make_study, write_run


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


# ----------------------------------------------------------------------------------------------------------------
# assignment


@pytest.mark.parametrize("raters, per_rater, seed", [(7, 5, 0), (5, 12, 3), (3, 1, 1)])
def test_assignment_is_balanced(tmp_path, raters, per_rater, seed):
    run = read_evaluate_run(write_run(tmp_path, faces=4), ("ours", "styleclip"))  # 12 pairs
    cfg = StudyConfig(raters=raters, per_rater=per_rater, attention_rate=0.2, seed=seed)
    plan = plan_study(run, cfg)
    assert len(plan) == raters
    shown = Counter()
    for items in plan:
        pairs = [it for it in items if it.kind == "pair"]
        checks = [it for it in items if it.kind == "check"]
        assert len(pairs) == per_rater and len(checks) == cfg.checks_per_rater == max(1, round(per_rater * 0.2))
        assert len({it.pair for it in pairs}) == per_rater  # no pair twice to one rater
        a_left = sum(it.left.method == "ours" for it in pairs)
        assert abs(a_left - (per_rater - a_left)) <= 1  # sides balanced within a rater
        for it in pairs:
            p = run.pairs[it.pair]
            assert {it.left, it.right} == {p.a, p.b} and it.prompt == p.prompt == it.left.prompt == it.right.prompt
            assert it.left.face == it.right.face
        for it in checks:  # one side made for the shown prompt, the other for another; same face and method
            good, bad = (it.left, it.right) if it.expected == "left" else (it.right, it.left)
            assert good.prompt == it.prompt != bad.prompt
            assert good.face == bad.face and good.method == bad.method
        shown.update(it.pair for it in pairs)
    total = raters * per_rater
    lo, hi = total // len(run.pairs), -(-total // len(run.pairs))
    assert set(Counter({i: 0 for i in range(len(run.pairs))} | shown).values()) <= {lo, hi}
    assert sum(shown.values()) == total
    assert plan == plan_study(run, cfg)  # the seed fixes everything
    assert plan != plan_study(run, StudyConfig(raters=raters, per_rater=per_rater, attention_rate=0.2,
                                               seed=seed + 1)) or per_rater == 1


def test_paper_design_gives_four_judgments_per_pair(tmp_path):
    # the paper: 600 videos, 24 raters × 100 → every pair judged by exactly 4 raters
    run = read_evaluate_run(write_run(tmp_path, prompts=[f"p{j}" for j in range(6)], faces=100),
                            ("ours", "styleclip"))
    plan = plan_study(run, StudyConfig(raters=24, per_rater=100))
    counts = Counter(it.pair for items in plan for it in items if it.kind == "pair")
    assert len(run.pairs) == 600 and set(counts.values()) == {4}
    assert all(sum(it.kind == "check" for it in items) == 5 for items in plan)
    orders = [[it.pair for it in items if it.kind == "pair"] for items in plan]
    assert len({tuple(sorted(o)) for o in orders}) == 24  # the raters' sets differ


# ----------------------------------------------------------------------------------------------------------------
# the store


def test_store_is_wal_and_versioned(tmp_path):
    store = make_study(tmp_path)
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(FaceanimError, match="schema version 99; this faceanim reads version 1"):
        StudyStore(store.path)
    (tmp_path / "other.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(FaceanimError, match="not a"):
        StudyStore(tmp_path / "other.db")
    sqlite3.connect(tmp_path / "plain.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(FaceanimError, match="not a faceanim study file"):
        StudyStore(tmp_path / "plain.db")
    # nothing personal: the raters table holds a label and a random token only
    cols = [r[1] for r in sqlite3.connect(store.path).execute("PRAGMA table_info(raters)")]
    assert cols == ["id", "label", "token"]


def test_answers_resume_count_once_and_stay_private(tmp_path):
    store = make_study(tmp_path, StudyConfig(raters=2, per_rater=5, attention_rate=0.2))
    (la, ta), (lb, tb) = store.rater_tokens()
    st = store.state(ta)
    assert st["answered"] == 0 and st["total"] == 6 and st["rater"] == la
    first = st["item"]["id"]
    ans = {"frame": "left", "video": "right", "alignment": "left"}
    assert store.submit(ta, first, ans) is True
    assert store.submit(ta, first, {"frame": "right", "video": "right", "alignment": "right"}) is False  # double
    assert store.state(ta)["answered"] == 1 and store.state(ta)["item"]["id"] != first  # resumes at the next
    assert [(a["frame"], a["video"], a["alignment"]) for a in store.answers()] == [("left", "right", "left")]
    theirs = store.state(tb)["item"]["id"]
    with pytest.raises(NotFound):
        store.submit(ta, theirs, ans)  # another rater's item
    with pytest.raises(NotFound):
        store.media(ta, theirs, "left")
    with pytest.raises(NotFound):
        store.state("not-a-token")
    assert store.media(tb, theirs, "right").is_file()
    for bad in ({"frame": "left", "video": "right"}, {**ans, "alignment": "none"}, {**ans, "extra": "left"},
                {**ans, "frame": "ours"}):
        with pytest.raises(InvalidAnswer):
            store.submit(tb, theirs, bad)
    assert store.counts()["answers"] == 1
    assert not store.is_admin(ta) and store.is_admin(store.meta["admin_token"])


def test_no_preference_only_when_enabled(tmp_path):
    store = make_study(tmp_path, StudyConfig(raters=1, per_rater=3, allow_tie=True))
    (_, t), = store.rater_tokens()
    assert store.submit(t, store.state(t)["item"]["id"], {"frame": "none", "video": "left", "alignment": "none"})
    assert store.choices == ("left", "right", "none")


# ----------------------------------------------------------------------------------------------------------------
# statistics: checked against the formulas written out here


def test_wilson_and_binomial_against_the_formulas():
    for k, n in [(73, 100), (0, 10), (10, 10), (50, 100), (1, 3)]:
        z = 1.959963984540054
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(max(0.0, centre - half), abs=1e-9) and hi == pytest.approx(min(1.0, centre + half))
        # exact two-sided binomial test at 0.5: the outcomes at most as likely as k
        probs = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
        assert binomial_p(k, n) == pytest.approx(min(1.0, sum(q for q in probs if q <= probs[k] * (1 + 1e-7))))
    assert math.isnan(wilson_interval(0, 0)[0]) and math.isnan(binomial_p(0, 0))
    pref = preference(30, 10, ties=10)
    assert pref["a"]["share"] == 0.75 and pref["b"]["share"] == 0.25 and pref["tie_share"] == 0.2 and pref["n"] == 40


def test_wilson_interval_covers_about_95_percent():
    import numpy as np

    rng = np.random.default_rng(0)
    for p in (0.5, 0.73, 0.2):
        ks = rng.binomial(200, p, size=400)
        covered = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(int(k), 200) for k in ks)])
        assert 0.92 <= covered <= 0.98, (p, covered)


def test_fleiss_kappa_by_hand():
    # 4 subjects × 3 raters, two categories; κ = (P̄ − P̄e) / (1 − P̄e) written out
    ratings = {0: ["a", "a", "a"], 1: ["a", "a", "b"], 2: ["b", "b", "b"], 3: ["a", "b", "b"], 4: ["a"]}
    table = [[3, 0], [2, 1], [0, 3], [1, 2]]
    n = 3
    p_i = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in table]
    p_j = [sum(row[j] for row in table) / (4 * n) for j in range(2)]
    expected = (sum(p_i) / 4 - sum(q * q for q in p_j)) / (1 - sum(q * q for q in p_j))
    got = fleiss(ratings, ["a", "b"])
    assert got["kappa"] == pytest.approx(expected) and got["raters_per_subject"] == 3 and got["subjects"] == 4
    # more ratings than k: the first k count; a single category throughout: κ undefined
    assert fleiss({0: ["a", "a", "a", "b"], 1: ["a", "a", "b"], 2: ["a", "b", "b"]}, "ab")["subjects"] == 3
    assert fleiss({0: ["a", "a"], 1: ["a", "a"]}, "ab")["kappa"] is None


# ----------------------------------------------------------------------------------------------------------------
# the report


def _answer_all(store, choose):
    """Every rater answers every item with ``choose(label, kind, left, right, expected) -> side``."""
    sides = item_sides(store)
    for label, token in store.rater_tokens():
        while (item := store.state(token)["item"]) is not None:
            kind, left, right, expected = sides[item["id"]]
            side = choose(label, kind, left, right, expected)
            store.submit(token, item["id"], {"frame": side, "video": side, "alignment": side})


def test_report_counts_and_applies_the_exclusion_rule(tmp_path):
    store = make_study(tmp_path, StudyConfig(raters=4, per_rater=10, attention_rate=0.3, min_check_pass=0.75))

    def choose(label, kind, left, right, expected):
        if kind == "check":  # rater-4 fails every check, the others pass them
            return expected if label != "rater-4" else ("right" if expected == "left" else "left")
        if label == "rater-4":
            return "left" if left == "styleclip" else "right"  # always styleclip
        return "left" if left == "ours" else "right"           # always ours

    _answer_all(store, choose)
    rep = build_report(store)
    assert rep["study"]["raters_excluded"] == ["rater-4"] and rep["study"]["raters_included"] == 3
    assert rep["per_rater"]["rater-4"]["checks_passed"] == 0 and rep["per_rater"]["rater-4"]["checks_answered"] == 3
    for q in ("frame", "video", "alignment"):
        o = rep["overall"][q]
        assert o["n"] == 30 and o["a"]["k"] == 30 and o["a"]["share"] == 1.0  # rater-4's styleclip votes left out
        assert o["p_value"] == pytest.approx(2 / 2 ** 30)
        assert rep["table"]["ours"][q]["share"] == 1.0 and rep["table"]["styleclip"][q]["share"] == 0.0
        assert rep["agreement"][q]["kappa"] is None  # everyone included agrees on one category: κ undefined
    assert rep["per_rater"]["rater-4"]["preferences"]["frame"]["a"]["share"] == 0.0  # shown, not counted
    md = render_markdown(rep)
    assert "| styleclip | 0.000 [" in md and "| ours | **1.000** [" in md and "| FID ↓ |" in md
    assert "Exclusion rule: a rater is excluded when" in md and "| rater-4 | 13 / 13 | 0 / 3 | yes |" in md


def test_report_command_writes_markdown_and_json(tmp_path, capsys):
    store = make_study(tmp_path, StudyConfig(raters=3, per_rater=4, attention_rate=0))
    _answer_all(store, lambda label, kind, left, right, expected: "left")
    assert main(["study", "report", str(store.path), "-o", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "# Human preference study: ours vs styleclip" in out and "| HP-frame ↑ | HP-video ↑ |" in out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["study"]["judgments"] == 12 and set(rep["table"]) == {"ours", "styleclip"}
    assert rep["table"]["ours"]["frame"]["share"] + rep["table"]["styleclip"]["frame"]["share"] == pytest.approx(1)
    assert (tmp_path / "rep" / "report.md").read_text() in out
    assert set(rep["per_prompt"]) <= {"smiling", "crying", "angry"}


# ----------------------------------------------------------------------------------------------------------------
# the create command


def test_create_command(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    db = tmp_path / "s.db"
    assert main(["study", "create", "--from", str(run), "--raters", "3", "--per-rater", "8", "-o", str(db)]) == 0
    out = capsys.readouterr().out
    assert "12 pairs (3 prompts), 3 raters × 8 pairs + 1 attention checks, 2.00 judgments per pair" in out
    store = StudyStore(db)
    assert store.counts() == {"raters": 3, "pairs": 12, "items": 27, "answers": 0}
    assert store.meta["fid"] == {"ours": 40.0, "styleclip": 41.0}
    assert not list(tmp_path.glob(".s.db*"))  # no temporary file left


@pytest.mark.parametrize("args, message", [
    (["--from", "{tmp}/nowhere"], "folder not found"),
    (["--from", "{tmp}/empty"], "holds no results.json"),
    (["--from", "{tmp}/run", "--methods", "ours,mocogan"], "method 'mocogan' is not in"),
    (["--from", "{tmp}/run", "--methods", "ours"], "needs exactly two methods"),
    (["--from", "{tmp}/run", "--per-rater", "13"], "--per-rater 13 exceeds the 12 pairs"),
    (["--from", "{tmp}/run", "--raters", "0"], "--raters must be ≥ 1"),
    (["--from", "{tmp}/run", "--attention-rate", "1.5"], "--attention-rate must be between 0 and 1"),
    (["--from", "{tmp}/novideos"], "no per-video files: rerun `faceanim evaluate` with --save-videos"),
    (["--from", "{tmp}/oneprompt", "--per-rater", "2"], "attention checks need videos of one face for two prompts"),
    (["--from", "{tmp}/run", "-o", "{tmp}/exists.db"], "already exists (use --force"),
    (["--from", "{tmp}/run", "-o", "{tmp}/no/such/dir/s.db"], "folder does not exist"),
])
def test_create_bad_input_is_one_line(tmp_path, capsys, args, message):
    write_run(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    nov = write_run(tmp_path / "novideos")
    res = json.loads((nov / "results.json").read_text())
    for r in res["videos"]:
        del r["video"]
    (nov / "results.json").write_text(json.dumps(res))
    write_run(tmp_path / "oneprompt", prompts=("smiling",))
    (tmp_path / "exists.db").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = [a for a in args if a.endswith(".db")]
    assert main(["study", "create", "--per-rater", "4", *args] + ([] if out else ["-o", str(tmp_path / "new.db")])) == 2
    assert message in _err(capsys)
    assert not (tmp_path / "new.db").exists() and (tmp_path / "exists.db").read_text() == "x"


def test_report_and_serve_bad_input_is_one_line(tmp_path, capsys):
    assert main(["study", "report", str(tmp_path / "none.db")]) == 2
    assert "study file not found" in _err(capsys)
    (tmp_path / "bad.db").write_text("hello")
    assert main(["study", "serve", str(tmp_path / "bad.db")]) == 2
    assert "not a" in _err(capsys)
    store = make_study(tmp_path)
    for f in (tmp_path / "run" / "videos").rglob("*.mp4"):
        f.unlink()
    assert main(["study", "serve", str(store.path), "--port", "0"]) == 2
    assert "videos of the study are missing" in _err(capsys)


# ----------------------------------------------------------------------------------------------------------------
# on a real `faceanim evaluate` output


def test_create_from_a_real_evaluate_run(tmp_path, capsys):
    from tiny_models import tiny_bundle

    bundle = tiny_bundle(tmp_path)
    out = tmp_path / "results"
    assert main(["evaluate", "-b", str(bundle), "--methods", "ours,styleclip", "-p", "smiling", "-p", "crying",
                 "--faces", "2", "--frames", "3", "--steps", "2", "--identity", "clip", "--grid-faces", "0",
                 "--real", "4", "--bootstrap", "100", "--save-videos", "-o", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert sorted(r["video"] for r in res["videos"])[0] == "videos/ours/00-smiling/face000.mp4"
    assert all((out / r["video"]).stat().st_size > 100 for r in res["videos"])
    capsys.readouterr()
    db = tmp_path / "study.db"
    assert main(["study", "create", "--from", str(out), "--raters", "2", "--per-rater", "4", "-o", str(db)]) == 0
    store = StudyStore(db)
    assert store.counts()["pairs"] == 4 and store.missing_videos() == []
    sides = item_sides(store)
    assert {(k, tuple(sorted((left, right)))) for k, left, right, _ in sides.values() if k == "pair"} == \
        {("pair", ("ours", "styleclip"))}

"""The study's HTTP API (issue 21): simulated raters recover their preference rates through it, 20 concurrent raters
lose nothing, a SIGKILLed server loses no committed answer and resumes, tokens are confined to their own pairs."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("statsmodels")
httpx = pytest.importorskip("httpx2")  # what starlette's TestClient uses

from faceanim.study import StudyConfig  # noqa: E402
from faceanim.study.report import build_report  # noqa: E402
from faceanim.web.study import create_app  # noqa: E402

from study_helpers import Server, item_sides, make_study  # noqa: E402

QS = ("frame", "video", "alignment")


def _client(store):
    from fastapi.testclient import TestClient

    return TestClient(create_app(store))


# ----------------------------------------------------------------------------------------------------------------
# simulated raters with known preference rates


SIMULATIONS = [  # (seed, P(prefer "ours") per question)
    (0, {"frame": 0.5, "video": 0.75, "alignment": 0.25}),
    (1, {"frame": 0.73, "video": 0.5, "alignment": 0.9}),
    (2, {"frame": 0.3, "video": 0.6, "alignment": 0.5}),
    (3, {"frame": 0.5, "video": 0.5, "alignment": 0.5}),
]


def _simulate(tmp_path, seed: int, rates: dict[str, float]) -> tuple[dict, Counter]:
    """6 raters × 30 pairs each prefer "ours" with a known probability per question and pass the attention checks,
    answering through the HTTP API where they see only sides (the simulation looks the methods up in the file)."""
    store = make_study(tmp_path / f"s{seed}", StudyConfig(raters=6, per_rater=30, attention_rate=0.05, seed=seed),
                       faces=10)  # 3 prompts × 10 faces = 30 pairs
    sides = item_sides(store)
    rng = random.Random(1000 + seed)
    sent = Counter()
    with _client(store) as client:
        for _, token in store.rater_tokens():
            state = client.get(f"/api/r/{token}/state").json()
            while state["item"] is not None:
                kind, left, right, expected = sides[state["item"]["id"]]
                if kind == "check":
                    answer = {q: expected for q in QS}
                else:
                    answer = {}
                    for q in QS:
                        want = "ours" if rng.random() < rates[q] else "styleclip"
                        answer[q] = "left" if left == want else "right"
                        sent[q] += want == "ours"
                r = client.post(f"/api/r/{token}/answer", json={"item": state["item"]["id"], **answer})
                assert r.status_code == 200 and r.json()["saved"] is True
                state = r.json()["state"]
            assert state["answered"] == state["total"] == 32
    return {level: build_report(store, level) for level in (0.95, 0.999)}, sent


def test_simulated_raters_are_recovered_within_the_reported_intervals(tmp_path):
    """A 95% interval misses the true rate 5% of the time: over 4 seeds × 3 questions (0.6 misses expected) at most
    2 may miss (P(more) ≈ 2% if the intervals are right), and none may miss its 99.9% interval."""
    misses = []
    for seed, rates in SIMULATIONS:
        reports, sent = _simulate(tmp_path, seed, rates)
        rep = reports[0.95]
        assert rep["study"]["judgments"] == 6 * 30 and not rep["study"]["raters_excluded"]
        for q in QS:
            o, wide = rep["overall"][q], reports[0.999]["overall"][q]
            assert o["a"]["k"] == sent[q] and o["n"] == 180  # what was sent is what is counted
            assert o["a"]["k"] + o["b"]["k"] == 180 and o["b"]["low"] == pytest.approx(1 - o["a"]["high"])
            if not o["a"]["low"] < rates[q] < o["a"]["high"]:
                misses.append((seed, q, rates[q], o["a"]))
            assert wide["a"]["low"] < rates[q] < wide["a"]["high"], (seed, q, rates[q], wide["a"])
            if abs(rates[q] - 0.5) >= 0.2:
                assert o["p_value"] < 1e-4, (seed, q, o)  # a real preference is found
        assert set(rep["per_prompt"]) == {"smiling", "crying", "angry"}
        for prefs in rep["per_prompt"].values():  # per prompt: a third of the judgments, wider intervals
            assert prefs["frame"]["n"] == 60 and prefs["frame"]["a"]["high"] - prefs["frame"]["a"]["low"] > \
                rep["overall"]["frame"]["a"]["high"] - rep["overall"]["frame"]["a"]["low"]
        assert all(r["preferences"]["video"]["n"] == 30 for r in rep["per_rater"].values())
        for q in QS:  # independent simulated raters agree only by chance: Fleiss' κ near 0
            ag = rep["agreement"][q]
            assert ag["raters_per_subject"] == 6 and ag["subjects"] == 30 and abs(ag["kappa"]) < 0.15, ag
    assert len(misses) <= 2, misses


# ----------------------------------------------------------------------------------------------------------------
# tokens


def test_a_token_sees_and_answers_only_its_own_pairs(tmp_path):
    store = make_study(tmp_path, StudyConfig(raters=2, per_rater=5))
    (_, ta), (_, tb) = store.rater_tokens()
    admin = store.meta["admin_token"]
    with _client(store) as client:
        sa, sb = (client.get(f"/api/r/{t}/state").json() for t in (ta, tb))
        mine, theirs = sa["item"]["id"], sb["item"]["id"]
        assert "ours" not in str(sa) and "styleclip" not in str(sa)  # blind: no method in what a rater gets
        r = client.get(f"/r/{ta}")
        assert r.status_code == 200 and "<video" in r.text
        page = httpx.URL(f"http://testserver/r/{ta}")
        assert client.get(str(page.join(sa["item"]["left"]))).content == b"placeholder"
        answer = {"frame": "left", "video": "left", "alignment": "right"}
        for method, url, kw in [
            ("GET", f"/media/{ta}/{theirs}/left", {}),
            ("GET", f"/media/{ta}/{theirs}/right", {}),
            ("GET", f"/media/{ta}/{mine}/../{theirs}/left", {}),
            ("GET", f"/media/{ta}/{mine}/top", {}),
            ("GET", f"/media/{ta}/{2 ** 70}/left", {}),
            ("POST", f"/api/r/{ta}/answer", {"json": {"item": 2 ** 70, **answer}}),
            ("POST", f"/api/r/{ta}/answer", {"json": {"item": theirs, **answer}}),
            ("GET", "/api/r/nobody/state", {}),
            ("GET", "/r/nobody", {}),
            ("GET", f"/media/nobody/{mine}/left", {}),
            ("GET", f"/admin/{ta}", {}),
            ("GET", f"/api/admin/{ta}/progress", {}),
            ("GET", f"/admin/{ta}/answers.csv", {}),
        ]:
            r = client.request(method, url, **kw)
            assert r.status_code == 404, (method, url, r.status_code)
        assert store.counts()["answers"] == 0
        for body in ({"item": mine, "frame": "left"}, {"item": mine, **answer, "video": "none"},
                     {"item": str(mine), **answer}, {"item": True, **answer}, [1, 2]):
            assert client.post(f"/api/r/{ta}/answer", json=body).status_code == 422
        assert client.post(f"/api/r/{ta}/answer", content=b"{not json").status_code == 422
        r = client.post(f"/api/r/{ta}/answer", json={"item": mine, **answer})
        assert r.status_code == 200 and r.json()["saved"] and r.json()["state"]["answered"] == 1
        r = client.post(f"/api/r/{ta}/answer", json={"item": mine, **answer})
        assert r.status_code == 200 and r.json()["saved"] is False  # a double submit counts once
        assert client.get(f"/api/r/{tb}/state").json()["answered"] == 0
        # the admin token sees progress and the answers, with the methods behind the sides
        prog = client.get(f"/api/admin/{admin}/progress").json()
        assert [x["answered"] for x in prog["raters"]] == [1, 0] and prog["counts"]["answers"] == 1
        assert client.get(f"/admin/{admin}").status_code == 200
        csv_text = client.get(f"/admin/{admin}/answers.csv").text
        header, row = csv_text.strip().split("\n")
        assert header.startswith("rater,position,kind,pair,prompt,face,seed,left_method,right_method")
        kind, left, right, _ = item_sides(store)[mine]
        assert row.startswith("rater-1,1,") and f",{left},{right}," in row and f",{left},{left},{right}," in row


# ----------------------------------------------------------------------------------------------------------------
# a real server: concurrency and SIGKILL


def _answers_in_file(db) -> dict[int, tuple[str, str, str]]:
    con = sqlite3.connect(db)
    try:
        return {r[0]: tuple(r[1:]) for r in con.execute("SELECT item_id, frame, video, alignment FROM answers")}
    finally:
        con.close()


def test_twenty_concurrent_raters_lose_nothing_and_duplicate_nothing(tmp_path):
    store = make_study(tmp_path, StudyConfig(raters=20, per_rater=8, attention_rate=0.1), faces=4)  # 12 pairs
    tokens = [t for _, t in store.rater_tokens()]
    sent: dict[int, tuple[str, str, str]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(tokens), timeout=60)

    def rater(i: int, token: str, base: str) -> None:
        rng = random.Random(i)
        try:
            with httpx.Client(base_url=base, timeout=60) as c:
                start.wait()
                state = c.get(f"/api/r/{token}/state").json()
                while state["item"] is not None:
                    item = state["item"]["id"]
                    answer = {q: rng.choice(["left", "right"]) for q in QS}
                    body = {"item": item, **answer}
                    replies = [c.post(f"/api/r/{token}/answer", json=body)]
                    if rng.random() < 0.3:  # a double submit, e.g. a double click
                        other = "left" if answer["frame"] == "right" else "right"
                        replies.append(c.post(f"/api/r/{token}/answer", json={**body, "frame": other}))
                    if any(r.status_code != 200 for r in replies):
                        errors.append(f"{token}: {[r.status_code for r in replies]}")
                        return
                    if [r.json()["saved"] for r in replies] != [True, False][:len(replies)]:
                        errors.append(f"{token}: saved flags {[r.json()['saved'] for r in replies]}")
                    with lock:
                        sent[item] = tuple(answer[q] for q in QS)
                    state = replies[-1].json()["state"]
        except Exception as exc:  # reported below
            errors.append(f"{token}: {type(exc).__name__}: {exc}")

    with Server(store.path) as server:
        threads = [threading.Thread(target=rater, args=(i, t, server.base)) for i, t in enumerate(tokens)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        server_log = server.errors()
    assert not errors, (errors[:3], server_log[-2000:])
    stored = _answers_in_file(store.path)
    assert len(sent) == 20 * 9 == store.counts()["items"]
    assert stored == sent  # every answer, the first of each double submit, nothing else
    assert all(p["answered"] == p["total"] == 9 for p in store.progress())


def test_sigkill_loses_no_committed_answer_and_the_study_resumes(tmp_path):
    store = make_study(tmp_path, StudyConfig(raters=4, per_rater=12, attention_rate=0.1), faces=4)
    tokens = [t for _, t in store.rater_tokens()]
    acknowledged: dict[int, tuple[str, str, str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def rater(token: str, base: str) -> None:
        rng = random.Random(token)
        with httpx.Client(base_url=base, timeout=10) as c:
            try:
                state = c.get(f"/api/r/{token}/state").json()
                while state["item"] is not None and not stop.is_set():
                    answer = {q: rng.choice(["left", "right"]) for q in QS}
                    r = c.post(f"/api/r/{token}/answer", json={"item": state["item"]["id"], **answer})
                    if r.status_code == 200 and r.json()["saved"]:
                        with lock:
                            acknowledged[state["item"]["id"]] = tuple(answer[q] for q in QS)
                    state = r.json()["state"]
            except httpx.TransportError:
                pass  # the server died under us: whatever was acknowledged must be stored

    server = Server(store.path)
    try:
        threads = [threading.Thread(target=rater, args=(t, server.base)) for t in tokens]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while True:  # kill while the raters are mid-study
            with lock:
                if len(acknowledged) >= 15:
                    break
            assert time.monotonic() < deadline and any(t.is_alive() for t in threads), server.errors()
            time.sleep(0.01)
        server.kill()
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        server.stop()
    total = store.counts()["items"]
    assert 15 <= len(acknowledged) < total
    stored = _answers_in_file(store.path)
    assert all(stored.get(k) == v for k, v in acknowledged.items())  # nothing acknowledged is lost
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()

    # restart on the same file: each rater resumes at its first unanswered item and finishes
    with Server(store.path) as server, httpx.Client(base_url=server.base, timeout=30) as c:
        for token in tokens:
            state = c.get(f"/api/r/{token}/state").json()
            assert state["answered"] == sum(1 for k in stored if k in _items_of(store, token))
            while state["item"] is not None:
                assert state["item"]["id"] not in stored
                state = c.post(f"/api/r/{token}/answer",
                               json={"item": state["item"]["id"], **{q: "left" for q in QS}}).json()["state"]
    final = _answers_in_file(store.path)
    assert len(final) == total and all(final[k] == v for k, v in stored.items())


def _items_of(store, token: str) -> set[int]:
    con = sqlite3.connect(store.path)
    try:
        return {r[0] for r in con.execute("SELECT i.id FROM items i JOIN raters r ON r.id = i.rater_id "
                                          "WHERE r.token = ?", (token,))}
    finally:
        con.close()

"""The study's SQLite file: the design, the rater tokens and the answers (nothing personal).

One file, WAL journal, ``PRAGMA user_version`` = :data:`SCHEMA_VERSION`. Every answer is one ``INSERT`` in its own
``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``: once the server has replied, the answer is on disk
and survives a killed server (or a power cut). ``answers.item_id`` is the primary key, so a second submit of the
same item is ignored (the first answer counts). Each thread keeps its own connection, so the store can be used from
any thread.

Tables: ``meta`` (key → JSON: the config, questions, source run, admin token), ``videos`` (paths relative to the
source run), ``pairs`` (same face and prompt, video of method A and of method B), ``raters`` (label, token),
``items`` (what a rater is shown, in order: a pair or an attention check, which video on which side),
``answers`` (one row per answered item: the side chosen for each question, UTC time).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import secrets
import sqlite3
import threading
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from faceanim.errors import FaceanimError
from faceanim.study.design import QUESTIONS, SIDES, TIE, EvaluateRun, Item, StudyConfig, VideoRef

SCHEMA_VERSION = 1
APPLICATION_ID = 0x46415354  # "FAST": marks the file as a faceanim study

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE videos (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, method TEXT NOT NULL, prompt TEXT NOT NULL,
    face INTEGER NOT NULL, seed INTEGER);
CREATE TABLE pairs (
    id INTEGER PRIMARY KEY, prompt TEXT NOT NULL, face INTEGER NOT NULL, seed INTEGER,
    video_a INTEGER NOT NULL REFERENCES videos(id), video_b INTEGER NOT NULL REFERENCES videos(id));
CREATE TABLE raters (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE, token TEXT NOT NULL UNIQUE);
CREATE TABLE items (
    id INTEGER PRIMARY KEY, rater_id INTEGER NOT NULL REFERENCES raters(id), position INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pair', 'check')), pair_id INTEGER REFERENCES pairs(id),
    prompt TEXT NOT NULL, left_video INTEGER NOT NULL REFERENCES videos(id),
    right_video INTEGER NOT NULL REFERENCES videos(id), expected TEXT CHECK (expected IN ('left', 'right')),
    UNIQUE (rater_id, position));
CREATE TABLE answers (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    frame TEXT NOT NULL CHECK (frame IN ('left', 'right', 'none')),
    video TEXT NOT NULL CHECK (video IN ('left', 'right', 'none')),
    alignment TEXT NOT NULL CHECK (alignment IN ('left', 'right', 'none')),
    answered_at TEXT NOT NULL);
"""


class NotFound(FaceanimError):
    """Unknown token, or an item that is not this token's (the two are not told apart)."""


class InvalidAnswer(FaceanimError):
    """An answer that misses a question or gives a value the study does not offer."""


def _item_id(item_id: int) -> int:
    """An item id as SQLite can hold it (anything else names no item)."""
    if type(item_id) is not int or not 0 <= item_id < 2 ** 63:
        raise NotFound("no such item")
    return item_id


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_study_path(path: str | os.PathLike, force: bool = False) -> Path:
    """``path`` can receive a new study file (checked before any work)."""
    dst = Path(path)
    if dst.exists() and not force:
        raise FaceanimError(f"{dst} already exists (use --force to replace it)")
    if dst.exists() and not dst.is_file():
        raise FaceanimError(f"{dst} exists and is not a file")
    if not dst.resolve().parent.is_dir():
        raise FaceanimError(f"-o: folder does not exist: {dst.parent}")
    return dst


def create_study(path: str | os.PathLike, run: EvaluateRun, cfg: StudyConfig, plan: list[list[Item]],
                 force: bool = False) -> "StudyStore":
    """Write a new study file (atomically: a failure leaves nothing behind). Returns the opened store."""
    dst = check_study_path(path, force)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with closing(sqlite3.connect(tmp, isolation_level=None)) as con:
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.executescript(SCHEMA)
            con.execute("BEGIN")
            meta = {
                "schema_version": SCHEMA_VERSION, "config": dataclasses.asdict(cfg),
                "questions": {k: {"column": c, "text": t} for k, (c, t) in QUESTIONS.items()},
                "exclusion_rule": cfg.exclusion_rule(), "source": str(run.root), "bundle": run.bundle,
                "fid": run.fid, "fid_features": run.fid_features, "created_at": _now(),
                "admin_token": secrets.token_urlsafe(24),
            }
            con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            video_ids: dict[str, int] = {}

            def vid(v: VideoRef) -> int:
                if v.path not in video_ids:
                    cur = con.execute("INSERT INTO videos (path, method, prompt, face, seed) VALUES (?, ?, ?, ?, ?)",
                                      (v.path, v.method, v.prompt, v.face, v.seed))
                    video_ids[v.path] = cur.lastrowid
                return video_ids[v.path]

            pair_ids = []
            for p in run.pairs:
                cur = con.execute("INSERT INTO pairs (prompt, face, seed, video_a, video_b) VALUES (?, ?, ?, ?, ?)",
                                  (p.prompt, p.face, p.seed, vid(p.a), vid(p.b)))
                pair_ids.append(cur.lastrowid)
            width = len(str(len(plan)))
            for r, items in enumerate(plan):
                cur = con.execute("INSERT INTO raters (label, token) VALUES (?, ?)",
                                  (f"rater-{r + 1:0{width}d}", secrets.token_urlsafe(18)))
                rater_id = cur.lastrowid
                con.executemany(
                    "INSERT INTO items (rater_id, position, kind, pair_id, prompt, left_video, right_video, expected)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(rater_id, pos, it.kind, None if it.pair is None else pair_ids[it.pair], it.prompt,
                      vid(it.left), vid(it.right), it.expected) for pos, it in enumerate(items)])
            con.execute("COMMIT")
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("PRAGMA journal_mode = WAL")  # stored in the file: every later connection uses WAL
        os.replace(tmp, dst)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
    return StudyStore(dst)


class StudyStore:
    """A study file. Methods take the rater's token; an unknown token or another rater's item raises NotFound."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._local = threading.local()  # one connection per thread, kept open (closing one checkpoints the WAL)
        if not self.path.is_file():
            raise FaceanimError(f"study file not found: {path}")
        try:
            with closing(sqlite3.connect(self.path)) as con:
                app, version = (con.execute("PRAGMA application_id").fetchone()[0],
                                con.execute("PRAGMA user_version").fetchone()[0])
                if app != APPLICATION_ID:
                    raise FaceanimError(f"{path} is not a faceanim study file")
                if version != SCHEMA_VERSION:
                    raise FaceanimError(f"{path} has study schema version {version}; this faceanim reads version "
                                        f"{SCHEMA_VERSION}")
                self.meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
        except sqlite3.DatabaseError as exc:
            raise FaceanimError(f"{path} is not a readable study file ({exc})") from None
        self.config = StudyConfig(**{**self.meta["config"], "methods": tuple(self.meta["config"]["methods"])})
        self.source = Path(self.meta["source"])
        self.choices = SIDES + ((TIE,) if self.config.allow_tie else ())

    # -- connections ---------------------------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (autocommit: every read sees the latest committed answers)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("PRAGMA synchronous = FULL")  # on disk before the reply, even through a power cut
            con.execute("PRAGMA busy_timeout = 30000")
            self._local.con = con
        yield con

    def _rater(self, con: sqlite3.Connection, token: str) -> sqlite3.Row:
        row = con.execute("SELECT id, label FROM raters WHERE token = ?", (str(token),)).fetchone()
        if row is None:
            raise NotFound("unknown token")
        return row

    # -- raters --------------------------------------------------------------------------------------------------

    def is_admin(self, token: str) -> bool:
        return hmac.compare_digest(str(token).encode(), self.meta["admin_token"].encode())

    def state(self, token: str) -> dict[str, Any]:
        """Progress and the next unanswered item of this rater (``item`` None when done)."""
        with self._connect() as con:
            rater = self._rater(con, token)
            total, done = con.execute(
                "SELECT COUNT(*), COUNT(a.item_id) FROM items i LEFT JOIN answers a ON a.item_id = i.id "
                "WHERE i.rater_id = ?", (rater["id"],)).fetchone()
            row = con.execute(
                "SELECT i.id, i.prompt FROM items i LEFT JOIN answers a ON a.item_id = i.id "
                "WHERE i.rater_id = ? AND a.item_id IS NULL ORDER BY i.position LIMIT 1", (rater["id"],)).fetchone()
        item = None if row is None else {"id": row["id"], "prompt": row["prompt"]}
        return {"rater": rater["label"], "answered": done, "total": total, "item": item}

    def submit(self, token: str, item_id: int, answer: dict[str, str]) -> bool:
        """Store this rater's answer to ``item_id``; True if stored, False if the item was already answered."""
        if not isinstance(answer, dict) or set(answer) != set(QUESTIONS):
            raise InvalidAnswer(f"answer every question: {', '.join(QUESTIONS)}")
        bad = [k for k, v in answer.items() if v not in self.choices]
        if bad:
            raise InvalidAnswer(f"{bad[0]}: choose one of {', '.join(self.choices)}")
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                rater = self._rater(con, token)
                if con.execute("SELECT 1 FROM items WHERE id = ? AND rater_id = ?",
                               (_item_id(item_id), rater["id"])).fetchone() is None:
                    raise NotFound("no such item for this token")
                cur = con.execute("INSERT INTO answers (item_id, frame, video, alignment, answered_at) "
                                  "VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id) DO NOTHING",
                                  (item_id, answer["frame"], answer["video"], answer["alignment"], _now()))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return cur.rowcount == 1

    def media(self, token: str, item_id: int, side: str) -> Path:
        """The video file shown on ``side`` of this rater's item."""
        if side not in SIDES:
            raise NotFound("no such side")
        column = "left_video" if side == "left" else "right_video"
        with self._connect() as con:
            rater = self._rater(con, token)
            row = con.execute(f"SELECT v.path FROM items i JOIN videos v ON v.id = i.{column} "
                              "WHERE i.id = ? AND i.rater_id = ?", (_item_id(item_id), rater["id"])).fetchone()
        if row is None:
            raise NotFound("no such item for this token")
        return self.source / row["path"]

    def missing_videos(self) -> list[str]:
        """Videos of the study that are not (any more) in the source run's folder."""
        with self._connect() as con:
            paths = [r["path"] for r in con.execute("SELECT path FROM videos")]
        return [p for p in paths if not (self.source / p).is_file()]

    # -- admin / report ------------------------------------------------------------------------------------------

    def progress(self) -> list[dict[str, Any]]:
        """Per rater: label, token, answered / total items, attention checks answered and passed, last answer."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT r.label, r.token, COUNT(i.id) AS total, COUNT(a.item_id) AS answered, "
                "SUM(i.kind = 'check' AND a.item_id IS NOT NULL) AS checks, "
                "SUM(i.kind = 'check' AND a.alignment = i.expected) AS passed, MAX(a.answered_at) AS last "
                "FROM raters r JOIN items i ON i.rater_id = r.id LEFT JOIN answers a ON a.item_id = i.id "
                "GROUP BY r.id ORDER BY r.id").fetchall()
        return [dict(r) for r in rows]

    def answers(self) -> list[dict[str, Any]]:
        """Every answer with what was shown: rater, position, kind, prompt, face, methods and sides, choices."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT r.label AS rater, i.position + 1 AS position, i.kind, i.pair_id AS pair, i.prompt, "
                "lv.face AS face, lv.seed AS seed, lv.method AS left_method, rv.method AS right_method, "
                "lv.prompt AS left_prompt, rv.prompt AS right_prompt, i.expected, "
                "a.frame, a.video, a.alignment, a.answered_at "
                "FROM answers a JOIN items i ON i.id = a.item_id JOIN raters r ON r.id = i.rater_id "
                "JOIN videos lv ON lv.id = i.left_video JOIN videos rv ON rv.id = i.right_video "
                "ORDER BY a.answered_at, a.item_id").fetchall()
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._connect() as con:
            return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("raters", "pairs", "items", "answers")}

    def rater_tokens(self) -> list[tuple[str, str]]:
        with self._connect() as con:
            return [(r["label"], r["token"]) for r in con.execute("SELECT label, token FROM raters ORDER BY id")]

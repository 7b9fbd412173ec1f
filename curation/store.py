"""LabelStore: every example, vote and change, in one SQLite file in WAL mode.

Current label rule: the latest adjudication vote; else the majority of the
reviewers' votes (each reviewer's latest vote counts once, "unsure" does not
count, a tie keeps the original); else the original label. The rule itself is
``curation.labels.label_state``; the store keeps its result next to each
example (current_label, n_votes, disagree, ...) so that pages can filter on it,
and recomputes it in the same transaction as every vote or undo.

Nothing is ever lost: every write is one transaction (BEGIN IMMEDIATE, with a
busy timeout so concurrent writers queue instead of failing); votes are never
deleted (an undo marks a vote retracted); examples are never deleted or
rewritten; the events table is append-only. Triggers enforce all three.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from curation.agreement import AgreementSummary, agreement_summary
from curation.filters import ExampleFilter, Queue, queue_filter
from curation.labels import BENIGN, INJECTION, UNSURE, Vote, label_state, latest_per_reviewer, text_hash
from curation.snapshots import SnapshotInfo, SnapshotRow, delete_snapshot, list_snapshots, write_snapshot
from curation.sources import MAX_TEXT_CHARS, Prepared, Progress, no_progress, text_problem
from runner.catalog import data_lock, runs_using

DB_NAME = "labels.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30
"""SQLite's busy timeout: how long a writer waits for another's transaction before giving up."""
TEXT_PREVIEW_CHARS = 300
MAX_NOTE_CHARS = 2_000
MAX_REVIEWER_CHARS = 100
DETECT_SOURCE = "detect"
_IMPORT_BATCH = 5_000
MMAP_BYTES = 256 * 1024 * 1024
"""Connections read the file through one shared memory map instead of each filling its own page cache."""

_SCHEMA = f"""
-- An example's identity: its exact text, and the hash on which exact duplicates collide.
CREATE TABLE IF NOT EXISTS texts (
    id INTEGER PRIMARY KEY,
    text_hash TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL CHECK (length(trim(text)) > 0 AND length(text) <= {MAX_TEXT_CHARS})
);
CREATE VIRTUAL TABLE IF NOT EXISTS texts_fts USING fts5 (text, content='texts', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS texts_fts_insert AFTER INSERT ON texts BEGIN
    INSERT INTO texts_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS texts_keep BEFORE DELETE ON texts BEGIN
    SELECT RAISE(ABORT, 'examples are never deleted');
END;
CREATE TRIGGER IF NOT EXISTS texts_frozen BEFORE UPDATE ON texts BEGIN
    SELECT RAISE(ABORT, 'an example''s text never changes');
END;

-- The rest of an example, kept apart from the texts so that filtering and counting read narrow rows.
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY REFERENCES texts (id),
    split TEXT NOT NULL CHECK (length(split) > 0),
    original_label INTEGER CHECK (original_label IN (0, 1)),
    source TEXT NOT NULL,
    added_at REAL NOT NULL,
    -- Derived from the votes by curation.labels.label_state, refreshed with every vote:
    current_label INTEGER CHECK (current_label IN (0, 1)),
    n_votes INTEGER NOT NULL DEFAULT 0,
    n_reviewers INTEGER NOT NULL DEFAULT 0,
    disagree INTEGER NOT NULL DEFAULT 0,
    adjudicated INTEGER NOT NULL DEFAULT 0,
    -- Sent to review from the Detect tab:
    flagged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS examples_disagree ON examples (disagree, adjudicated);
CREATE TRIGGER IF NOT EXISTS examples_keep BEFORE DELETE ON examples BEGIN
    SELECT RAISE(ABORT, 'examples are never deleted');
END;
CREATE TRIGGER IF NOT EXISTS examples_frozen BEFORE UPDATE OF id, split, original_label, source ON examples BEGIN
    SELECT RAISE(ABORT, 'an example''s split, source and original label never change');
END;

CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    example_id INTEGER NOT NULL REFERENCES examples (id),
    reviewer TEXT NOT NULL CHECK (length(reviewer) > 0),
    label INTEGER NOT NULL CHECK (label IN ({UNSURE}, {BENIGN}, {INJECTION})),
    note TEXT NOT NULL DEFAULT '',
    is_adjudication INTEGER NOT NULL DEFAULT 0 CHECK (is_adjudication = 0 OR label != {UNSURE}),
    cast_at REAL NOT NULL,
    retracted_at REAL
);
CREATE INDEX IF NOT EXISTS votes_example ON votes (example_id);
CREATE INDEX IF NOT EXISTS votes_reviewer ON votes (reviewer, retracted_at);
CREATE TRIGGER IF NOT EXISTS votes_keep BEFORE DELETE ON votes BEGIN
    SELECT RAISE(ABORT, 'votes are never deleted; an undo retracts them');
END;
CREATE TRIGGER IF NOT EXISTS votes_frozen BEFORE UPDATE ON votes
WHEN OLD.retracted_at IS NOT NULL OR NEW.example_id IS NOT OLD.example_id OR NEW.reviewer IS NOT OLD.reviewer
  OR NEW.label IS NOT OLD.label OR NEW.note IS NOT OLD.note OR NEW.is_adjudication IS NOT OLD.is_adjudication
  OR NEW.cast_at IS NOT OLD.cast_at BEGIN
    SELECT RAISE(ABORT, 'a vote stays as cast; an undo may only retract it once');
END;

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    example_id INTEGER REFERENCES examples (id),
    from_label INTEGER,
    to_label INTEGER,
    detail TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS events_example ON events (example_id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY,
    text_hash TEXT NOT NULL,
    run_id TEXT NOT NULL,
    p_injection REAL NOT NULL CHECK (p_injection BETWEEN 0 AND 1),
    scored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_text ON scores (text_hash, scored_at);

-- Label audits (python -m ft.audit), recorded once when first reviewed: the suspects queue is a join over these.
CREATE TABLE IF NOT EXISTS audits (
    id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    started REAL NOT NULL,
    recorded_at REAL NOT NULL
);
-- Each audited text once, at its best rank (rank 1 = most likely mislabelled); texts need not be in the store.
CREATE TABLE IF NOT EXISTS audit_rows (
    audit_id TEXT NOT NULL REFERENCES audits (id),
    text_hash TEXT NOT NULL,
    rank INTEGER NOT NULL,
    p_injection REAL NOT NULL,
    audited_label INTEGER,
    label_quality REAL,
    is_issue INTEGER NOT NULL,
    PRIMARY KEY (audit_id, text_hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_rows_rank ON audit_rows (audit_id, rank);
"""

_EXAMPLE_COLUMNS = (
    "e.id, e.split, {text}, t.text_hash, e.original_label, e.source, e.added_at, e.current_label, "
    "e.n_votes, e.n_reviewers, e.disagree, e.adjudicated, e.flagged"
)
_VOTE_COLUMNS = "id, example_id, reviewer, label, note, is_adjudication, cast_at, retracted_at"
_EVENT_COLUMNS = "id, at, actor, action, example_id, from_label, to_label, detail"
_SUSPECT_COLUMNS = (
    "e.id, a.rank, a.p_injection, a.audited_label, e.current_label, a.label_quality, a.is_issue, "
    "e.split, e.n_votes, t.text"
)
_SUSPECTS = (
    "FROM audit_rows a JOIN texts t ON t.text_hash = a.text_hash JOIN examples e ON e.id = t.id "
    "WHERE a.audit_id = :audit"
)
"""An audit's stored examples; its indexes drive the join from the audit's rows in rank order."""
_NOT_REVIEWED = (
    " AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.example_id = e.id AND v.retracted_at IS NULL "
    "AND v.cast_at >= (SELECT started FROM audits WHERE id = :audit))"
)


@dataclass(frozen=True)
class Example:
    """An example and its label state; on pages ``text`` is cut to TEXT_PREVIEW_CHARS."""

    id: int
    split: str
    text: str
    text_hash: str
    original_label: int | None
    source: str
    added_at: float
    current_label: int | None
    n_votes: int
    n_reviewers: int
    disagree: bool
    adjudicated: bool
    flagged: bool


@dataclass(frozen=True)
class VoteRecord:
    id: int
    example_id: int
    reviewer: str
    label: int
    note: str
    adjudication: bool
    cast_at: float
    retracted_at: float | None


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    actor: str
    action: str
    example_id: int | None
    from_label: int | None
    to_label: int | None
    detail: dict


@dataclass(frozen=True)
class Score:
    run_id: str
    p_injection: float
    scored_at: float


@dataclass(frozen=True)
class Page:
    rows: list[Example]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class ImportResult:
    source: str
    added: int
    already_present: int
    duplicates: int
    conflicting_duplicates: int


@dataclass(frozen=True)
class Totals:
    examples: int
    reviewed: int
    changed: int
    disagreements: int
    open_disagreements: int
    flagged: int


@dataclass(frozen=True)
class ReviewerCount:
    reviewer: str
    votes: int
    injection: int
    benign: int
    unsure: int
    adjudications: int
    items: int


@dataclass(frozen=True)
class AuditInfo:
    """A label audit as the store recorded it."""

    id: str
    method: str
    """``cross-fit K=<k>`` (out-of-sample) or ``in-sample (biased)``."""
    started: float
    """When the audit read the labels: votes cast since then take an example out of its suspects queue."""

    @property
    def biased(self) -> bool:
        return self.method.startswith("in-sample")


@dataclass(frozen=True)
class AuditRow:
    """One audited text, as ``suspects.parquet`` ranks it."""

    text_hash: str
    rank: int
    p_injection: float
    audited_label: int | None
    label_quality: float | None
    is_issue: bool


@dataclass(frozen=True)
class Suspect:
    """A stored example in an audit's suspects queue."""

    example_id: int
    rank: int
    p_injection: float
    audited_label: int | None
    current_label: int | None
    label_quality: float | None
    is_issue: bool
    split: str
    n_votes: int
    text: str


@dataclass(frozen=True)
class SuspectsView:
    """What the review panel shows of a suspects queue: its length, its head, and the shown item's row."""

    left: int
    top: list[Suspect]
    shown: Suspect | None


@dataclass(frozen=True)
class ReviewQueue:
    """Where the review panel's next item comes from: one of the store's queues, or (``audit_id`` given) that
    audit's suspects queue."""

    queue: Queue
    reviewer: str
    browse_filter: ExampleFilter = field(default_factory=ExampleFilter)
    audit_id: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    """Everything the review panel shows of one example, read in one transaction."""

    example: Example | None
    score: Score | None
    votes: list[VoteRecord]
    history: list[Event]
    totals: Totals
    reviewer_votes: int
    """The standing votes of the reviewer looking at it."""


class SnapshotInUse(ValueError):
    """A snapshot that a run or audit names as its data: deleting it would take that run's labels away."""


def _example(row: tuple) -> Example:
    return Example(*row[:10], bool(row[10]), bool(row[11]), bool(row[12]))


def _vote(row: tuple) -> VoteRecord:
    return VoteRecord(*row[:5], bool(row[5]), *row[6:])


def _event(row: tuple) -> Event:
    return Event(*row[:7], json.loads(row[7]))


def _suspect(row: tuple) -> Suspect:
    return Suspect(*row[:6], bool(row[6]), *row[7:])


def _clean_reviewer(reviewer: str) -> str:
    name = (reviewer or "").strip()
    if not name:
        raise ValueError("a reviewer name is needed")
    if len(name) > MAX_REVIEWER_CHARS:
        raise ValueError(f"a reviewer name has at most {MAX_REVIEWER_CHARS} characters")
    return name


def _check_vote(label: int, note: str, adjudication: bool) -> None:
    if label not in (BENIGN, INJECTION, UNSURE):
        raise ValueError(f"a vote is {INJECTION} (injection), {BENIGN} (benign) or {UNSURE} (unsure), not {label!r}")
    if adjudication and label == UNSURE:
        raise ValueError("an adjudication must say injection or benign")
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"a note has at most {MAX_NOTE_CHARS} characters")


def _insert_scores(con: sqlite3.Connection, run_id: str, scored: Iterable[tuple[str, float]]) -> None:
    """``run_id``'s P(injection) for each (text hash, probability), scored now."""
    now = time.time()
    con.executemany(
        "INSERT INTO scores (text_hash, run_id, p_injection, scored_at) VALUES (?, ?, ?, ?)",
        [(hashed, run_id, p, now) for hashed, p in scored],
    )


class LabelStore:
    """The label database of one data directory; safe to share between threads and processes."""

    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.snapshots_dir = self.data_dir / "snapshots"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        con = self._connection()
        con.execute("PRAGMA journal_mode = WAL")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer version of the app (schema {version})")
        try:
            con.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    # -- connections and transactions -------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
            con.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        con = self._connection()
        con.execute(begin)
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _write(self):
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy
        timeout), so concurrent writers queue instead of failing half-way."""
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self):
        """One read transaction: several queries see the same state while others write."""
        return self._transaction("BEGIN")

    def close(self) -> None:
        with self._lock:
            for con in self._connections:
                con.close()
            self._connections.clear()
        self._local = threading.local()

    def integrity_check(self) -> str:
        """SQLite's verdict on the file: 'ok' when sound."""
        return self._connection().execute("PRAGMA integrity_check").fetchone()[0]

    # -- writes -------------------------------------------------------------------------------------

    @staticmethod
    def _log(
        con: sqlite3.Connection,
        actor: str,
        action: str,
        example_id: int | None = None,
        from_label: int | None = None,
        to_label: int | None = None,
        **detail: object,
    ) -> None:
        con.execute(
            "INSERT INTO events (at, actor, action, example_id, from_label, to_label, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), actor, action, example_id, from_label, to_label, json.dumps(detail)),
        )

    def import_examples(
        self, prepared: Prepared, actor: str = "import", progress: Progress = no_progress
    ) -> ImportResult:
        """Add prepared rows in one transaction; texts already stored are left alone (re-importing is a no-op)."""
        with self._write() as con:
            con.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staging (split TEXT, text TEXT, text_hash TEXT, label INTEGER)"
            )
            con.execute("DELETE FROM staging")
            for start in range(0, len(prepared.rows), _IMPORT_BATCH):
                progress(0.5 * start / len(prepared.rows), f"Writing {prepared.source}")
                con.executemany("INSERT INTO staging VALUES (?, ?, ?, ?)", prepared.rows[start : start + _IMPORT_BATCH])
            progress(0.5, f"Indexing {prepared.source}")
            top = con.execute("SELECT coalesce(max(id), 0) FROM texts").fetchone()[0]
            added = con.execute(
                "INSERT INTO texts (text_hash, text) SELECT text_hash, text FROM staging "
                "WHERE true ORDER BY rowid ON CONFLICT (text_hash) DO NOTHING"
            ).rowcount
            con.execute(
                "INSERT INTO examples (id, split, original_label, current_label, source, added_at) "
                "SELECT t.id, s.split, s.label, s.label, ?, ? FROM staging s "
                "JOIN texts t ON t.text_hash = s.text_hash WHERE t.id > ?",
                (prepared.source, time.time(), top),
            )
            con.execute("DELETE FROM staging")
            result = ImportResult(
                prepared.source, added, len(prepared.rows) - added, prepared.duplicates, prepared.conflicting_duplicates
            )
            self._log(
                con,
                actor,
                "import",
                source=prepared.source,
                added=added,
                already_present=result.already_present,
                duplicates=prepared.duplicates,
            )
        progress(1.0, f"Imported {prepared.source}")
        return result

    def _refresh(self, con: sqlite3.Connection, example_id: int) -> int | None:
        """Recompute the example's label state from its counted votes; its new current label."""
        original = con.execute("SELECT original_label FROM examples WHERE id = ?", (example_id,)).fetchone()[0]
        votes = [
            Vote(reviewer, label, bool(adjudication), order)
            for reviewer, label, adjudication, order in con.execute(
                "SELECT reviewer, label, is_adjudication, id FROM votes WHERE example_id = ? AND retracted_at IS NULL",
                (example_id,),
            )
        ]
        state = label_state(original, votes)
        con.execute(
            "UPDATE examples SET current_label = ?, n_votes = ?, n_reviewers = ?, disagree = ?, "
            "adjudicated = ? WHERE id = ?",
            (state.current, state.n_votes, state.n_reviewers, state.disagree, state.adjudicated, example_id),
        )
        return state.current

    def _current(self, con: sqlite3.Connection, example_id: int) -> int | None:
        row = con.execute("SELECT current_label FROM examples WHERE id = ?", (example_id,)).fetchone()
        if row is None:
            raise KeyError(f"no example {example_id}")
        return row[0]

    def _insert_vote(
        self, con: sqlite3.Connection, example_id: int, reviewer: str, label: int, note: str, adjudication: bool
    ) -> int:
        before = self._current(con, example_id)
        vote_id = con.execute(
            "INSERT INTO votes (example_id, reviewer, label, note, is_adjudication, cast_at) VALUES (?, ?, ?, ?, ?, ?)",
            (example_id, reviewer, label, note, adjudication, time.time()),
        ).lastrowid
        after = self._refresh(con, example_id)
        self._log(
            con, reviewer, "vote", example_id, before, after, vote_id=vote_id, label=label, adjudication=adjudication
        )
        return vote_id

    def cast_vote(
        self, example_id: int, reviewer: str, label: int, note: str = "", adjudication: bool = False
    ) -> VoteRecord:
        """Record one vote (INJECTION, BENIGN or UNSURE) and update the example's current label."""
        reviewer = _clean_reviewer(reviewer)
        note = note.strip()
        _check_vote(label, note, adjudication)
        with self._write() as con:
            vote_id = self._insert_vote(con, example_id, reviewer, label, note, adjudication)
        return self.vote(vote_id)

    def undo_last_vote(self, reviewer: str) -> VoteRecord | None:
        """Retract the reviewer's latest standing vote (it stays in the history); None if there is none."""
        reviewer = _clean_reviewer(reviewer)
        with self._write() as con:
            row = con.execute(
                "SELECT id, example_id FROM votes WHERE reviewer = ? AND retracted_at IS NULL ORDER BY id DESC LIMIT 1",
                (reviewer,),
            ).fetchone()
            if row is None:
                return None
            vote_id, example_id = row
            before = self._current(con, example_id)
            con.execute("UPDATE votes SET retracted_at = ? WHERE id = ?", (time.time(), vote_id))
            after = self._refresh(con, example_id)
            self._log(con, reviewer, "undo", example_id, before, after, vote_id=vote_id)
        return self.vote(vote_id)

    def send_to_review(
        self, text: str, reviewer: str, label: int | None = None, note: str = "", split: str = "train"
    ) -> int:
        """Put a text in front of reviewers (the Detect tab's "send to review"); the example's id.

        A new text becomes an example with source "detect" and no original label; a text already
        stored is flagged instead. Either way the example is marked flagged, and ``label`` (when
        given) is recorded as the reviewer's vote.
        """
        reviewer = _clean_reviewer(reviewer)
        problem = text_problem(text)
        if problem:
            raise ValueError(problem)
        if label is not None:
            _check_vote(label, note.strip(), False)
        digest = text_hash(text)
        with self._write() as con:
            row = con.execute("SELECT id FROM texts WHERE text_hash = ?", (digest,)).fetchone()
            if row:
                example_id = row[0]
                con.execute("UPDATE examples SET flagged = 1 WHERE id = ?", (example_id,))
                self._log(con, reviewer, "flag", example_id)
            else:
                example_id = con.execute("INSERT INTO texts (text_hash, text) VALUES (?, ?)", (digest, text)).lastrowid
                con.execute(
                    "INSERT INTO examples (id, split, source, added_at, flagged) VALUES (?, ?, ?, ?, 1)",
                    (example_id, split, DETECT_SOURCE, time.time()),
                )
                self._log(con, reviewer, "add", example_id, source=DETECT_SOURCE)
            if label is not None:
                self._insert_vote(con, example_id, reviewer, label, note.strip(), False)
        return example_id

    def record_scores(self, run_id: str, scored: Iterable[tuple[str, float]]) -> int:
        """Store a run's P(injection) for each (text, probability); the texts need not be in the store yet."""
        rows = [(text_hash(text), float(p)) for text, p in scored]
        with self._write() as con:
            _insert_scores(con, run_id, rows)
        return len(rows)

    def record_audit(self, audit: AuditInfo, rows: Sequence[AuditRow]) -> int:
        """Record a label audit once, in one transaction: its rows (each text at its best rank) for the suspects
        queue, and every row's P(injection) in the scores table under the audit id. Returns the scores
        recorded: 0 when the audit was recorded already, or its scores were (by an older version of the app)."""
        ranked = sorted(rows, key=lambda r: r.rank)
        with self._write() as con:
            if con.execute("SELECT 1 FROM audits WHERE id = ?", (audit.id,)).fetchone():
                return 0
            con.execute(
                "INSERT INTO audits (id, method, started, recorded_at) VALUES (?, ?, ?, ?)",
                (audit.id, audit.method, audit.started, time.time()),
            )
            con.executemany(
                "INSERT INTO audit_rows (audit_id, text_hash, rank, p_injection, audited_label, "
                "label_quality, is_issue) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (audit.id, r.text_hash, r.rank, r.p_injection, r.audited_label, r.label_quality, r.is_issue)
                    for r in ranked
                ],
            )
            if (
                not ranked
                or con.execute(
                    "SELECT 1 FROM scores WHERE text_hash = ? AND run_id = ? LIMIT 1", (ranked[0].text_hash, audit.id)
                ).fetchone()
            ):
                return 0
            _insert_scores(con, audit.id, [(r.text_hash, r.p_injection) for r in ranked])
        return len(ranked)

    def cast_vote_and_next(
        self, example_id: int, label: int, note: str, adjudication: bool, queue: ReviewQueue
    ) -> int | None:
        """Record the queue's reviewer's vote (as cast_vote) and find the queue's next item, in one transaction."""
        reviewer = _clean_reviewer(queue.reviewer)
        note = note.strip()
        _check_vote(label, note, adjudication)
        with self._write() as con:
            self._insert_vote(con, example_id, reviewer, label, note, adjudication)
            return self._next_item(con, queue, example_id)

    def create_snapshot(self, actor: str) -> SnapshotInfo:
        """Freeze the current labels into ``snapshots/<id>/`` (see curation.snapshots for the contract).

        Examples without a current label (sent from Detect with a tie or no vote) are left out and counted.
        """
        with self._read() as con:
            rows = [
                SnapshotRow(*row)
                for row in con.execute(
                    "SELECT e.id, e.split, t.text, t.text_hash, e.current_label, e.original_label "
                    "FROM examples e JOIN texts t ON t.id = e.id WHERE e.current_label IS NOT NULL ORDER BY e.id"
                )
            ]
            excluded = con.execute("SELECT count(*) FROM examples WHERE current_label IS NULL").fetchone()[0]
            reviewers = dict(
                con.execute("SELECT reviewer, count(*) FROM votes WHERE retracted_at IS NULL GROUP BY reviewer")
            )
        snapshot = write_snapshot(self.snapshots_dir, rows, excluded=excluded, reviewers=reviewers, actor=actor)
        with self._write() as con:
            self._log(con, actor, "snapshot", snapshot_id=snapshot.id, content_hash=snapshot.manifest["content_hash"])
        return snapshot

    def delete_snapshot(self, snapshot_id: str, actor: str, runs_dir: Path | str | None = None) -> None:
        """Remove a snapshot's folder and note who did it in the audit trail (KeyError if there is none).

        With ``runs_dir``: refused (SnapshotInUse) while a run or audit there names the snapshot as its data, so
        every run keeps the labels it was trained on; the check and the removal hold the runs' data lock, so
        no run can start on the snapshot in between.
        """
        if runs_dir is None:
            return self._delete_snapshot(snapshot_id, actor)
        with data_lock(runs_dir):
            chosen = next((s for s in self.list_snapshots() if s.id == snapshot_id), None)
            users = runs_using(runs_dir, chosen.path) if chosen else []
            if users:
                raise SnapshotInUse(f"{snapshot_id} is the data of {', '.join(users)}: delete those runs first.")
            self._delete_snapshot(snapshot_id, actor)

    def _delete_snapshot(self, snapshot_id: str, actor: str) -> None:
        gone = delete_snapshot(self.snapshots_dir, snapshot_id)
        with self._write() as con:
            self._log(con, actor, "delete_snapshot", snapshot_id=gone.id, content_hash=gone.manifest["content_hash"])

    # -- reads ----------------------------------------------------------------------------------------

    def example(self, example_id: int) -> Example | None:
        row = (
            self._connection()
            .execute(
                f"SELECT {_EXAMPLE_COLUMNS.format(text='t.text')} FROM examples e JOIN texts t ON t.id = e.id "
                "WHERE e.id = ?",
                (example_id,),
            )
            .fetchone()
        )
        return _example(row) if row else None

    def page(self, browse_filter: ExampleFilter = ExampleFilter(), page: int = 0, page_size: int = 50) -> Page:
        """One page of examples matching the filter, in id order, and how many match in all."""
        where, params = browse_filter.where()
        columns = _EXAMPLE_COLUMNS.format(text=f"substr(t.text, 1, {TEXT_PREVIEW_CHARS})")
        with self._read() as con:
            total = con.execute(f"SELECT count(*) FROM examples e WHERE {where}", params).fetchone()[0]
            rows = con.execute(
                f"SELECT {columns} FROM examples e JOIN texts t ON t.id = e.id WHERE e.id IN "
                f"(SELECT e.id FROM examples e WHERE {where} ORDER BY e.id LIMIT ? OFFSET ?) ORDER BY e.id",
                [*params, page_size, page * page_size],
            ).fetchall()
        return Page([_example(r) for r in rows], total, page, page_size)

    def _queue_start(self, reviewer: str) -> int:
        """Where a reviewer's unreviewed queue begins: spread by name, so a team does not label in lockstep."""
        top = self._connection().execute("SELECT coalesce(max(id), 0) FROM examples").fetchone()[0]
        return int(hashlib.sha256(reviewer.encode()).hexdigest()[:8], 16) % (top or 1)

    def next_in_queue(
        self, queue: Queue, reviewer: str, after_id: int | None = None, browse_filter: ExampleFilter = ExampleFilter()
    ) -> int | None:
        """The next example id in the queue after ``after_id`` (wrapping around); None when it is empty.

        Queues: unreviewed (no votes yet), the browse filter's set, or open disagreements
        (reviewers' latest votes differ and no one has adjudicated).
        """
        return self.next_item(ReviewQueue(queue, reviewer, browse_filter), after_id)

    def next_item(self, queue: ReviewQueue, after_id: int | None = None) -> int | None:
        """The review queue's next example id after ``after_id`` (wrapping around); None when it is empty."""
        return self._next_item(self._connection(), queue, after_id)

    def _next_item(self, con: sqlite3.Connection, queue: ReviewQueue, after_id: int | None) -> int | None:
        if queue.queue is Queue.SUSPECTS:
            return self._next_suspect(con, queue.audit_id, after_id) if queue.audit_id else None
        where, params = queue_filter(queue.queue, queue.browse_filter)
        if after_id is None:
            after_id = self._queue_start(_clean_reviewer(queue.reviewer)) if queue.queue is Queue.UNREVIEWED else 0
        row = con.execute(
            f"SELECT e.id FROM examples e WHERE {where} AND e.id > ? ORDER BY e.id LIMIT 1", [*params, after_id]
        ).fetchone()
        row = row or con.execute(f"SELECT e.id FROM examples e WHERE {where} ORDER BY e.id LIMIT 1", params).fetchone()
        return row[0] if row else None

    @staticmethod
    def _suspects_where(issues_only: bool = False, exclude_reviewed: bool = True) -> str:
        """FROM and WHERE of an audit's suspects queue (parameter ``audit``)."""
        return _SUSPECTS + (" AND a.is_issue = 1" if issues_only else "") + (_NOT_REVIEWED if exclude_reviewed else "")

    def _next_suspect(
        self, con: sqlite3.Connection, audit_id: str, after_id: int | None, issues_only: bool = False
    ) -> int | None:
        where = self._suspects_where(issues_only)
        params = {"audit": audit_id, "after": after_id}
        row = None
        if after_id is not None:
            row = con.execute(
                f"SELECT e.id {where} AND a.rank > (SELECT a.rank {where} AND e.id = :after) ORDER BY a.rank LIMIT 1",
                params,
            ).fetchone()
        row = row or con.execute(f"SELECT e.id {where} ORDER BY a.rank LIMIT 1", params).fetchone()
        return row[0] if row else None

    def next_suspect(self, audit_id: str, after_id: int | None = None, issues_only: bool = False) -> int | None:
        """The head of the audit's suspects queue (examples with a standing vote cast since the audit started
        left out); with ``after_id`` still in the queue (a skipped item), the one after it, wrapping around."""
        return self._next_suspect(self._connection(), audit_id, after_id, issues_only)

    def suspects(
        self, audit_id: str, *, exclude_reviewed: bool = True, issues_only: bool = False, limit: int | None = None
    ) -> list[Suspect]:
        """The audit's stored examples in rank order (see next_suspect for ``exclude_reviewed``)."""
        where = self._suspects_where(issues_only, exclude_reviewed)
        return [
            _suspect(r)
            for r in self._connection().execute(
                f"SELECT {_SUSPECT_COLUMNS} {where} ORDER BY a.rank LIMIT :limit",
                {"audit": audit_id, "limit": -1 if limit is None else limit},
            )
        ]

    def suspects_view(self, audit_id: str, shown_id: int | None, top: int) -> SuspectsView:
        """The audit's suspects queue as the review panel shows it, read in one transaction."""
        where = self._suspects_where()
        params = {"audit": audit_id, "shown": shown_id, "limit": top}
        with self._read() as con:
            left = con.execute(f"SELECT count(*) {where}", params).fetchone()[0]
            head = [
                _suspect(r)
                for r in con.execute(f"SELECT {_SUSPECT_COLUMNS} {where} ORDER BY a.rank LIMIT :limit", params)
            ]
            shown = next((s for s in head if s.example_id == shown_id), None)
            if shown is None and shown_id is not None:
                row = con.execute(f"SELECT {_SUSPECT_COLUMNS} {where} AND e.id = :shown", params).fetchone()
                shown = _suspect(row) if row else None
        return SuspectsView(left, head, shown)

    def recorded_audit(self, audit_id: str) -> AuditInfo | None:
        row = self._connection().execute("SELECT id, method, started FROM audits WHERE id = ?", (audit_id,)).fetchone()
        return AuditInfo(*row) if row else None

    def review_item(self, example_id: int | None, reviewer: str) -> ReviewItem:
        """The example (None when there is none), its votes, history and latest score, the store's totals and the
        reviewer's standing votes, in one read transaction."""
        with self._read():
            example = self.example(example_id) if example_id is not None else None
            found = example is not None
            return ReviewItem(
                example,
                self.latest_score(example_id) if found else None,
                self.votes(example_id) if found else [],
                self.history(example_id) if found else [],
                self.totals(),
                self.standing_votes(reviewer),
            )

    def standing_votes(self, reviewer: str) -> int:
        """The reviewer's votes not retracted."""
        return (
            self._connection()
            .execute("SELECT count(*) FROM votes WHERE reviewer = ? AND retracted_at IS NULL", (reviewer,))
            .fetchone()[0]
        )

    def vote(self, vote_id: int) -> VoteRecord:
        return _vote(
            self._connection().execute(f"SELECT {_VOTE_COLUMNS} FROM votes WHERE id = ?", (vote_id,)).fetchone()
        )

    def votes(self, example_id: int) -> list[VoteRecord]:
        """Every vote on the example, retracted ones included, oldest first."""
        return [
            _vote(r)
            for r in self._connection().execute(
                f"SELECT {_VOTE_COLUMNS} FROM votes WHERE example_id = ? ORDER BY id", (example_id,)
            )
        ]

    def history(self, example_id: int) -> list[Event]:
        """The audit events about the example, oldest first."""
        return [
            _event(r)
            for r in self._connection().execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE example_id = ? ORDER BY id", (example_id,)
            )
        ]

    def events(self, limit: int = 100) -> list[Event]:
        """The latest audit events of the whole store, newest first."""
        return [
            _event(r)
            for r in self._connection().execute(
                f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT ?", (limit,)
            )
        ]

    def latest_score(self, example_id: int) -> Score | None:
        row = (
            self._connection()
            .execute(
                "SELECT s.run_id, s.p_injection, s.scored_at FROM scores s JOIN texts t ON t.text_hash = s.text_hash "
                "WHERE t.id = ? ORDER BY s.scored_at DESC, s.id DESC LIMIT 1",
                (example_id,),
            )
            .fetchone()
        )
        return Score(*row) if row else None

    def totals(self) -> Totals:
        row = (
            self._connection()
            .execute(
                "SELECT count(*), coalesce(sum(n_votes > 0), 0), "
                "coalesce(sum(original_label IS NOT NULL AND current_label IS NOT original_label), 0), "
                "coalesce(sum(disagree), 0), coalesce(sum(disagree AND NOT adjudicated), 0), coalesce(sum(flagged), 0) "
                "FROM examples"
            )
            .fetchone()
        )
        return Totals(*row)

    def splits(self) -> list[str]:
        return [r[0] for r in self._connection().execute("SELECT DISTINCT split FROM examples ORDER BY split")]

    def source_counts(self) -> dict[str, int]:
        """{source: examples}; the app tells people when only its demo data is loaded."""
        return dict(self._connection().execute("SELECT source, count(*) FROM examples GROUP BY source"))

    def reviewer_counts(self) -> list[ReviewerCount]:
        """Standing (not retracted) votes per reviewer, most active first."""
        return [
            ReviewerCount(*r)
            for r in self._connection().execute(
                f"SELECT reviewer, count(*), sum(label = {INJECTION}), sum(label = {BENIGN}), sum(label = {UNSURE}), "
                "sum(is_adjudication), count(DISTINCT example_id) FROM votes WHERE retracted_at IS NULL "
                "GROUP BY reviewer ORDER BY count(*) DESC, reviewer"
            )
        ]

    def reviewer_labels(self) -> dict[int, dict[str, int]]:
        """{example: {reviewer: latest decisive label}} for examples two or more reviewers voted on."""
        by_example: dict[int, list[Vote]] = {}
        for example_id, reviewer, label, order in self._connection().execute(
            "SELECT v.example_id, v.reviewer, v.label, v.id FROM votes v JOIN examples e ON e.id = v.example_id "
            "WHERE e.n_reviewers >= 2 AND v.retracted_at IS NULL"
        ):
            by_example.setdefault(example_id, []).append(Vote(reviewer, label, False, order))
        return {
            example_id: {r: label for r, label in latest_per_reviewer(votes).items() if label != UNSURE}
            for example_id, votes in by_example.items()
        }

    def agreement(self) -> AgreementSummary:
        """Percent agreement and Cohen's kappa (definitions in curation.agreement)."""
        return agreement_summary(self.reviewer_labels())

    def list_snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot of this data directory, newest first."""
        return list_snapshots(self.snapshots_dir)

"""The label database: its schema, its transactions and the append-only audit log, in one place.

One SQLite file in WAL mode per data directory. Nothing is ever lost:

- every write is one transaction (BEGIN IMMEDIATE, with a busy timeout so concurrent writers queue instead of
  failing half-way), and a read that needs several queries sees one state (BEGIN);
- examples are never deleted, and their text, split, source and original label never change;
- votes are never deleted (an undo marks a vote retracted, once);
- the events table is append-only, and ``Database._log`` is the one place that writes it.

Triggers in the schema enforce all of this, whatever code (or SQL shell) writes the file. The other modules of
curation (examples, votes, suspects, queues, snapshots, agreement) each add the SQL of one concern on top of
``Database``; ``curation.store.LabelStore`` is all of them together.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from curation.labels import BENIGN, INJECTION, UNSURE
from curation.sources import MAX_TEXT_CHARS

DB_NAME = "labels.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30
"""SQLite's busy timeout: how long a writer waits for another's transaction before giving up."""
MMAP_BYTES = 256 * 1024 * 1024
"""Connections read the file through one shared memory map instead of each filling its own page cache."""

SCHEMA = f"""
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
CREATE INDEX IF NOT EXISTS examples_source ON examples (source);
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

_EVENT_COLUMNS = "id, at, actor, action, example_id, from_label, to_label, detail"


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


def _event(row: tuple) -> Event:
    return Event(*row[:7], json.loads(row[7]))


class Database:
    """The label database of one data directory; safe to share between threads and processes."""

    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        con = self._connection()
        con.execute("PRAGMA journal_mode = WAL")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer version of the app (schema {version})")
        try:
            con.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

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
        """Append one event to the audit log, inside the caller's write transaction."""
        con.execute(
            "INSERT INTO events (at, actor, action, example_id, from_label, to_label, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), actor, action, example_id, from_label, to_label, json.dumps(detail)),
        )

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

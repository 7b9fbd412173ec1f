"""Suspects: the store's examples in the order a label audit doubts their labels, and the scores runs and audits
gave them.

A label audit (``python -m ft.audit``) leaves ``runs/<audit_id>/`` with
``suspects.parquet`` (row, text, label, p_injection, fold, label_quality,
is_issue, rank; rank 1 = most likely mislabelled) and ``state.json`` (status,
method, started). This module reads those two files with pandas and json, so
curation never imports the model code; the store records an audit's rows once
(by text hash, ``curation.labels.text_hash``), and the queue is then a join
over the store's tables: no file is read again while reviewers vote.

- ``Suspects``: the store's scores, audits and audit_rows tables (a part of ``LabelStore``).
- ``read_audit`` / ``list_audits``: one audit folder, or every completed one.
- ``record_audit_scores``: the audit's rows and its out-of-sample P(injection)
  into the store (scores under the audit id as run id), once.
- ``audit_to_review``: the audit a page names by path, recorded on first use.
- ``suspects_queue``: example ids in rank order, with the audit's P(injection),
  the label the audit judged, and the label now side by side; examples with a
  standing vote cast since the audit started leave the queue when asked, so
  relabelling the top item moves the next one up.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyarrow import ArrowException

from curation.database import Database
from curation.labels import text_hash
from ft.run_dir import RunDir

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
class Score:
    run_id: str
    p_injection: float
    scored_at: float


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


def _suspect(row: tuple) -> Suspect:
    return Suspect(*row[:6], bool(row[6]), *row[7:])


def _insert_scores(con: sqlite3.Connection, run_id: str, scored: Iterable[tuple[str, float]]) -> None:
    """``run_id``'s P(injection) for each (text hash, probability), scored now."""
    now = time.time()
    con.executemany(
        "INSERT INTO scores (text_hash, run_id, p_injection, scored_at) VALUES (?, ?, ?, ?)",
        [(hashed, run_id, p, now) for hashed, p in scored],
    )


def _suspects_where(issues_only: bool = False, exclude_reviewed: bool = True) -> str:
    """FROM and WHERE of an audit's suspects queue (parameter ``audit``)."""
    return _SUSPECTS + (" AND a.is_issue = 1" if issues_only else "") + (_NOT_REVIEWED if exclude_reviewed else "")


class Suspects(Database):
    """The scores, audits and audit_rows tables: what runs and audits said of the texts."""

    def record_scores(self, run_id: str, scored: Iterable[tuple[str, float]]) -> int:
        """Store a run's P(injection) for each (text, probability); the texts need not be in the store yet."""
        rows = [(text_hash(text), float(p)) for text, p in scored]
        with self._write() as con:
            _insert_scores(con, run_id, rows)
        return len(rows)

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

    def recorded_audit(self, audit_id: str) -> AuditInfo | None:
        row = self._connection().execute("SELECT id, method, started FROM audits WHERE id = ?", (audit_id,)).fetchone()
        return AuditInfo(*row) if row else None

    def _next_suspect(
        self, con: sqlite3.Connection, audit_id: str, after_id: int | None, issues_only: bool = False
    ) -> int | None:
        where = _suspects_where(issues_only)
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
        where = _suspects_where(issues_only, exclude_reviewed)
        return [
            _suspect(r)
            for r in self._connection().execute(
                f"SELECT {_SUSPECT_COLUMNS} {where} ORDER BY a.rank LIMIT :limit",
                {"audit": audit_id, "limit": -1 if limit is None else limit},
            )
        ]

    def suspects_view(self, audit_id: str, shown_id: int | None, top: int) -> SuspectsView:
        """The audit's suspects queue as the review panel shows it, read in one transaction."""
        where = _suspects_where()
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


SUSPECTS_FILE = RunDir(".").suspects.name
SUSPECTS_COLUMNS = ["text", "label", "p_injection", "label_quality", "is_issue", "rank"]
QUEUE_COLUMNS = [
    "example_id",
    "rank",
    "p_injection",
    "audited_label",
    "current_label",
    "label_quality",
    "is_issue",
    "split",
    "n_votes",
]


@dataclass(frozen=True)
class Audit:
    """A completed label audit as curation sees it: its ranked rows and when it read the labels."""

    id: str
    path: Path
    method: str
    """``cross-fit K=<k>`` (out-of-sample) or ``in-sample (biased)``."""
    started: float
    suspects: pd.DataFrame
    """The audit's rows in rank order, plus a text_hash column."""

    @property
    def info(self) -> AuditInfo:
        """What the store records of it."""
        return AuditInfo(self.id, self.method, self.started)

    @property
    def biased(self) -> bool:
        return self.info.biased


def _state(path: Path) -> dict:
    return RunDir(path).read_state()


def read_audit(path: str | Path) -> Audit:
    """The audit in ``path``; ValueError when it has not completed."""
    path = Path(path)
    state = _state(path)
    if state.get("kind") != "audit" or state.get("status") != "completed":
        raise ValueError(f"{path.name} is not a completed label audit (status {state.get('status', 'unknown')!r})")
    try:
        suspects = pd.read_parquet(RunDir(path).suspects)
    except (OSError, ArrowException) as exc:
        raise ValueError(f"{path.name}: cannot read {SUSPECTS_FILE} ({exc})") from None
    missing = sorted(set(SUSPECTS_COLUMNS) - set(suspects.columns))
    if missing:
        raise ValueError(f"{path.name}: {SUSPECTS_FILE} lacks column(s) {missing}")
    suspects = suspects.sort_values("rank", kind="stable").reset_index(drop=True)
    suspects["text_hash"] = [text_hash(t) for t in suspects["text"]]
    started = state.get("started") or RunDir(path).suspects.stat().st_mtime
    return Audit(path.name, path, state.get("method", ""), float(started), suspects)


def list_audits(runs_dir: str | Path) -> list[Path]:
    """Folders under ``runs_dir`` holding a completed label audit, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    done = [(p, _state(p)) for p in runs_dir.iterdir() if p.is_dir()]
    done = [(p, s) for p, s in done if s.get("kind") == "audit" and s.get("status") == "completed"]
    return [p for p, s in sorted(done, key=lambda ps: (ps[1].get("ended") or 0, ps[0].name), reverse=True)]


def _optional(value, kind):
    return None if pd.isna(value) else kind(value)


def record_audit_scores(store: Suspects, audit: Audit) -> int:
    """Record the audit's rows in the store and every row's P(injection) under the audit id; the scores recorded,
    0 when the audit was recorded already."""
    rows = [
        AuditRow(digest, int(rank), float(p), _optional(label, int), _optional(quality, float), bool(issue))
        for digest, rank, p, label, quality, issue in audit.suspects[
            ["text_hash", "rank", "p_injection", "label", "label_quality", "is_issue"]
        ].itertuples(index=False)
    ]
    return store.record_audit(audit.info, rows)


def audit_to_review(store: Suspects, runs_dir: str | Path, path: str | Path | None) -> AuditInfo | None:
    """The audit at ``path`` (None for no path) as the store recorded it; its file is read and recorded on
    first use only. ValueError when ``path`` is not a folder of ``runs_dir`` (a page may send any path) or
    not a completed audit."""
    if not path:
        return None
    folder = Path(path)
    if folder.resolve().parent != Path(runs_dir).resolve():
        raise ValueError("Pick one of the label audits listed.")
    recorded = store.recorded_audit(folder.name)
    if recorded is not None and folder.is_dir():
        return recorded
    try:
        audit = read_audit(folder)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the audit: {error}") from None
    record_audit_scores(store, audit)
    return audit.info


def _recorded(store: Suspects, audit: Audit | AuditInfo) -> str:
    """The id of an audit the store has recorded (recording a read one first)."""
    if isinstance(audit, Audit):
        record_audit_scores(store, audit)
    return audit.id


def suspects_queue(
    store: Suspects,
    audit: Audit | AuditInfo,
    *,
    exclude_reviewed: bool = True,
    issues_only: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """The store's examples in the audit's rank order, columns QUEUE_COLUMNS.

    Audit rows whose text is not in the store are left out, and a text audited twice appears once,
    at its better rank. ``exclude_reviewed`` drops examples
    with a standing vote cast since the audit started; ``issues_only`` keeps cleanlab's flagged
    label issues only; ``limit`` cuts the queue after that many items.
    """
    rows = store.suspects(
        _recorded(store, audit), exclude_reviewed=exclude_reviewed, issues_only=issues_only, limit=limit
    )
    return pd.DataFrame(
        {
            "example_id": [r.example_id for r in rows],
            "rank": [r.rank for r in rows],
            "p_injection": [r.p_injection for r in rows],
            "audited_label": [r.audited_label for r in rows],
            "current_label": pd.array([r.current_label for r in rows], dtype="Int64"),
            "label_quality": [r.label_quality for r in rows],
            "is_issue": [r.is_issue for r in rows],
            "split": [r.split for r in rows],
            "n_votes": [r.n_votes for r in rows],
        },
        columns=QUEUE_COLUMNS,
    )


def next_suspect(
    store: Suspects, audit: Audit | AuditInfo, issues_only: bool = False, after_id: int | None = None
) -> int | None:
    """The example id at the head of the queue (reviewed ones excluded); None when it is empty.

    With ``after_id`` still in the queue (a skipped item), the one after it, wrapping around.
    """
    return store.next_suspect(_recorded(store, audit), after_id, issues_only)

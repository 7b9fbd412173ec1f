"""The suspects queue: the store's examples in the order a label audit doubts their labels.

A label audit (``python -m ft.audit``) leaves ``runs/<audit_id>/`` with
``suspects.parquet`` (row, text, label, p_injection, fold, label_quality,
is_issue, rank; rank 1 = most likely mislabelled) and ``state.json`` (status,
method, started). This module reads those two files with pandas and json, so
curation never imports the model code; the store records an audit's rows once
(by text hash, ``curation.labels.text_hash``), and the queue is then a join
over the store's tables: no file is read again while reviewers vote.

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

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyarrow import ArrowException

from curation.labels import text_hash
from curation.store import AuditInfo, AuditRow, LabelStore
from ft.run_dir import RunDir

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


def record_audit_scores(store: LabelStore, audit: Audit) -> int:
    """Record the audit's rows in the store and every row's P(injection) under the audit id; the scores recorded,
    0 when the audit was recorded already."""
    rows = [
        AuditRow(digest, int(rank), float(p), _optional(label, int), _optional(quality, float), bool(issue))
        for digest, rank, p, label, quality, issue in audit.suspects[
            ["text_hash", "rank", "p_injection", "label", "label_quality", "is_issue"]
        ].itertuples(index=False)
    ]
    return store.record_audit(audit.info, rows)


def audit_to_review(store: LabelStore, runs_dir: str | Path, path: str | Path | None) -> AuditInfo | None:
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


def _recorded(store: LabelStore, audit: Audit | AuditInfo) -> str:
    """The id of an audit the store has recorded (recording a read one first)."""
    if isinstance(audit, Audit):
        record_audit_scores(store, audit)
    return audit.id


def suspects_queue(
    store: LabelStore,
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
    store: LabelStore, audit: Audit | AuditInfo, issues_only: bool = False, after_id: int | None = None
) -> int | None:
    """The example id at the head of the queue (reviewed ones excluded); None when it is empty.

    With ``after_id`` still in the queue (a skipped item), the one after it, wrapping around.
    """
    return store.next_suspect(_recorded(store, audit), after_id, issues_only)

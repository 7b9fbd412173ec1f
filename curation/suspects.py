"""The suspects queue: the store's examples in the order a label audit doubts their labels.

A label audit (``python -m ft.audit``) leaves ``runs/<audit_id>/`` with
``suspects.parquet`` (row, text, label, p_injection, fold, label_quality,
is_issue, rank; rank 1 = most likely mislabelled) and ``state.json`` (status,
method, started). This module reads those two files with pandas and json, so
curation never imports the model code, and matches the audit's rows to the
store's examples by text hash (``curation.labels.text_hash``).

- ``read_audit`` / ``list_audits``: one audit folder, or every completed one.
- ``record_audit_scores``: the audit's out-of-sample P(injection) into the
  store's scores table, under the audit id as run id.
- ``suspects_queue``: example ids in rank order, with the audit's P(injection),
  the label the audit judged, and the label now side by side; examples with a
  standing vote cast since the audit started leave the queue when asked, so
  relabelling the top item moves the next one up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyarrow import ArrowException

from curation.filters import ExampleFilter
from curation.labels import text_hash
from curation.store import Example, LabelStore

SUSPECTS_FILE = "suspects.parquet"
SUSPECTS_COLUMNS = ["text", "label", "p_injection", "label_quality", "is_issue", "rank"]
QUEUE_COLUMNS = ["example_id", "rank", "p_injection", "audited_label", "current_label", "label_quality",
                 "is_issue", "split", "n_votes"]


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
    def biased(self) -> bool:
        return self.method.startswith("in-sample")


def _state(path: Path) -> dict:
    try:
        return json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def read_audit(path: str | Path) -> Audit:
    """The audit in ``path``; ValueError when it has not completed."""
    path = Path(path)
    state = _state(path)
    if state.get("kind") != "audit" or state.get("status") != "completed":
        raise ValueError(f"{path.name} is not a completed label audit (status {state.get('status', 'unknown')!r})")
    try:
        suspects = pd.read_parquet(path / SUSPECTS_FILE)
    except (OSError, ArrowException) as exc:
        raise ValueError(f"{path.name}: cannot read {SUSPECTS_FILE} ({exc})") from None
    missing = sorted(set(SUSPECTS_COLUMNS) - set(suspects.columns))
    if missing:
        raise ValueError(f"{path.name}: {SUSPECTS_FILE} lacks column(s) {missing}")
    suspects = suspects.sort_values("rank", kind="stable").reset_index(drop=True)
    suspects["text_hash"] = [text_hash(t) for t in suspects["text"]]
    started = state.get("started") or (path / SUSPECTS_FILE).stat().st_mtime
    return Audit(path.name, path, state.get("method", ""), float(started), suspects)


def list_audits(runs_dir: str | Path) -> list[Path]:
    """Folders under ``runs_dir`` holding a completed label audit, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    done = [(p, _state(p)) for p in runs_dir.iterdir() if p.is_dir()]
    done = [(p, s) for p, s in done if s.get("kind") == "audit" and s.get("status") == "completed"]
    return [p for p, s in sorted(done, key=lambda ps: (ps[1].get("ended") or 0, ps[0].name), reverse=True)]


def _examples_by_hash(store: LabelStore) -> dict[str, Example]:
    """Every example of the store (texts cut to previews), by text hash."""
    total = store.totals().examples
    return {e.text_hash: e for e in store.page(ExampleFilter(), page_size=max(total, 1)).rows}


def record_audit_scores(store: LabelStore, audit: Audit) -> int:
    """Store every row's P(injection) under the audit id; 0 when they are there already (the top suspect's is)."""
    if not len(audit.suspects) or store.has_scores_from(audit.id, audit.suspects["text"].iloc[0]):
        return 0
    return store.record_scores(audit.id, zip(audit.suspects["text"], audit.suspects["p_injection"]))


def suspects_queue(store: LabelStore, audit: Audit, *, exclude_reviewed: bool = True, issues_only: bool = False,
                   limit: int | None = None) -> pd.DataFrame:
    """The store's examples in the audit's rank order, columns QUEUE_COLUMNS.

    Audit rows whose text is not in the store are left out, and a text audited twice appears once,
    at its better rank. ``exclude_reviewed`` drops examples
    with a standing vote cast since the audit started; ``issues_only`` keeps cleanlab's flagged
    label issues only; ``limit`` cuts the queue after that many items.
    """
    by_hash = _examples_by_hash(store)
    ranked = audit.suspects[audit.suspects["text_hash"].isin(by_hash.keys())].drop_duplicates("text_hash")
    if issues_only:
        ranked = ranked[ranked["is_issue"]]
    examples = [by_hash[h] for h in ranked["text_hash"]]
    if exclude_reviewed:
        reviewed = store.voted_since(audit.started)
        keep = [e.id not in reviewed for e in examples]
        ranked, examples = ranked[keep], [e for e, k in zip(examples, keep) if k]
    if limit is not None:
        ranked, examples = ranked.head(limit), examples[:limit]
    return pd.DataFrame({
        "example_id": [e.id for e in examples],
        "rank": ranked["rank"].to_numpy(),
        "p_injection": ranked["p_injection"].to_numpy(),
        "audited_label": ranked["label"].to_numpy(),
        "current_label": pd.array([e.current_label for e in examples], dtype="Int64"),
        "label_quality": ranked["label_quality"].to_numpy(),
        "is_issue": ranked["is_issue"].to_numpy(),
        "split": [e.split for e in examples],
        "n_votes": [e.n_votes for e in examples],
    }, columns=QUEUE_COLUMNS)


def next_suspect(store: LabelStore, audit: Audit, issues_only: bool = False, after_id: int | None = None) -> int | None:
    """The example id at the head of the queue (reviewed ones excluded); None when it is empty.

    With ``after_id`` still in the queue (a skipped item), the one after it, wrapping around.
    """
    if after_id is None:
        queue = suspects_queue(store, audit, issues_only=issues_only, limit=1)
        return int(queue["example_id"].iloc[0]) if len(queue) else None
    ids = [int(i) for i in suspects_queue(store, audit, issues_only=issues_only)["example_id"]]
    if not ids:
        return None
    return ids[(ids.index(after_id) + 1) % len(ids)] if after_id in ids else ids[0]

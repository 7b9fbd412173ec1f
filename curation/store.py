"""LabelStore: every example, vote and change of one data directory, in one SQLite file in WAL mode.

The store is its parts together, each in the module of its concern, each a ``curation.database.Database``
with the SQL of that concern:

    database.py   the schema, transactions and the append-only audit log (the guarantees, in one place)
    examples.py   importing examples (many sources in one transaction), pages, counts per source
    votes.py      votes, undo, the current label, sending a text to review from Detect
    suspects.py   scores, label audits and their suspects queue
    queues.py     the review panel's queues and what it shows of an example
    snapshots.py  snapshots: create (with a mix, curation.mix), list, delete; the file contract
    agreement.py  votes per reviewer and agreement between reviewers

A new queue or a new mix rule touches one of these; this class only puts them together.
"""

from __future__ import annotations

from curation.agreement import ReviewerCount, Reviewers
from curation.database import DB_NAME, Event
from curation.examples import TEXT_PREVIEW_CHARS, Example, ImportResult, Page, SourceCount, Totals
from curation.queues import Queues, ReviewItem, ReviewQueue
from curation.snapshots import DataUsers, SnapshotInUse, Snapshots
from curation.suspects import AuditInfo, AuditRow, Score, Suspect, SuspectsView
from curation.votes import DETECT_SOURCE, VoteRecord

__all__ = [
    "DB_NAME",
    "DETECT_SOURCE",
    "TEXT_PREVIEW_CHARS",
    "AuditInfo",
    "AuditRow",
    "DataUsers",
    "Event",
    "Example",
    "ImportResult",
    "LabelStore",
    "Page",
    "ReviewItem",
    "ReviewQueue",
    "ReviewerCount",
    "Score",
    "SnapshotInUse",
    "SourceCount",
    "Suspect",
    "SuspectsView",
    "Totals",
    "VoteRecord",
]


class LabelStore(Queues, Snapshots, Reviewers):
    """The label database of one data directory; safe to share between threads and processes."""

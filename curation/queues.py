"""Review queues: which example the review panel serves next, and everything it shows of one.

Queues: unreviewed (no votes yet; each reviewer starts at a different place), the browse filter's set, open
disagreements (reviewers' latest votes differ and no one has adjudicated), and an audit's suspects
(curation.suspects). A new queue is a ``curation.filters.Queue`` member and its condition in ``queue_filter``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field

from curation.database import Event
from curation.examples import Example, Totals
from curation.filters import ExampleFilter, Queue, queue_filter
from curation.suspects import Score, Suspects
from curation.votes import VoteRecord, Votes, check_vote, clean_reviewer


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


class Queues(Votes, Suspects):
    """The review panel's reads and its vote-then-next write."""

    def _queue_start(self, reviewer: str) -> int:
        """Where a reviewer's unreviewed queue begins: spread by name, so a team does not label in lockstep."""
        top = self._connection().execute("SELECT coalesce(max(id), 0) FROM examples").fetchone()[0]
        return int(hashlib.sha256(reviewer.encode()).hexdigest()[:8], 16) % (top or 1)

    def _next_item(self, con: sqlite3.Connection, queue: ReviewQueue, after_id: int | None) -> int | None:
        if queue.queue is Queue.SUSPECTS:
            return self._next_suspect(con, queue.audit_id, after_id) if queue.audit_id else None
        where, params = queue_filter(queue.queue, queue.browse_filter)
        if after_id is None:
            after_id = self._queue_start(clean_reviewer(queue.reviewer)) if queue.queue is Queue.UNREVIEWED else 0
        row = con.execute(
            f"SELECT e.id FROM examples e WHERE {where} AND e.id > ? ORDER BY e.id LIMIT 1", [*params, after_id]
        ).fetchone()
        row = row or con.execute(f"SELECT e.id FROM examples e WHERE {where} ORDER BY e.id LIMIT 1", params).fetchone()
        return row[0] if row else None

    def next_item(self, queue: ReviewQueue, after_id: int | None = None) -> int | None:
        """The review queue's next example id after ``after_id`` (wrapping around); None when it is empty."""
        return self._next_item(self._connection(), queue, after_id)

    def next_in_queue(
        self, queue: Queue, reviewer: str, after_id: int | None = None, browse_filter: ExampleFilter = ExampleFilter()
    ) -> int | None:
        """The next example id in the queue after ``after_id`` (wrapping around); None when it is empty."""
        return self.next_item(ReviewQueue(queue, reviewer, browse_filter), after_id)

    def cast_vote_and_next(
        self, example_id: int, label: int, note: str, adjudication: bool, queue: ReviewQueue
    ) -> int | None:
        """Record the queue's reviewer's vote (as cast_vote) and find the queue's next item, in one transaction."""
        reviewer = clean_reviewer(queue.reviewer)
        note = note.strip()
        check_vote(label, note, adjudication)
        with self._write() as con:
            self._insert_vote(con, example_id, reviewer, label, note, adjudication)
            return self._next_item(con, queue, example_id)

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

"""Votes and the current label: casting, undoing, and sending a text to review from the Detect tab.

Current label rule: the latest adjudication vote; else the majority of the reviewers' votes (each reviewer's
latest vote counts once, "unsure" does not count, a tie keeps the original); else the original label. The rule
itself is ``curation.labels.label_state``; the store keeps its result next to each example (current_label,
n_votes, disagree, ...) so that pages can filter on it, and recomputes it in the same transaction as every vote
or undo.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from curation.examples import Examples
from curation.labels import BENIGN, INJECTION, UNSURE, Vote, label_state, text_hash
from curation.sources import text_problem

MAX_NOTE_CHARS = 2_000
MAX_REVIEWER_CHARS = 100
DETECT_SOURCE = "detect"
_VOTE_COLUMNS = "id, example_id, reviewer, label, note, is_adjudication, cast_at, retracted_at"


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


def _vote(row: tuple) -> VoteRecord:
    return VoteRecord(*row[:5], bool(row[5]), *row[6:])


def clean_reviewer(reviewer: str) -> str:
    """The reviewer's name trimmed; ValueError when it is empty or too long."""
    name = (reviewer or "").strip()
    if not name:
        raise ValueError("a reviewer name is needed")
    if len(name) > MAX_REVIEWER_CHARS:
        raise ValueError(f"a reviewer name has at most {MAX_REVIEWER_CHARS} characters")
    return name


def check_vote(label: int, note: str, adjudication: bool) -> None:
    if label not in (BENIGN, INJECTION, UNSURE):
        raise ValueError(f"a vote is {INJECTION} (injection), {BENIGN} (benign) or {UNSURE} (unsure), not {label!r}")
    if adjudication and label == UNSURE:
        raise ValueError("an adjudication must say injection or benign")
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"a note has at most {MAX_NOTE_CHARS} characters")


class Votes(Examples):
    """The votes table, and the label state each vote or undo refreshes."""

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

    @staticmethod
    def _current(con: sqlite3.Connection, example_id: int) -> int | None:
        row = con.execute("SELECT current_label FROM examples WHERE id = ?", (example_id,)).fetchone()
        if row is None:
            raise KeyError(f"no example {example_id}")
        return row[0]

    def _insert_vote(
        self, con: sqlite3.Connection, example_id: int, reviewer: str, label: int, note: str, adjudication: bool
    ) -> int:
        """Record a checked vote inside the caller's write transaction, refresh the label and log the change."""
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
        reviewer = clean_reviewer(reviewer)
        note = note.strip()
        check_vote(label, note, adjudication)
        with self._write() as con:
            vote_id = self._insert_vote(con, example_id, reviewer, label, note, adjudication)
        return self.vote(vote_id)

    def undo_last_vote(self, reviewer: str) -> VoteRecord | None:
        """Retract the reviewer's latest standing vote (it stays in the history); None if there is none."""
        reviewer = clean_reviewer(reviewer)
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
        reviewer = clean_reviewer(reviewer)
        problem = text_problem(text)
        if problem:
            raise ValueError(problem)
        if label is not None:
            check_vote(label, note.strip(), False)
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

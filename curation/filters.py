"""Which examples a page or a review queue holds, as SQL over the examples table; which sources a name picks.

Sources are named like paths, ``<file>[/<subset>[/<language>]]`` (``xquad/question/de``): a source name picks
that source and every source under it (``xquad`` picks ``xquad/question/de``), in the Browse filter and in a
snapshot's mix alike.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass


class Queue(enum.Enum):
    """What the review panel serves next."""

    UNREVIEWED = "unreviewed"
    FILTERED = "filtered set"
    DISAGREEMENTS = "disagreements"
    SUSPECTS = "suspects"
    """A label audit's examples, most doubted first (curation.suspects): a join over the audit's rows, not a
    condition on the examples table."""


def _without_control_characters(search: str) -> str:
    """``search`` with control characters and lone surrogates as spaces: FTS5 reads a NUL as the end of the
    query (an unterminated string), SQLite cannot encode a surrogate, and the index splits words at both."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in search)


def picks_source(name: str, source: str) -> bool:
    """Whether the source name ``name`` picks ``source``: the same source, or one under it."""
    return source == name or source.startswith(name + "/")


def source_names(sources: list[str]) -> list[str]:
    """Every source and every level above one (``xquad/question/de`` gives ``xquad``, ``xquad/question`` and
    itself), in name order: the names a filter or a mix can pick."""
    names = {"/".join(parts[:end]) for parts in (s.split("/") for s in sources) for end in range(1, len(parts) + 1)}
    return sorted(names)


def fts_query(search: str) -> str:
    """An FTS5 query matching every word of ``search``; quoting makes any user text a valid query."""
    words = _without_control_characters(search).split()
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


@dataclass(frozen=True)
class ExampleFilter:
    """Conditions that all hold; None or False means "any"."""

    split: str | None = None
    source: str | None = None
    """A source name: that source and the sources under it."""
    current_label: int | None = None
    original_label: int | None = None
    reviewed: bool | None = None
    changed: bool = False
    disagree: bool = False
    flagged: bool = False
    search: str = ""

    def where(self) -> tuple[str, list]:
        """A SQL condition on table alias ``e`` (examples) and its parameters."""
        clauses, params = ["1"], []
        for column, value in (
            ("split", self.split),
            ("current_label", self.current_label),
            ("original_label", self.original_label),
        ):
            if value is not None:
                clauses.append(f"e.{column} = ?")
                params.append(value)
        if self.source is not None:
            clauses.append("(e.source = ? OR substr(e.source, 1, ?) = ?)")
            params.extend([self.source, len(self.source) + 1, self.source + "/"])
        if self.reviewed is not None:
            clauses.append("e.n_votes > 0" if self.reviewed else "e.n_votes = 0")
        if self.changed:
            clauses.append("e.original_label IS NOT NULL AND e.current_label IS NOT e.original_label")
        if self.disagree:
            clauses.append("e.disagree = 1")
        if self.flagged:
            clauses.append("e.flagged = 1")
        words = fts_query(self.search)
        if words:
            clauses.append("e.id IN (SELECT rowid FROM texts_fts WHERE texts_fts MATCH ?)")
            params.append(words)
        return " AND ".join(clauses), params


def queue_filter(queue: Queue, browse_filter: ExampleFilter) -> tuple[str, list]:
    """The SQL condition for a review queue; only the filtered-set queue uses the browse filter."""
    if queue is Queue.SUSPECTS:
        raise ValueError("the suspects queue is an audit's, not a filter (LabelStore.next_item)")
    if queue is Queue.UNREVIEWED:
        return ExampleFilter(reviewed=False).where()
    if queue is Queue.DISAGREEMENTS:
        return "e.disagree = 1 AND e.adjudicated = 0", []
    return browse_filter.where()

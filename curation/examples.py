"""The examples: importing them (many sources in one transaction), and reading them page by page and in counts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from curation.database import Database
from curation.filters import ExampleFilter
from curation.sources import Prepared, Progress, no_progress

TEXT_PREVIEW_CHARS = 300
_IMPORT_BATCH = 5_000

EXAMPLE_COLUMNS = (
    "e.id, e.split, {text}, t.text_hash, e.original_label, e.source, e.added_at, e.current_label, "
    "e.n_votes, e.n_reviewers, e.disagree, e.adjudicated, e.flagged"
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
    added_by_source: dict[str, int] = field(default_factory=dict)
    """New examples per row source, sources in name order."""


@dataclass(frozen=True)
class Totals:
    examples: int
    reviewed: int
    changed: int
    disagreements: int
    open_disagreements: int
    flagged: int


@dataclass(frozen=True)
class SourceCount:
    """How many examples of one source sit in one split with one current label (None: no label yet)."""

    source: str
    split: str
    current_label: int | None
    rows: int


def example_from_row(row: tuple) -> Example:
    return Example(*row[:10], bool(row[10]), bool(row[11]), bool(row[12]))


class Examples(Database):
    """The examples table: imports, pages, counts."""

    def import_examples(
        self, prepared: Prepared, actor: str = "import", progress: Progress = no_progress
    ) -> ImportResult:
        """Add prepared rows, of one source or many, in one transaction; texts already stored are left alone
        (re-importing is a no-op)."""
        rows = prepared.staged()
        with self._write() as con:
            con.execute(
                "CREATE TEMP TABLE IF NOT EXISTS staging "
                "(split TEXT, text TEXT, text_hash TEXT, label INTEGER, source TEXT)"
            )
            con.execute("DELETE FROM staging")
            for start in range(0, len(rows), _IMPORT_BATCH):
                progress(0.5 * start / len(rows), f"Writing {prepared.source}")
                con.executemany("INSERT INTO staging VALUES (?, ?, ?, ?, ?)", rows[start : start + _IMPORT_BATCH])
            progress(0.5, f"Indexing {prepared.source}")
            top = con.execute("SELECT coalesce(max(id), 0) FROM texts").fetchone()[0]
            added = con.execute(
                "INSERT INTO texts (text_hash, text) SELECT text_hash, text FROM staging "
                "WHERE true ORDER BY rowid ON CONFLICT (text_hash) DO NOTHING"
            ).rowcount
            con.execute(
                "INSERT INTO examples (id, split, original_label, current_label, source, added_at) "
                "SELECT t.id, s.split, s.label, s.label, s.source, ? FROM staging s "
                "JOIN texts t ON t.text_hash = s.text_hash WHERE t.id > ?",
                (time.time(), top),
            )
            con.execute("DELETE FROM staging")
            new = "SELECT source, count(*) FROM examples WHERE id > ? GROUP BY source ORDER BY source"
            by_source = dict(con.execute(new, (top,)))
            result = ImportResult(
                prepared.source,
                added,
                len(rows) - added,
                prepared.duplicates,
                prepared.conflicting_duplicates,
                by_source,
            )
            self._log(
                con,
                actor,
                "import",
                source=prepared.source,
                added=added,
                already_present=result.already_present,
                duplicates=prepared.duplicates,
                sources=len(by_source),
            )
        progress(1.0, f"Imported {prepared.source}")
        return result

    def example(self, example_id: int) -> Example | None:
        row = (
            self._connection()
            .execute(
                f"SELECT {EXAMPLE_COLUMNS.format(text='t.text')} FROM examples e JOIN texts t ON t.id = e.id "
                "WHERE e.id = ?",
                (example_id,),
            )
            .fetchone()
        )
        return example_from_row(row) if row else None

    def page(self, browse_filter: ExampleFilter = ExampleFilter(), page: int = 0, page_size: int = 50) -> Page:
        """One page of examples matching the filter, in id order, and how many match in all."""
        where, params = browse_filter.where()
        columns = EXAMPLE_COLUMNS.format(text=f"substr(t.text, 1, {TEXT_PREVIEW_CHARS})")
        with self._read() as con:
            total = con.execute(f"SELECT count(*) FROM examples e WHERE {where}", params).fetchone()[0]
            rows = con.execute(
                f"SELECT {columns} FROM examples e JOIN texts t ON t.id = e.id WHERE e.id IN "
                f"(SELECT e.id FROM examples e WHERE {where} ORDER BY e.id LIMIT ? OFFSET ?) ORDER BY e.id",
                [*params, page_size, page * page_size],
            ).fetchall()
        return Page([example_from_row(r) for r in rows], total, page, page_size)

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

    def sources(self) -> list[str]:
        """Every row source in the store, in name order."""
        return [r[0] for r in self._connection().execute("SELECT DISTINCT source FROM examples ORDER BY source")]

    def source_counts(self) -> dict[str, int]:
        """{source: examples}; the app tells people when only its demo data is loaded."""
        return dict(self._connection().execute("SELECT source, count(*) FROM examples GROUP BY source"))

    def source_split_label_counts(self) -> list[SourceCount]:
        """Examples per source x split x current label, in that order: what the store holds, at a glance."""
        return [
            SourceCount(*row)
            for row in self._connection().execute(
                "SELECT source, split, current_label, count(*) FROM examples "
                "GROUP BY source, split, current_label ORDER BY source, split, current_label"
            )
        ]

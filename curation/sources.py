"""Read a labelled dataset from the Hub, parquet, CSV, JSONL or a folder of split files, and validate it.

Two steps, so that people see the label mapping before anything is written:
``read_source`` gives a Preview (the raw rows and a proposed mapping from raw
label values to injection/benign); ``prepare`` applies a mapping and returns
validated, deduplicated rows, or raises SourceError listing every problem with
its file and row. Only prepared rows reach the store, so a file that fails
validation writes nothing.

Files are read by intake.read_columns, which refuses a file (or Hub split) over
MAX_IMPORT_ROWS rows or MAX_IMPORT_CHARS characters before decoding it. A text
over MAX_TEXT_CHARS is still read, so that prepare lists it with every other
row problem; the file's total bounds the memory it takes.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from curation.labels import guess_label, text_hash
from intake import DATASET_LIMITS, TableError, read_arrow, read_columns

MAX_TEXT_CHARS = 100_000
IMPORT_LIMITS = DATASET_LIMITS
MAX_IMPORT_ROWS, MAX_IMPORT_CHARS = IMPORT_LIMITS.rows, IMPORT_LIMITS.total_chars
MAX_LABEL_CHARS = 1_000
"""Longest label or split value read."""
MAX_PROBLEMS_SHOWN = 20
FILE_SUFFIXES = (".parquet", ".csv", ".jsonl")
SPLIT_ORDER = ("train", "validation", "test")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")

Progress = Callable[[float, str], None]
"""Called with (fraction done, what is happening) during long reads and writes."""


def no_progress(fraction: float, description: str) -> None:
    return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as the format allows."""

    file: str
    row: int | None
    message: str
    unit: str = "row"

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}, {self.unit} {self.row}"
        return f"{where}: {self.message}"


class SourceError(ValueError):
    """The input cannot be imported; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = [str(p) for p in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class RawTable:
    """One file (or Hub split): columns text, label, split, indexed by the row number people see."""

    file: str
    unit: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class Preview:
    """What a source holds, before any mapping is applied or anything is written."""

    source: str
    tables: list[RawTable]
    label_counts: dict[str, int]

    @property
    def proposed_mapping(self) -> dict[str, int | None]:
        """Raw label value -> BENIGN/INJECTION as guessed from its spelling; None where unknown."""
        return {value: guess_label(value) for value in self.label_counts}

    @property
    def n_rows(self) -> int:
        return sum(len(t.frame) for t in self.tables)


@dataclass(frozen=True)
class Prepared:
    """Validated rows ready for LabelStore.import_examples: (split, text, text hash, label)."""

    source: str
    rows: list[tuple[str, str, str, int]]
    duplicates: int
    conflicting_duplicates: int

    def counts(self) -> dict[str, dict[int, int]]:
        """{split: {label: rows}}."""
        counts: dict[str, dict[int, int]] = {}
        for split, _, _, label in self.rows:
            counts.setdefault(split, {0: 0, 1: 0})[label] += 1
        return counts


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def label_key(value: object) -> str:
    """A raw label as the text shown in the mapping: 1, 1.0 and True-like numbers read alike."""
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _check_columns(name: str, present: list[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in present]
    if missing:
        raise SourceError(
            [
                Problem(
                    name,
                    None,
                    f"no column {', '.join(map(repr, missing))}; the columns are {', '.join(map(repr, present))}",
                )
            ]
        )


def _table(frame: pd.DataFrame, name: str, unit: str, text_column: str, label_column: str, split: str) -> RawTable:
    _check_columns(name, [str(c) for c in frame.columns], [text_column, label_column])
    has_splits = "split" in frame.columns and "split" not in (text_column, label_column)
    splits = [split if _missing(v) else v for v in frame["split"].tolist()] if has_splits else split
    return RawTable(
        name,
        unit,
        pd.DataFrame(
            {"text": frame[text_column], "label": frame[label_column], "split": splits}, index=frame.index, dtype=object
        ),
    )


def _cell_limits(text_column: str, label_column: str) -> dict[str, int]:
    """Column -> most characters read from one of its cells (the text is bounded by the file's total alone)."""
    cells = {text_column: MAX_IMPORT_CHARS}
    cells.setdefault(label_column, MAX_LABEL_CHARS)
    return cells


def _source_error(error: TableError) -> SourceError:
    return SourceError([Problem(error.file, issue.row, issue.message, issue.unit) for issue in error.issues])


def _read_file(path: Path, name: str, text_column: str, label_column: str, split: str) -> RawTable:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise SourceError(
            [Problem(name, None, f"unsupported file type {suffix or '(none)'!r}; use {', '.join(FILE_SUFFIXES)}")]
        )
    try:
        frame = read_columns(
            path, _cell_limits(text_column, label_column), {"split": MAX_LABEL_CHARS}, limits=IMPORT_LIMITS, name=name
        )
    except TableError as error:
        raise _source_error(error) from None
    return _table(frame, name, "line" if suffix == ".jsonl" else "row", text_column, label_column, split)


def _split_rank(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def _split_files(folder: Path) -> list[tuple[str, Path]]:
    """(split, file) for ``<split>.parquet`` or sharded ``<split>-00000-of-00002.parquet`` files, train first."""
    files = [
        (p.stem.split("-")[0], p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
    ]
    if not files:
        raise SourceError([Problem(str(folder), None, f"no {{split}}{'/'.join(FILE_SUFFIXES)} files in this folder")])
    return sorted(files, key=lambda item: _split_rank(item[0]))


def _read_hub(dataset_id: str, text_column: str, label_column: str) -> list[RawTable]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # network, auth, missing repo, bad files: all end the import the same way
        raise SourceError(
            [
                Problem(
                    dataset_id,
                    None,
                    "is not a local file or folder, and could not be loaded "
                    "from the Hugging Face Hub "
                    f"({type(exc).__name__}: {exc})",
                )
            ]
        ) from None
    return [
        _hub_table(loaded[split], f"{dataset_id} [{split}]", text_column, label_column, split)
        for split in sorted(loaded, key=_split_rank)
    ]


def _hub_table(dataset, name: str, text_column: str, label_column: str, split: str) -> RawTable:
    """One split: its row count checked before anything is read, its characters before only the needed
    columns are decoded."""
    if dataset.num_rows > MAX_IMPORT_ROWS:
        raise SourceError([Problem(name, None, f"{dataset.num_rows:,} rows; the limit is {MAX_IMPORT_ROWS:,}")])
    _check_columns(name, dataset.column_names, [text_column, label_column])
    columns = [c for c in dict.fromkeys([text_column, label_column, "split"]) if c in dataset.column_names]
    try:
        frame = read_arrow(
            dataset.select_columns(columns).with_format("arrow")[:],
            _cell_limits(text_column, label_column),
            {"split": MAX_LABEL_CHARS},
            limits=IMPORT_LIMITS,
            name=name,
        )
    except TableError as error:
        raise _source_error(error) from None
    return _table(frame, name, "row", text_column, label_column, split)


def read_source(
    source: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split: str | None = None,
    name: str | None = None,
    progress: Progress = no_progress,
) -> Preview:
    """Read ``source`` (a folder of split files, one file, or a Hub dataset id) without writing anything.

    ``split`` names the split of a single file that has no ``split`` column (default: the file's
    name when it is train/validation/test, else train). ``name`` is how messages call a single
    file (an uploaded file's original name).
    """
    path = Path(source).expanduser()
    progress(0.0, f"Reading {name or source}")
    if path.is_dir():
        files = _split_files(path)
        tables = []
        for i, (file_split, file) in enumerate(files):
            progress(i / len(files), f"Reading {file.name}")
            tables.append(_read_file(file, file.name, text_column, label_column, file_split))
        label = name or path.name
    elif path.is_file():
        label = name or path.name
        default_split = split or (path.stem if path.stem in SPLIT_ORDER else "train")
        tables = [_read_file(path, label, text_column, label_column, default_split)]
    elif _HUB_ID.match(str(source)) and path.suffix.lower() not in FILE_SUFFIXES:
        label = str(source)
        tables = _read_hub(label, text_column, label_column)
    else:
        raise SourceError([Problem(str(source), None, "no such file or folder")])
    counts = Counter(label_key(v) for t in tables for v in t.frame["label"].tolist())
    counts.pop("", None)
    progress(1.0, f"Read {label}")
    return Preview(label, tables, dict(counts.most_common()))


def text_problem(text: object) -> str | None:
    """Why ``text`` cannot be an example's text (missing, not a string, empty, too long, not Unicode), or None."""
    if _missing(text):
        return "text is missing"
    if not isinstance(text, str):
        return f"text is a {type(text).__name__}, not a string"
    if not text.strip():
        return "text is empty"
    if len(text) > MAX_TEXT_CHARS:
        return f"text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text holds characters that are not valid Unicode"
    return None


def _row_problem(text: object, key: str, split: object, mapping: Mapping[str, int | None]) -> str | None:
    problem = text_problem(text)
    if problem:
        return problem
    if not key:
        return "label is missing"
    if mapping.get(key) is None:
        return f"label {key!r} is not mapped to injection or benign"
    if not isinstance(split, str) or not _SPLIT_NAME.match(split):
        return f"split {split!r} is not a valid name (letters, digits, _ . -)"
    return None


def prepare(
    preview: Preview, mapping: Mapping[str, int | None] | None = None, progress: Progress = no_progress
) -> Prepared:
    """Map, validate and deduplicate (exact text, first occurrence kept) every row, or raise SourceError."""
    mapping = preview.proposed_mapping if mapping is None else mapping
    problems, rows, seen = [], [], {}
    duplicates = conflicting = 0
    done = 0
    for table in preview.tables:
        frame = table.frame
        for row, text, raw_label, split in zip(
            frame.index, frame["text"].tolist(), frame["label"].tolist(), frame["split"].tolist()
        ):
            done += 1
            if done % 20_000 == 0:
                progress(done / preview.n_rows, f"Checking {table.file}")
            key = label_key(raw_label)
            problem = _row_problem(text, key, split, mapping)
            if problem:
                problems.append(Problem(table.file, int(row), problem, table.unit))
                continue
            digest, label = text_hash(text), mapping[key]
            if digest in seen:
                duplicates += 1
                conflicting += seen[digest] != label
                continue
            seen[digest] = label
            rows.append((split, text, digest, label))
    if problems:
        raise SourceError(problems)
    if not rows:
        raise SourceError([Problem(preview.source, None, "holds no rows")])
    return Prepared(preview.source, rows, duplicates, conflicting)


def load(
    source: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    name: str | None = None,
    progress: Progress = no_progress,
) -> Prepared:
    """read_source + prepare with the proposed mapping: for the command line, where no one confirms a mapping."""
    preview = read_source(source, text_column=text_column, label_column=label_column, name=name, progress=progress)
    return prepare(preview, progress=progress)

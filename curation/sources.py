"""Read a labelled dataset from the Hub, parquet, CSV, JSONL or a folder of files, and validate it.

Two steps, so that people see the label mapping before anything is written:
``read_source`` gives a Preview (the raw rows and a proposed mapping from raw
label values to injection/benign); ``prepare`` applies a mapping and returns
validated, deduplicated rows, or raises SourceError listing every problem with
its file and row. Only prepared rows reach the store, so a file that fails
validation writes nothing.

Every row has a source (where it came from): the file's ``source`` column where it has one and the cell is not
blank, else the dataset's name. A folder is read one of two ways:

- a folder of split files: every file is named after a split (``train``, ``validation``, ``test``, ...,
  sharded ``train-00000-of-00002`` too): one dataset, named after the folder, its splits as the files say;
- any other folder is a folder of sources (``../shared/data/train-pool``): each file is a source named after
  its stem, and its rows go to the split its ``split`` column names, else to ``split`` (default ``train``; a
  snapshot can carve a test share from every source by text hash, curation.mix).

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
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import pandas as pd

from curation.labels import guess_label, text_hash
from intake import DATASET_LIMITS, TableError, read_arrow, read_columns

MAX_TEXT_CHARS = 100_000
IMPORT_LIMITS = DATASET_LIMITS
MAX_IMPORT_ROWS, MAX_IMPORT_CHARS = IMPORT_LIMITS.rows, IMPORT_LIMITS.total_chars
MAX_LABEL_CHARS = 1_000
"""Longest label, split or source value read."""
MAX_PROBLEMS_SHOWN = 20
MAX_FOLDER_FILES = 200
"""Most files read from one folder (each file is bounded by IMPORT_LIMITS)."""
FILE_SUFFIXES = (".parquet", ".csv", ".jsonl")
SPLIT_ORDER = ("train", "validation", "test", "unseen")
SPLIT_NAMES = (*SPLIT_ORDER, "valid", "dev")
"""File names that make a folder a folder of split files ("unseen": a snapshot's held-out sources)."""
DEFAULT_SPLIT = "train"
_SHARD = re.compile(r"-\d+-of-\d+(-[0-9a-f]+)?$")
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
    """One file (or Hub split): columns text, label, split, source, indexed by the row number people see."""

    file: str
    unit: str
    frame: pd.DataFrame
    source: str
    """The source of its rows whose ``source`` cell is missing or blank (or that have no such column)."""


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

    @property
    def folder_of_sources(self) -> bool:
        """True when each file was read as a source of its own (see the module docstring)."""
        return len({t.source for t in self.tables}) > 1 or any(t.source != self.source for t in self.tables)


@dataclass(frozen=True)
class Prepared:
    """Validated rows ready for LabelStore.import_examples: (split, text, text hash, label), and each row's
    source (``row_sources``, aligned with ``rows``; empty: every row's source is ``source``)."""

    source: str
    rows: list[tuple[str, str, str, int]]
    duplicates: int
    conflicting_duplicates: int
    row_sources: list[str] = field(default_factory=list)

    def staged(self) -> list[tuple[str, str, str, int, str]]:
        """The rows as (split, text, text hash, label, source)."""
        return [(*row, source) for row, source in zip(self.rows, self.row_sources or repeat(self.source))]

    def source_counts(self) -> dict[str, int]:
        """{source: rows}, sources in name order."""
        return dict(sorted(Counter(self.row_sources or [self.source] * len(self.rows)).items()))

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


def _column_or(frame: pd.DataFrame, column: str, taken: tuple[str, ...], default: str) -> list | str:
    """The frame's ``column`` with ``default`` in its missing or blank cells; ``default`` alone when the frame
    has no such column (or it is already read as the text or label)."""
    if column not in frame.columns or column in taken:
        return default
    return [default if _missing(v) or (isinstance(v, str) and not v.strip()) else v for v in frame[column].tolist()]


def _table(
    frame: pd.DataFrame, name: str, unit: str, text_column: str, label_column: str, split: str, source: str
) -> RawTable:
    _check_columns(name, [str(c) for c in frame.columns], [text_column, label_column])
    taken = (text_column, label_column)
    columns = {
        "text": frame[text_column],
        "label": frame[label_column],
        "split": _column_or(frame, "split", taken, split),
        "source": _column_or(frame, "source", taken, source),
    }
    return RawTable(name, unit, pd.DataFrame(columns, index=frame.index, dtype=object), source)


def _cell_limits(text_column: str, label_column: str) -> dict[str, int]:
    """Column -> most characters read from one of its cells (the text is bounded by the file's total alone)."""
    cells = {text_column: MAX_IMPORT_CHARS}
    cells.setdefault(label_column, MAX_LABEL_CHARS)
    return cells


def _source_error(error: TableError) -> SourceError:
    return SourceError([Problem(error.file, issue.row, issue.message, issue.unit) for issue in error.issues])


_OPTIONAL_COLUMNS = {"split": MAX_LABEL_CHARS, "source": MAX_LABEL_CHARS}


def _read_file(path: Path, name: str, text_column: str, label_column: str, split: str, source: str) -> RawTable:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise SourceError(
            [Problem(name, None, f"unsupported file type {suffix or '(none)'!r}; use {', '.join(FILE_SUFFIXES)}")]
        )
    try:
        frame = read_columns(
            path, _cell_limits(text_column, label_column), _OPTIONAL_COLUMNS, limits=IMPORT_LIMITS, name=name
        )
    except TableError as error:
        raise _source_error(error) from None
    return _table(frame, name, "line" if suffix == ".jsonl" else "row", text_column, label_column, split, source)


def _split_rank(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def file_stem(path: Path) -> str:
    """A data file's name without its suffix or shard part: ``train-00000-of-00002.parquet`` -> ``train``."""
    return _SHARD.sub("", path.stem)


def _folder_files(folder: Path) -> list[Path]:
    """The folder's data files, by name; SourceError when there are none or too many."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in FILE_SUFFIXES]
    if not files:
        raise SourceError([Problem(str(folder), None, f"no {{split}}{'/'.join(FILE_SUFFIXES)} files in this folder")])
    if len(files) > MAX_FOLDER_FILES:
        raise SourceError([Problem(str(folder), None, f"{len(files)} files; the limit is {MAX_FOLDER_FILES}")])
    return files


def is_split_folder(files: list[Path]) -> bool:
    """Whether every file is named after a split (a dataset's splits), rather than a source of its own."""
    return all(file_stem(p) in SPLIT_NAMES for p in files)


def _read_folder(folder: Path, text_column: str, label_column: str, split: str | None, progress: Progress):
    """The folder's tables, split files first in SPLIT_ORDER (see the module docstring for the two kinds)."""
    files = _folder_files(folder)
    if is_split_folder(files):
        named = sorted(((file_stem(p), folder.name, p) for p in files), key=lambda item: _split_rank(item[0]))
    else:
        named = [(split or DEFAULT_SPLIT, file_stem(p), p) for p in files]
    tables = []
    for i, (file_split, source, file) in enumerate(named):
        progress(i / len(named), f"Reading {file.name}")
        tables.append(_read_file(file, file.name, text_column, label_column, file_split, source))
    return tables


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
    ordered = sorted(loaded, key=_split_rank)
    return [_hub_table(loaded[split], dataset_id, split, text_column, label_column) for split in ordered]


def _hub_table(dataset, dataset_id: str, split: str, text_column: str, label_column: str) -> RawTable:
    """One split: its row count checked before anything is read, its characters before only the needed
    columns are decoded."""
    name = f"{dataset_id} [{split}]"
    if dataset.num_rows > MAX_IMPORT_ROWS:
        raise SourceError([Problem(name, None, f"{dataset.num_rows:,} rows; the limit is {MAX_IMPORT_ROWS:,}")])
    _check_columns(name, dataset.column_names, [text_column, label_column])
    columns = [c for c in dict.fromkeys([text_column, label_column, *_OPTIONAL_COLUMNS]) if c in dataset.column_names]
    try:
        frame = read_arrow(
            dataset.select_columns(columns).with_format("arrow")[:],
            _cell_limits(text_column, label_column),
            _OPTIONAL_COLUMNS,
            limits=IMPORT_LIMITS,
            name=name,
        )
    except TableError as error:
        raise _source_error(error) from None
    return _table(frame, name, "row", text_column, label_column, split, dataset_id)


def read_source(
    source: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split: str | None = None,
    name: str | None = None,
    progress: Progress = no_progress,
) -> Preview:
    """Read ``source`` (a folder of split files, a folder of sources, one file, or a Hub dataset id) without
    writing anything.

    ``split`` names the split of rows that have no ``split`` cell, in a single file (default: the file's
    name when it is train/validation/test, else train) or in a folder of sources (default train). ``name`` is
    how messages call a single file (an uploaded file's original name), and the source of its rows.
    """
    path = Path(source).expanduser()
    progress(0.0, f"Reading {name or source}")
    if path.is_dir():
        label = name or path.name
        tables = _read_folder(path, text_column, label_column, split, progress)
    elif path.is_file():
        label = name or path.name
        default_split = split or (path.stem if path.stem in SPLIT_ORDER else DEFAULT_SPLIT)
        tables = [_read_file(path, label, text_column, label_column, default_split, label)]
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
    problems, rows, row_sources, seen = [], [], [], {}
    duplicates = conflicting = 0
    done = 0
    for table in preview.tables:
        frame = table.frame
        for row, text, raw_label, split, source in zip(
            frame.index,
            frame["text"].tolist(),
            frame["label"].tolist(),
            frame["split"].tolist(),
            frame["source"].tolist(),
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
            row_sources.append(str(source).strip())
    if problems:
        raise SourceError(problems)
    if not rows:
        raise SourceError([Problem(preview.source, None, "holds no rows")])
    return Prepared(preview.source, rows, duplicates, conflicting, row_sources)


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

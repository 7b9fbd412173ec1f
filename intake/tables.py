"""The wanted columns of a CSV, parquet or JSONL file from outside, refused before the file can fill memory.

A file can decode to far more than its size: a parquet dictionary page holds one 100 kB string that
20,000 rows repeat (a few hundred bytes on disk, 2 GB of text), a compressed page inflates a
thousandfold, every JSONL line can bring a new column, a CSV header can name thousands. So nothing
is decoded before it is known to fit ``Limits``:

- parquet: the row count and the uncompressed size of the needed column chunks come from the footer
  and are checked first; only the needed columns are read, text ones as dictionaries so a repeated
  value is held once, and each cell's length is computed from the dictionary and the indices before
  any string is built.
- CSV and JSONL: the file's size is checked first; then it is read a line at a time (each line at
  most ``Limits.row_bytes``, checked to be UTF-8), keeping only the wanted columns and counting their
  characters as they come. pyarrow parses CSV in blocks of ``row_bytes``, so no row is longer either.

Every refusal is a ``TableError`` whose issues name the file, where, and the limit.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

MAX_COLUMNS = 1_000
"""Most columns a file may have: CSV header fields, parquet fields or distinct JSONL keys."""
MAX_FOOTER_BYTES = 8 * 2**20
"""Largest parquet footer (schema and row-group metadata) that is parsed."""
MAX_ISSUES = 100
"""Reading stops at this many bad lines; all of them are reported."""
BYTES_PER_CHAR = 4
"""A file (or its needed parquet columns, uncompressed) may take this many bytes per character of
``Limits.total_chars``: the most one UTF-8 character takes, which also leaves room for quotes, keys
and small columns around ASCII text."""
NAMES_SHOWN = 20
ERROR_CHARS_SHOWN = 200


@dataclass(frozen=True)
class Limits:
    """How much of one file may be read.

    ``rows``: most rows; a file with more is refused or, with ``keep_first_rows``, read up to there.
    ``total_chars``: most characters in all the wanted columns' cells together.
    ``row_bytes``: longest CSV row or JSONL line, in bytes.
    Each wanted column's cap on one cell is given with the column (see read_columns).
    """

    rows: int
    total_chars: int
    row_bytes: int = 2**20
    keep_first_rows: bool = False

    @property
    def file_bytes(self) -> int:
        """Most bytes a CSV or JSONL file, or the needed parquet column chunks uncompressed, may take."""
        return BYTES_PER_CHAR * self.total_chars


DATASET_LIMITS = Limits(rows=250_000, total_chars=50_000_000, row_bytes=16 * 2**20)
"""A labelled dataset to import, or a file of prompts to score from the command line (serving.score): per file or
Hub split, all the columns read together; a CSV row or JSONL line may hold an over-long text, which the reader's
caller then reports with its row."""


@dataclass(frozen=True)
class Issue:
    """One reason a file is refused: at ``row`` (counted in ``unit``: row or line), or the whole file when None."""

    row: int | None
    message: str
    unit: str = "row"


class TableError(ValueError):
    """The file is refused; ``issues`` say where and why, one line each in the message."""

    def __init__(self, file: str, issues: list[Issue]):
        self.file, self.issues = file, issues
        super().__init__(
            "\n".join(f"{file if i.row is None else f'{file}, {i.unit} {i.row}'}: {i.message}" for i in issues)
        )


class NotUtf8(TableError):
    """The file is not UTF-8 text: byte value ``byte`` at ``position`` (from the file's start) on ``line``."""

    def __init__(self, file: str, line: int, position: int, byte: int):
        self.line, self.position, self.byte = line, position, byte
        super().__init__(file, [Issue(line, f"byte {position} is not valid UTF-8 text", "line")])


@dataclass(frozen=True)
class _Wanted:
    required: tuple[str, ...]
    cells: dict[str, int]
    """Every wanted column, required or optional -> most characters in one of its cells."""


def _wanted(columns: Mapping[str, int], optional: Mapping[str, int] | None) -> _Wanted:
    return _Wanted(tuple(columns), {**(optional or {}), **columns})


def _error(file: str, message: str, row: int | None = None, unit: str = "row") -> TableError:
    return TableError(file, [Issue(row, message, unit)])


def _names(names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:NAMES_SHOWN]))
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN:,} more"


def read_columns(
    path: str | Path,
    columns: Mapping[str, int],
    optional: Mapping[str, int] | None = None,
    *,
    limits: Limits,
    name: str | None = None,
) -> pd.DataFrame:
    """The ``columns`` (and those of ``optional`` that the file has) of a CSV, parquet or JSONL file.

    ``columns`` and ``optional`` map a column to the most characters one of its cells may hold. The
    frame holds Python values (dtype object; a JSONL line without the key gives None), indexed by the
    row number people see: the data row from 1, or for JSONL the line. ``name`` is how messages call
    the file (default: its name). Raises TableError (NotUtf8 for bytes that are not UTF-8).
    """
    path = Path(path)
    name = name or path.name
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise _error(name, f"unsupported file type {suffix or '(none)'!r}; use .parquet, .csv or .jsonl")
    try:
        return _READERS[suffix](path, _wanted(columns, optional), limits, name)
    except OSError as exc:
        raise _error(name, f"cannot be read ({exc.strerror or exc})") from None


def read_arrow(
    table: pa.Table, columns: Mapping[str, int], optional: Mapping[str, int] | None = None, *, limits: Limits, name: str
) -> pd.DataFrame:
    """read_columns for an Arrow table already at hand (a memory-mapped Hub dataset): checked before decoding."""
    wanted = _wanted(columns, optional)
    return _checked_frame(table.select(_needed(wanted, table.schema, name)), wanted, limits, name)


def _checked_frame(table: pa.Table, wanted: _Wanted, limits: Limits, name: str) -> pd.DataFrame:
    if table.num_rows > limits.rows:
        if not limits.keep_first_rows:
            raise _error(name, f"{table.num_rows:,} rows; the limit is {limits.rows:,}")
        table = table.slice(0, limits.rows)
    _Budget(wanted.cells, limits, name).take(table, first_row=1)
    return _frame({c: table.column(c).to_pylist() for c in table.column_names}, range(1, table.num_rows + 1))


def _frame(values: Mapping[str, list], index) -> pd.DataFrame:
    return pd.DataFrame(dict(values), index=pd.Index(index, dtype="int64"), dtype=object)


def _check_present(wanted: _Wanted, present: list[str], name: str) -> None:
    missing = [c for c in wanted.required if c not in present]
    if missing:
        raise _error(name, f"no column {', '.join(map(repr, missing))}; the columns are {_names(present)}")


def _check_column_count(count: int, name: str) -> None:
    if count > MAX_COLUMNS:
        raise _error(name, f"{count:,} columns; the limit is {MAX_COLUMNS:,}")


def _is_text(kind: pa.DataType) -> bool:
    return any(
        test(kind)
        for test in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_binary,
            pa.types.is_large_binary,
            pa.types.is_fixed_size_binary,
        )
    )


def _is_flat(kind: pa.DataType) -> bool:
    """Text or a scalar: the types whose size the checks here can bound (no lists, structs, maps or views)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return _is_text(kind) or any(
        test(kind)
        for test in (
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_decimal,
            pa.types.is_boolean,
            pa.types.is_null,
            pa.types.is_temporal,
        )
    )


def _needed(wanted: _Wanted, schema: pa.Schema, name: str) -> list[str]:
    """The wanted columns the file has, in wanted order; refuses a missing required column or a nested one."""
    _check_column_count(len(schema.names), name)
    _check_present(wanted, schema.names, name)
    needed = [c for c in wanted.cells if c in schema.names]
    for column in needed:
        kind = schema.field(column).type
        if not _is_flat(kind):
            raise _error(name, f"column {column!r} holds {kind} values; only text, numbers and booleans can be read")
    return needed


def _chunk_lengths(chunk: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(chunk.type):
        return pc.take(_chunk_lengths(chunk.dictionary), chunk.indices).fill_null(0)
    text = pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)
    return (pc.utf8_length if text else pc.binary_length)(chunk).cast(pa.int64()).fill_null(0)


def _cell_lengths(column: pa.ChunkedArray) -> pa.Array | None:
    """Each cell's length in characters (bytes for binary; 0 when null), or None for a column that is not text.

    A dictionary's values are measured once and their lengths taken by the indices, so a value
    repeated on every row is never expanded.
    """
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not _is_text(kind):
        return None
    chunks = [_chunk_lengths(chunk) for chunk in column.chunks]
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.int64())


class _Budget:
    """Characters read so far from the wanted columns; refuses a cell or the running total over its limit."""

    def __init__(self, cells: Mapping[str, int], limits: Limits, name: str, unit: str = "row"):
        self.cells, self.limits, self.name, self.unit = cells, limits, name, unit
        self.chars = 0
        self.counted: dict[str, None] = {}
        """The columns whose characters are in ``chars``, for the message."""

    def cell(self, row: int, column: str, chars: int) -> None:
        self.counted[column] = None
        if chars > self.cells[column]:
            raise _error(
                self.name,
                f"{column!r} is {chars:,} characters long; the limit is {self.cells[column]:,}",
                row,
                self.unit,
            )

    def total(self, chars: int, last_row: int) -> None:
        self.chars += chars
        if self.chars > self.limits.total_chars:
            rows = f"{self.unit} 1 holds" if last_row == 1 else f"{self.unit}s 1 to {last_row:,} hold"
            raise _error(
                self.name,
                f"{rows} {self.chars:,} characters of {_names(list(self.counted))}; "
                f"the limit is {self.limits.total_chars:,}",
            )

    def take(self, table: pa.Table, first_row: int) -> None:
        """Checks the text cells of ``table`` (rows ``first_row`` on) from their lengths alone, total first."""
        lengths = {c: found for c in table.column_names if (found := _cell_lengths(table.column(c))) is not None}
        self.counted.update(dict.fromkeys(lengths))
        self.total(sum(pc.sum(found).as_py() or 0 for found in lengths.values()), first_row + table.num_rows - 1)
        for column, found in lengths.items():
            over = pc.indices_nonzero(pc.greater(found, self.cells[column]))
            if len(over):
                self.cell(first_row + over[0].as_py(), column, found[over[0].as_py()].as_py())


# -- parquet -----------------------------------------------------------------------------------------


def _read_parquet(path: Path, wanted: _Wanted, limits: Limits, name: str) -> pd.DataFrame:
    try:
        _check_footer(path, name)
        meta = pq.read_metadata(path)
        needed = _needed(wanted, meta.schema.to_arrow_schema(), name)
        groups = _row_groups(meta, limits, name)
        _check_uncompressed(meta, groups, needed, limits, name)
        table = pq.ParquetFile(path, metadata=meta, read_dictionary=needed).read_row_groups(groups, columns=needed)
    except (pa.ArrowException, OSError) as exc:
        raise _error(name, f"not a readable parquet file ({exc})") from None
    return _checked_frame(table, wanted, limits, name)


def _check_footer(path: Path, name: str) -> None:
    """Refuses a footer over MAX_FOOTER_BYTES before it is parsed (a file of countless columns or row groups)."""
    with path.open("rb") as file:
        size = file.seek(0, 2)
        file.seek(max(size - 8, 0))
        tail = file.read(8)
    footer = int.from_bytes(tail[:4], "little")
    if tail[4:] == b"PAR1" and footer > MAX_FOOTER_BYTES:
        raise _error(name, f"its metadata takes {footer:,} bytes; the limit is {MAX_FOOTER_BYTES:,}")


def _row_groups(meta: pq.FileMetaData, limits: Limits, name: str) -> list[int]:
    """Every row group, or with keep_first_rows those holding the first ``limits.rows`` rows."""
    if meta.num_rows > limits.rows and not limits.keep_first_rows:
        raise _error(name, f"{meta.num_rows:,} rows; the limit is {limits.rows:,}")
    groups, rows = [], 0
    while len(groups) < meta.num_row_groups and rows < limits.rows:
        rows += meta.row_group(len(groups)).num_rows
        groups.append(len(groups))
    return groups


def _check_uncompressed(meta: pq.FileMetaData, groups: list[int], needed: list[str], limits: Limits, name: str) -> None:
    """Refuses needed column chunks that inflate past ``limits.file_bytes`` (a huge compressed cell), unread."""
    size = 0
    for group in map(meta.row_group, groups):
        chunks = map(group.column, range(group.num_columns))
        size += sum(chunk.total_uncompressed_size for chunk in chunks if chunk.path_in_schema in needed)
    if size > limits.file_bytes:
        raise _error(name, f"{size:,} bytes uncompressed in {_names(needed)}; the limit is {limits.file_bytes:,}")


# -- CSV and JSONL -----------------------------------------------------------------------------------


def _check_file_bytes(path: Path, limits: Limits, name: str) -> None:
    """A file over ``limits.file_bytes`` is refused, unless only its first rows are read: then reading stops
    there, and the line and character caps bound memory."""
    size = path.stat().st_size
    if size > limits.file_bytes and not limits.keep_first_rows:
        raise _error(name, f"the file is {size:,} bytes; the limit is {limits.file_bytes:,}")


def _decoded(raw: bytes, line: int, position: int, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8(name, line, position + exc.start, raw[exc.start]) from None


def _lines(path: Path, limits: Limits, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line, a leading BOM dropped; refuses a line over ``limits.row_bytes``
    bytes, or bytes that are not UTF-8, naming the line."""
    position = 0
    with path.open("rb") as file:
        for number, raw in enumerate(iter(lambda: file.readline(limits.row_bytes + 1), b""), 1):
            if len(raw) > limits.row_bytes:
                raise _error(
                    name,
                    f"the line is over {limits.row_bytes:,} bytes; the limit is {limits.row_bytes:,}",
                    number,
                    "line",
                )
            bom = len(codecs.BOM_UTF8) if number == 1 and raw.startswith(codecs.BOM_UTF8) else 0
            yield number, _decoded(raw[bom:], number, position + bom, name)
            position += len(raw)


def _read_csv(path: Path, wanted: _Wanted, limits: Limits, name: str) -> pd.DataFrame:
    _check_file_bytes(path, limits, name)
    lines = _lines(path, limits, name)
    header = _csv_header(next(lines, None), name)
    deque(lines, maxlen=0)  # every line checked (UTF-8, length) before pyarrow parses any
    _check_column_count(len(header), name)
    _check_present(wanted, header, name)
    table = _csv_table(path, [c for c in wanted.cells if c in header], wanted, limits, name)
    return _frame({c: table.column(c).to_pylist() for c in table.column_names}, range(1, table.num_rows + 1))


def _csv_header(first: tuple[int, str] | None, name: str) -> list[str]:
    if first is None:
        raise _error(name, "not a readable CSV file (it is empty)")
    try:
        return next(csv.reader([first[1]]), [])
    except csv.Error as exc:
        raise _error(name, f"not a readable CSV file ({exc})") from None


def _csv_table(path: Path, needed: list[str], wanted: _Wanted, limits: Limits, name: str) -> pa.Table:
    """The needed columns as text, parsed by pyarrow a block of ``limits.row_bytes`` at a time and checked
    block by block, so memory holds one block plus what is kept."""
    budget, batches, rows = _Budget(wanted.cells, limits, name), [], 0
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=limits.row_bytes, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=needed, column_types=dict.fromkeys(needed, pa.string())
            ),
        )
        for batch in reader:
            if rows == limits.rows and limits.keep_first_rows:
                break
            if rows + batch.num_rows > limits.rows and not limits.keep_first_rows:
                raise _error(name, f"more than {limits.rows:,} rows; the limit is {limits.rows:,}")
            table = pa.Table.from_batches([batch.slice(0, limits.rows - rows)])
            budget.take(table, rows + 1)
            batches.append(table)
            rows += table.num_rows
    except pa.ArrowException as exc:
        raise _unreadable_csv(exc, limits, name) from None
    return pa.concat_tables(batches) if batches else reader.schema.empty_table()


def _unreadable_csv(exc: pa.ArrowException, limits: Limits, name: str) -> TableError:
    if "straddl" in str(exc):  # pyarrow's words for a row longer than a block
        return _error(
            name,
            f"a row (or an unclosed quote) runs over {limits.row_bytes:,} bytes; the limit is {limits.row_bytes:,}",
        )
    return _error(name, f"not a readable CSV file ({str(exc)[:ERROR_CHARS_SHOWN]})")


def _read_jsonl(path: Path, wanted: _Wanted, limits: Limits, name: str) -> pd.DataFrame:
    _check_file_bytes(path, limits, name)
    budget, keys, issues = _Budget(wanted.cells, limits, name, "line"), {}, []
    values: dict[str, list] = {c: [] for c in wanted.cells}
    lines: list[int] = []
    for number, text in _lines(path, limits, name):
        if not text.strip():
            continue
        record, problem = _json_object(text, wanted)
        if problem:
            issues.append(Issue(number, problem, "line"))
            if len(issues) == MAX_ISSUES:
                break
            continue
        _add_keys(keys, record, number, name)
        if len(lines) == limits.rows:
            if limits.keep_first_rows:
                break
            raise _error(name, f"more than {limits.rows:,} rows; the limit is {limits.rows:,}")
        _keep(record, number, budget, values)
        lines.append(number)
    if issues:
        raise TableError(name, issues)
    _check_present(wanted, list(keys), name)
    return _frame({c: v for c, v in values.items() if c in keys}, lines)


def _json_object(text: str, wanted: _Wanted) -> tuple[dict | None, str | None]:
    """(the line's object, None), or (None, why it cannot be a row: not JSON, not an object, a wanted value nested)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"
    except ValueError as exc:  # an integer of more digits than Python converts
        return None, f"not valid JSON ({exc})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    for column in wanted.cells:
        if isinstance(record.get(column), (list, dict)):
            kind = "list" if isinstance(record[column], list) else "object"
            return None, f"{column!r} is a JSON {kind}; only strings, numbers and booleans can be read"
    return record, None


def _add_keys(keys: dict[str, None], record: dict, line: int, name: str) -> None:
    """Adds the record's keys to the keys seen (in order), refusing the file past MAX_COLUMNS of them."""
    for key in record:
        if key not in keys:
            if len(keys) == MAX_COLUMNS:
                raise _error(
                    name,
                    f"more than {MAX_COLUMNS:,} different keys up to here; the limit is {MAX_COLUMNS:,} columns",
                    line,
                    "line",
                )
            keys[key] = None


def _keep(record: dict, line: int, budget: _Budget, values: dict[str, list]) -> None:
    chars = 0
    for column, kept in values.items():
        value = record.get(column)
        if isinstance(value, str):
            budget.cell(line, column, len(value))
            chars += len(value)
        kept.append(value)
    budget.total(chars, line)


_READERS = {".parquet": _read_parquet, ".csv": _read_csv, ".jsonl": _read_jsonl, ".ndjson": _read_jsonl}

"""Reading files from outside within limits (intake/tables.py): ordinary files read as before, bombs refused.

Each bomb (tests/helpers.py) is read in a fresh Python (peak_growth) so that its peak memory is its own: a file of a few
hundred bytes that decodes to gigabytes must be refused with a clear message, the process growing by
less than MAX_GROWTH_MB.
"""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    BIG_STRING_CHARS,
    DATA_DIR,
    MAX_GROWTH_MB,
    dictionary_bomb,
    many_columns_csv,
    new_key_per_line,
    one_cell_bomb,
    read_growth,
)

from intake import Limits, NotUtf8, TableError, read_arrow, read_columns
from intake.tables import MAX_COLUMNS, MAX_ISSUES

DETECT = {"rows": 1_001, "total_chars": 2_000_000, "keep_first_rows": True}
IMPORT = {"rows": 250_000, "total_chars": 50_000_000, "row_bytes": 16 * 2**20}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "20k": dictionary_bomb(folder / "prompts.parquet", 20_000),
        "200k": dictionary_bomb(folder / "huge.parquet", 200_000),
        "cell": one_cell_bomb(folder / "cell.parquet", 256 * 2**20),
        "keys": new_key_per_line(folder / "keys.jsonl"),
        "columns": many_columns_csv(folder / "wide.csv"),
    }


@pytest.mark.parametrize(
    "bomb, limits, message",
    [
        (
            "20k",
            DETECT,
            "prompts.parquet: rows 1 to 1,001 hold 100,100,000 characters of 'text'; the limit is 2,000,000",
        ),
        (
            "20k",
            IMPORT,
            "prompts.parquet: rows 1 to 20,000 hold 2,000,000,000 characters of 'text'; the limit is 50,000,000",
        ),
        (
            "200k",
            IMPORT,
            "huge.parquet: rows 1 to 200,000 hold 20,000,000,000 characters of 'text'; the limit is 50,000,000",
        ),
        ("cell", DETECT, "cell.parquet: 268,435,491 bytes uncompressed in 'text'; the limit is 8,000,000"),
        ("cell", IMPORT, "cell.parquet: 268,435,491 bytes uncompressed in 'text'; the limit is 200,000,000"),
        (
            "keys",
            IMPORT,
            "keys.jsonl, line 1000: more than 1,000 different keys up to here; the limit is 1,000 columns",
        ),
        ("columns", IMPORT, "wide.csv: 3,000 columns; the limit is 1,000"),
    ],
)
def test_bombs_are_refused_without_taking_memory(bombs, bomb, limits, message):
    grew, refused = read_growth(bombs[bomb], {"text": BIG_STRING_CHARS}, limits)
    assert refused == message
    assert grew < MAX_GROWTH_MB


def test_a_big_cell_within_the_byte_bound_is_measured_before_it_is_kept(tmp_path):
    path = one_cell_bomb(tmp_path / "cell.parquet", 120 * 2**20)
    grew, refused = read_growth(path, {"text": 200_000_000}, IMPORT)
    assert refused == "cell.parquet: row 1 holds 125,829,120 characters of 'text'; the limit is 50,000,000"
    assert grew < MAX_GROWTH_MB


def safe_guard():
    return pd.read_parquet(DATA_DIR / "train.parquet")


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_ordinary_files_read_as_before(tmp_path, suffix):
    expected = safe_guard()
    path = DATA_DIR / "train.parquet"
    if suffix == "csv":
        expected.to_csv(path := tmp_path / "train.csv", index=False)
    elif suffix == "jsonl":
        expected.to_json(path := tmp_path / "train.jsonl", orient="records", lines=True, force_ascii=False)
    frame = read_columns(path, {"text": 100_000, "label": 1_000}, {"split": 1_000}, limits=Limits(**IMPORT))
    assert list(frame.columns) == ["text", "label"] and frame.index.tolist() == list(range(1, len(expected) + 1))
    assert frame["text"].tolist() == expected["text"].tolist()
    labels = expected["label"].astype(str) if suffix == "csv" else expected["label"]
    assert frame["label"].tolist() == labels.tolist()


def write(tmp_path, name: str, frame: pd.DataFrame):
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    else:
        frame.to_parquet(path)
    return path


def refusal(path, columns=None, **limits) -> str:
    with pytest.raises(TableError) as caught:
        read_columns(path, columns or {"text": 100}, limits=Limits(**{"rows": 10, "total_chars": 1_000, **limits}))
    return str(caught.value)


@pytest.mark.parametrize("name, unit", [("p.csv", "row"), ("p.parquet", "row"), ("p.jsonl", "line")])
def test_rows_cells_and_totals_are_capped(tmp_path, name, unit):
    texts = ["a" * 10, "b" * 20, "c" * 30, "d" * 40]
    path = write(tmp_path, name, pd.DataFrame({"text": texts, "other": [1, 2, 3, 4]}))
    rows = "4 rows" if unit == "row" and name.endswith(".parquet") else "more than 3 rows"
    assert refusal(path, rows=3) == f"{name}: {rows}; the limit is 3"
    assert refusal(path, {"text": 25}) == f"{name}, {unit} 3: 'text' is 30 characters long; the limit is 25"
    assert refusal(path, total_chars=70) == f"{name}: {unit}s 1 to 4 hold 100 characters of 'text'; the limit is 70"
    first = read_columns(path, {"text": 100}, limits=Limits(rows=2, total_chars=1_000, keep_first_rows=True))
    assert first["text"].tolist() == texts[:2] and first.index.tolist() == [1, 2]


def test_missing_columns_are_listed_and_optional_ones_skipped(tmp_path):
    for name in ("p.csv", "p.parquet", "p.jsonl"):
        path = write(tmp_path, name, pd.DataFrame({"prompt": ["x"], "label": [0]}))
        assert refusal(path) == f"{name}: no column 'text'; the columns are 'prompt', 'label'"
        frame = read_columns(path, {"prompt": 10}, {"split": 10}, limits=Limits(rows=1, total_chars=100))
        assert list(frame.columns) == ["prompt"]


def test_nested_values_are_refused(tmp_path):
    pq.write_table(pa.table({"text": [["a", "b"]]}), tmp_path / "list.parquet")
    assert refusal(tmp_path / "list.parquet") == (
        "list.parquet: column 'text' holds list<element: string> values; only text, numbers and booleans can be read"
    )
    (tmp_path / "list.jsonl").write_text('{"text": "ok"}\n{"text": ["a"]}\n', encoding="utf-8")
    assert refusal(tmp_path / "list.jsonl") == (
        "list.jsonl, line 2: 'text' is a JSON list; only strings, numbers and booleans can be read"
    )


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    for name in ("bad.csv", "bad.jsonl"):
        (tmp_path / name).write_bytes(b'\xef\xbb\xbf{"text": "fine"}\n{"text": "caf\xe9"}\n')
        with pytest.raises(NotUtf8) as caught:
            read_columns(tmp_path / name, {"text": 10}, limits=Limits(rows=10, total_chars=100))
        assert (caught.value.line, caught.value.position, caught.value.byte) == (2, 33, 0xE9)
        assert str(caught.value) == f"{name}, line 2: byte 33 is not valid UTF-8 text"


def test_long_lines_and_rows_and_big_files_are_refused_before_parsing(tmp_path):
    long_line = tmp_path / "long.jsonl"
    long_line.write_text('{"text": "' + "x" * 200 + '"}\n', encoding="utf-8")
    assert refusal(long_line, row_bytes=100) == "long.jsonl, line 1: the line is over 100 bytes; the limit is 100"
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('text\n"' + "a\n" * 100 + '"\n', encoding="utf-8")
    assert refusal(quoted, row_bytes=64) == (
        "quoted.csv: a row (or an unclosed quote) runs over 64 bytes; the limit is 64"
    )
    assert refusal(quoted, total_chars=10) == "quoted.csv: the file is 208 bytes; the limit is 40"
    pd.DataFrame({"text": ["y" * 1000]}).to_parquet(tmp_path / "plain.parquet", compression="zstd")
    assert refusal(tmp_path / "plain.parquet", total_chars=100).endswith(
        " bytes uncompressed in 'text'; the limit is 400"
    )


def test_bad_json_lines_are_all_listed_up_to_a_cap(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "ok"}\n{"text": \n[1]\n' + "[" * 100_000 + "\n" + "nope\n" * 500, encoding="utf-8")
    with pytest.raises(TableError) as caught:
        read_columns(path, {"text": 10}, limits=Limits(rows=1_000, total_chars=10**6))
    issues = caught.value.issues
    assert len(issues) == MAX_ISSUES and [i.row for i in issues[:4]] == [2, 3, 4, 5]
    assert [i.message for i in issues[1:3]] == ["not a JSON object", "not valid JSON (nested too deeply)"]


def test_a_wide_header_is_refused_at_the_column_cap(tmp_path):
    many_columns_csv(tmp_path / "wide.csv", columns=MAX_COLUMNS + 1, rows=1)
    message = refusal(tmp_path / "wide.csv", total_chars=10**6)
    assert message == f"wide.csv: {MAX_COLUMNS + 1:,} columns; the limit is 1,000"


def test_arrow_tables_are_checked_before_decoding():
    table = pa.table({"text": ["a", "bbb"], "label": [0, 1], "unused": [[1], [2]]})
    frame = read_arrow(table, {"text": 5, "label": 1}, limits=Limits(rows=2, total_chars=10), name="hub [train]")
    assert frame.to_dict("list") == {"text": ["a", "bbb"], "label": [0, 1]} and frame.index.tolist() == [1, 2]
    with pytest.raises(TableError, match=r"^hub \[train\]: 2 rows; the limit is 1$"):
        read_arrow(table, {"text": 5}, limits=Limits(rows=1, total_chars=10), name="hub [train]")
    with pytest.raises(TableError, match=r"^hub \[train\]: rows 1 to 2 hold 4 characters of 'text'; the limit is 3$"):
        read_arrow(table, {"text": 5}, limits=Limits(rows=2, total_chars=3), name="hub [train]")

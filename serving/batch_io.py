"""Prompts in and tables out for the Detect tab: pasted lines or a file, verdict tables, safe CSV.

- Inputs: pasted lines and/or one uploaded CSV, parquet or JSONL file with a
  ``text`` column; at most ``MAX_BATCH_ROWS`` prompts (the file is read no further
  than one row past that), each at most ``MAX_BATCH_ROW_CHARS`` characters and
  ``MAX_BATCH_CHARS`` in all, or the input is refused before it can fill memory
  (intake.read_columns). A file that is not UTF-8 is refused with the byte and its
  position, not read with guessed encoding.
- The verdict table is rebuilt from stored scores at any threshold, so moving
  the threshold never calls the model. Rows are sorted by disagreement
  (|P after - P before|, largest first); ``row`` is the prompt's input position.
- CSV cells starting with = + - @ (or a tab / carriage return) are prefixed with
  a quote so a spreadsheet shows them as text instead of running a formula.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from intake import Limits, NotUtf8, TableError, read_columns
from serving.service import ExamplePrompt, verdict

MAX_BATCH_ROWS = 1000
MAX_BATCH_ROW_CHARS = 20_000
MAX_BATCH_CHARS = 2_000_000
FILE_LIMITS = Limits(rows=MAX_BATCH_ROWS + 1, total_chars=MAX_BATCH_CHARS, keep_first_rows=True)
"""One row past MAX_BATCH_ROWS is read, to tell that the file holds more than are scored."""
TABLE_TEXT_CHARS = 300
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_NAME = "detect-results.csv"
CSV_MAX_AGE_S = 3600
MAX_CSV_FILES = 32
"""Exports kept at once (one per session, the newest): with the batch caps, at most a few hundred MB."""
EXAMPLE_COLUMNS = ["#", "why", "label", "text"]


class BatchInputError(ValueError):
    """The prompts cannot be read; the message is written for the page."""


def texts_from_lines(pasted: str | None) -> list[str]:
    """One prompt per non-blank line; BatchInputError when the text or a line is over its limit."""
    pasted = pasted or ""
    if len(pasted) > MAX_BATCH_CHARS:
        raise BatchInputError(f"The pasted text is {len(pasted):,} characters long; the limit is {MAX_BATCH_CHARS:,}.")
    texts = []
    for number, line in enumerate(pasted.splitlines(), 1):
        if len(line) > MAX_BATCH_ROW_CHARS:
            raise BatchInputError(
                f"Pasted line {number:,} is {len(line):,} characters long; the limit is {MAX_BATCH_ROW_CHARS:,}."
            )
        if line.strip():
            texts.append(line)
    return texts


def _file_values(path: Path) -> list:
    """The ``text`` values of the file's first MAX_BATCH_ROWS + 1 rows, blanks and missing ones included."""
    try:
        frame = read_columns(path, {"text": MAX_BATCH_ROW_CHARS}, limits=FILE_LIMITS)
    except NotUtf8 as exc:
        raise BatchInputError(
            f"{path.name} is not UTF-8 text (byte 0x{exc.byte:02x} at position {exc.position:,}); "
            "save it as UTF-8 and upload it again."
        ) from None
    except TableError as exc:
        raise BatchInputError(str(exc)) from None
    return frame["text"].tolist()


def _non_blank(values: list) -> list[str]:
    return [text for text in (str(v) for v in values if pd.notna(v)) if text.strip()]


def batch_texts(pasted: str | None, path: str | Path | None) -> tuple[list[str], str]:
    """Pasted lines then the file's texts, capped at MAX_BATCH_ROWS, and a note saying what was read.

    BatchInputError when the input cannot be read or is over a character limit (together at most MAX_BATCH_CHARS).
    """
    texts = texts_from_lines(pasted)
    parts = [f"{len(texts)} pasted line(s)"] if texts else []
    if path:
        path = Path(path)
        values = _file_values(path)
        from_file = _non_blank(values)
        _check_total(texts, from_file, path.name)
        texts += from_file
        more = f" (read up to its row {len(values):,}; it holds more)" if len(values) > MAX_BATCH_ROWS else ""
        parts.append(f"{len(from_file)} row(s) from {path.name}{more}")
    note = " + ".join(parts)
    if len(texts) > MAX_BATCH_ROWS:
        note += f"; only the first {MAX_BATCH_ROWS:,} of {len(texts):,} are scored"
        texts = texts[:MAX_BATCH_ROWS]
    return texts, note


def _check_total(pasted: list[str], from_file: list[str], file: str) -> None:
    chars = sum(map(len, pasted)) + sum(map(len, from_file))
    if chars > MAX_BATCH_CHARS:
        raise BatchInputError(
            f"The pasted lines and {file} hold {chars:,} characters together; the limit is {MAX_BATCH_CHARS:,}."
        )


def _cut(text: str, chars: int | None) -> str:
    return text if chars is None or len(text) <= chars else text[:chars] + "…"


def verdict_table(scores: pd.DataFrame, threshold: float, text_chars: int | None = TABLE_TEXT_CHARS) -> pd.DataFrame:
    """Scores (text, p_before[, p_after], truncated) as the table the page shows and the API returns.

    Columns: row, text (cut to ``text_chars``), p_before, verdict_before, and with an adapter
    p_after, verdict_after, change (P after - P before); then truncated. P rounded to 4 places.
    """
    table = pd.DataFrame(
        {
            "row": range(len(scores)),
            "text": [_cut(t, text_chars) for t in scores["text"]],
            "p_before": scores["p_before"].round(4),
            "verdict_before": [verdict(p, threshold) for p in scores["p_before"]],
        }
    )
    if "p_after" in scores:
        table["p_after"] = scores["p_after"].round(4)
        table["verdict_after"] = [verdict(p, threshold) for p in scores["p_after"]]
        table["change"] = (scores["p_after"] - scores["p_before"]).round(4)
        order = table["change"].abs().sort_values(ascending=False, kind="stable").index
        table = table.loc[order]
    table["truncated"] = scores["truncated"].to_numpy()[table["row"].to_numpy()]
    return table.reset_index(drop=True)


def escape_formula(value):
    """``value`` with a leading quote when a spreadsheet would read it as a formula; non-text unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(table: pd.DataFrame) -> str:
    return table.map(escape_formula).to_csv(index=False)


def remove_stale_csvs(folder: Path, max_age_s: float, keep: int) -> None:
    """Delete result CSVs not written for ``max_age_s``, then the oldest beyond the newest ``keep``, and empty
    folders (Gradio's own cache sweep may have taken a file), so exports cannot fill the disk."""
    cutoff = time.time() - max_age_s
    written = []
    for csv in folder.glob(f"*/{CSV_NAME}"):
        try:
            written.append((csv.stat().st_mtime, csv))
        except OSError:
            continue
    written.sort(reverse=True)
    for rank, (mtime, csv) in enumerate(written):
        if mtime < cutoff or rank >= keep:
            csv.unlink(missing_ok=True)
    for entry in folder.glob("*"):
        try:
            if entry.is_dir() and not any(entry.iterdir()):
                entry.rmdir()
        except OSError:
            continue


def write_session_csv(
    table: pd.DataFrame, folder: str | Path, session: str, max_age_s: float = CSV_MAX_AGE_S, keep: int = MAX_CSV_FILES
) -> Path:
    """The table as ``folder/<session key>/detect-results.csv``: one file per browser session (a new export
    replaces the session's last one), at most ``keep`` in all, none older than ``max_age_s``. The session
    id comes from the client, so the folder is named by its hash, never by the id itself."""
    folder = Path(folder)
    target = folder / hashlib.sha256(session.encode()).hexdigest()[:16] / CSV_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")  # two exports of one session may race
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(csv_text(table))
    os.replace(tmp, target)
    remove_stale_csvs(folder, max_age_s, keep)
    return target


def examples_table(examples: list[ExamplePrompt]) -> pd.DataFrame:
    """Example prompts as rows #, why, label, text (cut to TABLE_TEXT_CHARS); # indexes ``examples``."""
    rows = [
        [i, e.kind, "injection" if e.label else "benign", _cut(e.text, TABLE_TEXT_CHARS)]
        for i, e in enumerate(examples)
    ]
    return pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)

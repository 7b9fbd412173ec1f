"""Prompts in and tables out for the Detect tab: pasted lines or a file, verdict tables, safe CSV.

- Inputs: pasted lines and/or one uploaded CSV, parquet or JSONL file with a
  ``text`` column; at most ``MAX_BATCH_ROWS`` prompts. A file that is not UTF-8
  is refused with the byte and its position, not read with guessed encoding.
- The verdict table is rebuilt from stored scores at any threshold, so moving
  the threshold never calls the model. Rows are sorted by disagreement
  (|P after - P before|, largest first); ``row`` is the prompt's input position.
- CSV cells starting with = + - @ (or a tab / carriage return) are prefixed with
  a quote so a spreadsheet shows them as text instead of running a formula.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import pandas as pd

from ft.serving import ExamplePrompt, verdict

MAX_BATCH_ROWS = 1000
TABLE_TEXT_CHARS = 300
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_NAME = "detect-results.csv"
CSV_MAX_AGE_S = 24 * 3600
EXAMPLE_COLUMNS = ["#", "why", "label", "text"]


class BatchInputError(ValueError):
    """The prompts cannot be read; the message is written for the page."""


def texts_from_lines(pasted: str | None) -> list[str]:
    """One prompt per non-blank line."""
    return [line for line in (pasted or "").splitlines() if line.strip()]


def _utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchInputError(f"{path.name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position "
                              f"{exc.start:,}); save it as UTF-8 and upload it again.") from None


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(io.StringIO(_utf8(path)), dtype=str, keep_default_na=False)
    if suffix in (".jsonl", ".ndjson"):
        return pd.DataFrame([json.loads(line) for line in _utf8(path).splitlines() if line.strip()])
    raise BatchInputError(f"{path.name}: unsupported file type {suffix!r} (use CSV, parquet or JSONL).")


def texts_from_file(path: str | Path) -> list[str]:
    """The non-blank values of the file's ``text`` column, in file order."""
    path = Path(path)
    try:
        table = _read_table(path)
    except BatchInputError:
        raise
    except Exception as exc:  # pandas, pyarrow and json raise many types for a malformed file
        raise BatchInputError(f"{path.name} cannot be read ({type(exc).__name__}: {exc}).") from None
    if "text" not in table.columns:
        raise BatchInputError(f"{path.name} has no 'text' column (columns: {', '.join(map(str, table.columns))}).")
    texts = table["text"].dropna()
    return [t for t in texts.astype(str) if t.strip()]


def batch_texts(pasted: str | None, path: str | Path | None) -> tuple[list[str], str]:
    """Pasted lines then the file's texts, capped at MAX_BATCH_ROWS, and a note saying what was read."""
    texts = texts_from_lines(pasted)
    parts = [f"{len(texts)} pasted line(s)"] if texts else []
    if path:
        from_file = texts_from_file(path)
        texts += from_file
        parts.append(f"{len(from_file)} row(s) from {Path(path).name}")
    note = " + ".join(parts)
    if len(texts) > MAX_BATCH_ROWS:
        note += f"; only the first {MAX_BATCH_ROWS:,} of {len(texts):,} are scored"
        texts = texts[:MAX_BATCH_ROWS]
    return texts, note


def _cut(text: str, chars: int | None) -> str:
    return text if chars is None or len(text) <= chars else text[:chars] + "…"


def verdict_table(scores: pd.DataFrame, threshold: float, text_chars: int | None = TABLE_TEXT_CHARS) -> pd.DataFrame:
    """Scores (text, p_before[, p_after], truncated) as the table the page shows and the API returns.

    Columns: row, text (cut to ``text_chars``), p_before, verdict_before, and with an adapter
    p_after, verdict_after, change (P after - P before); then truncated. P rounded to 4 places.
    """
    table = pd.DataFrame({"row": range(len(scores)), "text": [_cut(t, text_chars) for t in scores["text"]],
                          "p_before": scores["p_before"].round(4),
                          "verdict_before": [verdict(p, threshold) for p in scores["p_before"]]})
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


def remove_stale_csvs(folder: Path, max_age_s: float) -> None:
    """Delete result CSVs not written or served for ``max_age_s``, and empty folders (Gradio's own cache sweep
    may have taken the file), so downloads do not pile up."""
    cutoff = time.time() - max_age_s
    for entry in folder.glob("*"):
        csv = entry / CSV_NAME
        try:
            if csv.exists() and csv.stat().st_mtime < cutoff:
                csv.unlink()
            if entry.is_dir() and not any(entry.iterdir()):
                entry.rmdir()
        except OSError:
            continue


def write_csv(table: pd.DataFrame, folder: str | Path, max_age_s: float = CSV_MAX_AGE_S) -> Path:
    """The table as ``folder/<content hash>/detect-results.csv`` (same content, same file); older CSVs go."""
    folder = Path(folder)
    remove_stale_csvs(folder, max_age_s)
    content = csv_text(table)
    target = folder / hashlib.sha256(content.encode()).hexdigest()[:16] / CSV_NAME
    try:
        os.utime(target)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(target)
    return target


def examples_table(examples: list[ExamplePrompt]) -> pd.DataFrame:
    """Example prompts as rows #, why, label, text (cut to TABLE_TEXT_CHARS); # indexes ``examples``."""
    rows = [[i, e.kind, "injection" if e.label else "benign", _cut(e.text, TABLE_TEXT_CHARS)]
            for i, e in enumerate(examples)]
    return pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)

"""Training data: read splits from a folder, a file or the Hub, and refuse bad rows early.

A data reference is one of
- a folder holding ``<split>.parquet`` (or .csv / .jsonl) files: the shared
  offline copy and every curation snapshot look like this;
- one parquet, CSV or JSONL file: it is the train split;
- otherwise a Hugging Face Hub dataset id, read with ``datasets.load_dataset``.
Every split is checked (columns, labels in {0, 1}, no empty text) before any
model is loaded, and a validation split is carved from train with a seed when
the data has none. A split is read as columns ``text`` and ``label``, plus
``source`` (where each row came from) when the data has that column, as
curation snapshots do: runs report their test metrics per source.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SOURCE_COLUMN = "source"
READERS = {
    ".parquet": pd.read_parquet,
    ".csv": lambda p: pd.read_csv(p, keep_default_na=False),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
}


class DataError(ValueError):
    """The data cannot be trained on; the message names the source and the problem."""


def _read_file(path: Path) -> pd.DataFrame:
    try:
        return READERS[path.suffix.lower()](path)
    except KeyError:
        raise DataError(f"{path}: unsupported file type {path.suffix!r} (use parquet, csv or jsonl)") from None
    except Exception as exc:  # the readers raise many types for a malformed file
        raise DataError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None


def _read_folder(folder: Path) -> dict[str, pd.DataFrame]:
    splits = {p.stem: _read_file(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in READERS}
    if not splits:
        raise DataError(f"{folder}: no parquet, csv or jsonl files")
    return splits


def _read_hub(dataset_id: str) -> dict[str, pd.DataFrame]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:
        raise DataError(f"{dataset_id}: not a local path, and the Hub could not load it ({exc})") from None
    return {name: split.to_pandas() for name, split in loaded.items()}


def read_splits(ref: str) -> dict[str, pd.DataFrame]:
    """Every split the data reference holds, as raw DataFrames."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        return {"train": _read_file(path)}
    if path.suffix.lower() in READERS or ref.startswith((".", "/", "~")):
        raise DataError(f"{ref}: no such file or folder")
    return _read_hub(ref)


def clean_split(
    frame: pd.DataFrame, source: str, text_column: str = "text", label_column: str = "label"
) -> pd.DataFrame:
    """The split as columns ``text`` (str) and ``label`` (0/1), and ``source`` (str, "" where missing) when the
    frame has one; or a DataError naming the bad row."""
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {list(frame.columns)}")
    text = frame[text_column]
    bad_text = text.isna() | (text.astype(str).str.strip() == "")
    if bad_text.any():
        raise DataError(f"{source}: empty text in row {int(bad_text.to_numpy().argmax())}")
    label = pd.to_numeric(frame[label_column], errors="coerce")
    bad_label = ~label.isin([0, 1])
    if bad_label.any():
        row = int(bad_label.to_numpy().argmax())
        raise DataError(f"{source}: label {str(frame[label_column].iloc[row])!r} in row {row} is not 0 or 1")
    clean = pd.DataFrame({"text": text.astype(str).to_numpy(), "label": label.astype(int).to_numpy()})
    if SOURCE_COLUMN in frame.columns and SOURCE_COLUMN not in (text_column, label_column):
        clean[SOURCE_COLUMN] = frame[SOURCE_COLUMN].fillna("").astype(str).to_numpy()
    return clean


def carve_validation(train: pd.DataFrame, size: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train without the validation rows, validation rows), chosen at random with ``seed``."""
    if size >= len(train):
        raise DataError(f"validation_size={size} leaves no training rows (train has {len(train)})")
    validation = train.sample(n=size, random_state=seed)
    return train.drop(index=validation.index).reset_index(drop=True), validation.reset_index(drop=True)


def _head(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(frame):
        return frame
    return frame.sample(n=n, random_state=seed).reset_index(drop=True)


def read_split(
    ref: str,
    split: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One checked split as columns text, label (and source when the data has it), sampled to ``max_rows``
    with ``seed``."""
    raw = read_splits(ref)
    if split not in raw:
        raise DataError(f"{ref}: no {split!r} split; found {sorted(raw)}")
    return _head(clean_split(raw[split], f"{ref} [{split}]", text_column, label_column), max_rows, seed)


def load_training_data(
    ref: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    train_split: str = "train",
    test_split: str = "test",
    validation_split: str | None = None,
    validation_size: int = 200,
    max_train_rows: int | None = None,
    max_test_rows: int | None = None,
    seed: int = 42,
) -> dict[str, pd.DataFrame]:
    """Checked ``train``, ``validation`` and ``test`` frames (columns text, label, and source when the data
    has it) for a run."""
    raw = read_splits(ref)
    for needed in (train_split, test_split):
        if needed not in raw:
            raise DataError(f"{ref}: no {needed!r} split; found {sorted(raw)}")
    clean = {name: clean_split(frame, f"{ref} [{name}]", text_column, label_column) for name, frame in raw.items()}
    train = _head(clean[train_split], max_train_rows, seed)
    if validation_split:
        if validation_split not in clean:
            raise DataError(f"{ref}: no {validation_split!r} split; found {sorted(clean)}")
        validation = clean[validation_split]
    else:
        train, validation = carve_validation(train, min(validation_size, len(train) // 5 or 1), seed)
    return {"train": train, "validation": validation, "test": _head(clean[test_split], max_test_rows, seed)}

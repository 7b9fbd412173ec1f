"""Did relabelling help: metrics side by side (per source too), changed verdicts, labels changed between two data
folders."""

import pandas as pd
import pytest

from serving.compare import (
    LabelChanges,
    changed_verdicts,
    evals_side_by_side,
    groups_side_by_side,
    label_changes,
    labels_by_text,
    metrics_side_by_side,
)


def write_data(folder, **splits):
    folder.mkdir(parents=True)
    for split, rows in splits.items():
        pd.DataFrame(rows, columns=["text", "label"]).to_parquet(folder / f"{split}.parquet", index=False)
    (folder / "manifest.json").write_text("{}")
    return str(folder)


def test_metrics_side_by_side_gives_the_change():
    table = metrics_side_by_side(
        {"n": 10, "accuracy": 0.7, "f1": 0.5, "roc_auc": None}, {"n": 10, "accuracy": 0.8, "f1": 0.4, "roc_auc": 0.9}
    )
    rows = table.set_index("metric")
    assert rows.loc["accuracy", "change"] == pytest.approx(0.1)
    assert rows.loc["f1", "change"] == pytest.approx(-0.1)
    assert rows.loc["roc_auc", "b"] == 0.9 and pd.isna(rows.loc["roc_auc", "change"])
    assert metrics_side_by_side(None, {"accuracy": 1.0}).set_index("metric").loc["accuracy", "a"] is None


def test_evaluations_on_other_data_sit_side_by_side_by_name():
    table = evals_side_by_side(
        {"foreign": {"after": {"roc_auc": 0.8, "f1": 0.6}}, "only-a": {"after": {"f1": 0.1}}},
        {"foreign": {"after": {"roc_auc": 0.9, "f1": 0.5}}},
    )
    rows = table.set_index(["eval", "metric"])
    assert rows.loc[("foreign", "roc_auc"), "change"] == pytest.approx(0.1)
    assert rows.loc[("foreign", "f1"), "change"] == pytest.approx(-0.1)
    assert rows.loc[("only-a", "f1"), "a"] == 0.1 and rows.loc[("only-a", "f1"), "b"] is None
    assert list(table.columns) == ["eval", "metric", "a", "b", "change"]
    assert evals_side_by_side({}, {}).empty


def test_changed_verdicts_lists_only_the_flips_largest_shift_first():
    table = changed_verdicts(["a", "b", "c", "d"], [1, 0, 1, 0], [0.2, 0.6, 0.9, 0.1], [0.9, 0.45, 0.95, 0.55])
    assert table["text"].tolist() == ["a", "d", "b"]
    assert table["b_right"].tolist() == [True, False, True]
    assert table[["verdict_a", "verdict_b"]].values.tolist() == [[0, 1], [0, 1], [1, 0]]


def test_each_run_judges_its_verdicts_at_its_own_threshold():
    table = changed_verdicts(["a", "b"], [1, 0], [0.3, 0.3], [0.3, 0.1], threshold_a=0.5, threshold_b=0.2)
    assert table["text"].tolist() == ["a"] and table[["verdict_a", "verdict_b"]].values.tolist() == [[0, 1]]


def test_per_source_metrics_sit_side_by_side_for_every_source_either_run_has():
    a = {"source": {"clinc": {"after": {"n": 90, "flagged": 0.06}}, "wiki": {"after": {"n": 40, "flagged": 0.0}}}}
    b = {"source": {"clinc": {"after": {"n": 90, "flagged": 0.01}}}}
    table = groups_side_by_side({"eval.json": (a, b), "same texts": ({}, {})})
    rows = table.set_index("group")
    assert rows.loc["clinc", ["flagged A", "flagged B"]].tolist() == [0.06, 0.01]
    assert rows.loc["wiki", "n A"] == 40 and pd.isna(rows.loc["wiki", "flagged B"])
    assert set(table["from"]) == {"eval.json"} and set(table["by"]) == {"source"}


def test_labels_changed_between_two_snapshots_are_counted_by_text(tmp_path):
    a = write_data(tmp_path / "a", train=[("x", 0), ("y", 1), ("z", 0), ("gone", 1)], test=[("t", 1)])
    b = write_data(tmp_path / "b", train=[("x", 1), ("y", 1), ("new", 0)], test=[("t", 0), ("z", 0)])
    changes = label_changes(labels_by_text(a), labels_by_text(b))
    assert changes == LabelChanges(changed=2, only_in_a=1, only_in_b=1, changed_by_split={"test": 1, "train": 1})


def test_a_text_with_conflicting_copies_differs_from_a_clean_one(tmp_path):
    a = write_data(tmp_path / "a", train=[("x", 0), ("x", 1), ("y", 0)])
    b = write_data(tmp_path / "b", train=[("x", 1), ("y", 0)])
    assert label_changes(labels_by_text(a), labels_by_text(b)).changed == 1
    assert label_changes(labels_by_text(a), labels_by_text(a)).changed == 0


def test_the_page_shows_a_comparison_as_plain_text():
    from runner.views import text_frame
    from serving.compare import RunComparison, summary_text

    verdicts = changed_verdicts(["<b>x</b>", "y"], [1, 0], [0.2, 0.1], [0.9, 0.3])
    done = RunComparison(
        "ra",
        "rb",
        metrics_side_by_side({"accuracy": 0.5}, {"accuracy": 0.75}),
        metrics_side_by_side(None, None),
        verdicts,
        evals_side_by_side({}, {}),
        LabelChanges(3, 1, 0, {"train": 2, "test": 1}),
        "/data/b",
        (0.5, 0.3125),
        groups_side_by_side({}),
        {},
    )
    text = summary_text(done)
    assert "A = ra, B = rb" in text and "1 verdict(s) changed" in text
    assert "(thresholds: A 0.5, B 0.3125)" in text
    assert "Labels changed between their data: 3 (by split in B: train: 2, test: 1)" in text
    shown = text_frame(done.eval_metrics).set_index("metric")
    assert shown.loc["accuracy"].tolist() == ["0.5000", "0.7500", "0.2500"] and shown.loc["n"].tolist() == [""] * 3
    cells = text_frame(done.verdicts)
    assert cells.iloc[0].tolist() == ["<b>x</b>", "1", "0.2000", "0.9000", "0", "1", "True"]
    assert all(isinstance(v, str) for v in cells.to_numpy().ravel())

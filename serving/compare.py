"""Did relabelling help? Two runs side by side: test metrics, changed verdicts, changed labels.

Typical use: run A trained on the original labels, run B on a curated snapshot.

- ``metrics_side_by_side``: two metric dicts (``classification_metrics`` shape) as one table,
  with B minus A. ``compare_runs`` fills it twice: from each run's ``eval.json`` (each run
  measured against its own test labels, which differ when the test split was relabelled) and
  from both adapters scored on the same texts against the same labels.
- ``changed_verdicts``: the texts on which the two detectors give different verdicts, with the
  label, both probabilities, and which side is right.
- ``evals_side_by_side``: the runs' evaluations on other datasets (``ft.evaluate``), after side.
- ``groups_side_by_side``: per source (and category), both runs' "after" metrics: from each run's
  ``eval.json`` and from both adapters on the same texts.
- ``label_changes``: how many texts carry different labels in the two runs' data (every split,
  matched by text; snapshot folders hold ``<split>.parquet`` with text, label).
- ``compare_runs``: the above for two run folders; it loads each adapter in turn (never both). Each
  run's verdicts are at its own recorded threshold (chosen on its validation split) unless one is given. Its
  ``charts`` report (``ft.metrics.sides_report``: sides "A" and "B" on the same texts, curves included) is what
  the page draws; ``progress(fraction, what)`` hears each stage.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ft import data
from ft.config import TrainConfig
from ft.detector import classification_metrics, load_detector
from ft.metrics import sides_report
from ft.run_dir import RunDir
from runner.views import TEST_COLUMNS

EVAL_METRICS = ("n", "accuracy", "f1", "roc_auc", "recall_at_1pct_fpr", "brier", "ece")
VERDICT_COLUMNS = ["text", "label", "p_a", "p_b", "verdict_a", "verdict_b", "b_right"]
GROUP_METRICS = ("n", "accuracy", "flagged", "roc_auc")
GROUP_COMPARE_COLUMNS = ["from", "by", "group", *(f"{m} {run}" for m in GROUP_METRICS for run in "AB")]


@dataclass(frozen=True)
class LabelChanges:
    """Texts labelled differently in data A and data B (a text's labels: the set over its copies)."""

    changed: int
    only_in_a: int
    only_in_b: int
    changed_by_split: dict[str, int]
    """Changed texts counted by the split they are in on side B."""


@dataclass(frozen=True)
class RunComparison:
    run_a: str
    run_b: str
    eval_metrics: pd.DataFrame
    """The "after" test metrics of each run's eval.json."""
    same_text_metrics: pd.DataFrame
    """Both adapters on ``test_data``'s texts and labels."""
    verdicts: pd.DataFrame
    """The texts whose verdict changed, columns VERDICT_COLUMNS."""
    other_evals: pd.DataFrame
    """Both runs' evaluations on other datasets (ft.evaluate), "after" side, by evaluation name."""
    labels: LabelChanges
    test_data: str
    thresholds: tuple[float, float]
    """A's and B's verdict thresholds on the same texts."""
    groups: pd.DataFrame
    """Per source/category, A's and B's "after" metrics: columns GROUP_COMPARE_COLUMNS."""
    charts: dict
    """A and B on the same texts, each at its threshold, with curves and groups: what the charts draw."""


def metrics_side_by_side(metrics_a: dict | None, metrics_b: dict | None, names=TEST_COLUMNS) -> pd.DataFrame:
    """One row per metric in ``names``: columns metric, a, b, change (b - a); None where a side lacks it."""
    rows = []
    for name in names:
        a, b = (m.get(name) if m else None for m in (metrics_a, metrics_b))
        rows.append({"metric": name, "a": a, "b": b, "change": b - a if a is not None and b is not None else None})
    return pd.DataFrame(rows, columns=["metric", "a", "b", "change"])


def evals_side_by_side(evals_a: dict[str, dict], evals_b: dict[str, dict]) -> pd.DataFrame:
    """The "after" metrics of every ``ft.evaluate`` evaluation either run has (``RunDir.read_evals``), by name:
    columns eval, metric, a, b, change; None where a run lacks that evaluation."""
    frames = [
        metrics_side_by_side(
            evals_a.get(name, {}).get("after"), evals_b.get(name, {}).get("after"), EVAL_METRICS
        ).assign(eval=name)
        for name in sorted(evals_a.keys() | evals_b.keys())
    ]
    columns = ["eval", "metric", "a", "b", "change"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def groups_side_by_side(reports: dict[str, tuple[dict, dict]]) -> pd.DataFrame:
    """Per origin (its name: A's and B's ``groups``, as eval.json or ``ft.metrics.group_metrics`` holds them),
    one row per group either side has: the "after" metrics of A and B side by side, None where a side lacks the
    group. Columns GROUP_COMPARE_COLUMNS."""
    rows = []
    for origin, (groups_a, groups_b) in reports.items():
        for column in sorted(groups_a.keys() | groups_b.keys()):
            by_a, by_b = groups_a.get(column, {}), groups_b.get(column, {})
            for group in sorted(by_a.keys() | by_b.keys()):
                a, b = ((by.get(group) or {}).get("after") or {} for by in (by_a, by_b))
                rows.append([origin, column, group, *(m.get(name) for name in GROUP_METRICS for m in (a, b))])
    return pd.DataFrame(rows, columns=GROUP_COMPARE_COLUMNS)


def changed_verdicts(
    texts, labels, p_a, p_b, threshold_a: float = 0.5, threshold_b: float | None = None
) -> pd.DataFrame:
    """Rows where A (at ``threshold_a``) and B (at ``threshold_b``, by default A's) give different verdicts, largest
    probability shift first; b_right is B's verdict == label."""
    table = pd.DataFrame(
        {
            "text": list(texts),
            "label": np.asarray(labels, dtype=int),
            "p_a": np.asarray(p_a, dtype=float),
            "p_b": np.asarray(p_b, dtype=float),
        }
    )
    table["verdict_a"] = (table["p_a"] >= threshold_a).astype(int)
    table["verdict_b"] = (table["p_b"] >= (threshold_a if threshold_b is None else threshold_b)).astype(int)
    table["b_right"] = table["verdict_b"] == table["label"]
    changed = table[table["verdict_a"] != table["verdict_b"]]
    shift = (changed["p_b"] - changed["p_a"]).abs()
    return changed.loc[shift.sort_values(ascending=False, kind="stable").index, VERDICT_COLUMNS].reset_index(drop=True)


def labels_by_text(ref: str, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """Index text; columns labels (sorted tuple of the labels its copies carry) and split (its first split)."""
    frames = [
        data.clean_split(frame, f"{ref} [{name}]", text_column, label_column).assign(split=name)
        for name, frame in data.read_splits(ref).items()
    ]
    rows = pd.concat(frames, ignore_index=True)
    return rows.groupby("text", sort=False).agg(
        labels=("label", lambda s: tuple(sorted(set(s)))), split=("split", "first")
    )


def label_changes(labels_a: pd.DataFrame, labels_b: pd.DataFrame) -> LabelChanges:
    """Compare two ``labels_by_text`` tables by text."""
    both = labels_a.join(labels_b, how="inner", suffixes=("_a", "_b"))
    changed = both[both["labels_a"] != both["labels_b"]]
    return LabelChanges(
        changed=len(changed),
        only_in_a=int((~labels_a.index.isin(labels_b.index)).sum()),
        only_in_b=int((~labels_b.index.isin(labels_a.index)).sum()),
        changed_by_split={str(k): int(v) for k, v in changed["split_b"].value_counts().sort_index().items()},
    )


def _run_config(run: RunDir) -> TrainConfig:
    return TrainConfig.from_yaml(run.config)


def _probabilities(run: RunDir, texts: list[str]) -> np.ndarray:
    """The run's adapter on ``texts``; the model is dropped before returning."""
    import torch

    p = load_detector(_run_config(run), run.adapter).probabilities(texts)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return p


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    *,
    test_data: str | None = None,
    test_split: str | None = None,
    max_rows: int | None = None,
    threshold: float | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> RunComparison:
    """Compare two completed runs; the shared test texts default to run B's test split (the curated labels).
    ``threshold`` None: each run's verdicts at its own recorded threshold. ``progress(fraction, what)`` is told
    each stage (reading, scoring with A, with B, counting label changes)."""
    told = progress or (lambda fraction, what: None)
    told(0.0, "reading the test texts")
    a, b = RunDir(run_a), RunDir(run_b)
    config_a, config_b = _run_config(a), _run_config(b)
    t_a, t_b = (
        (threshold, threshold)
        if threshold is not None
        else (a.recorded_threshold(config_a.threshold), b.recorded_threshold(config_b.threshold))
    )
    columns = {} if test_data else config_b.columns()
    test_data = test_data or config_b.data
    test = data.read_split(test_data, test_split or config_b.test_split, max_rows=max_rows, **columns)
    texts, labels = test["text"].tolist(), test["label"].tolist()
    told(0.05, f"loading run A and scoring {len(texts)} texts")
    p_a = _probabilities(a, texts)
    told(0.5, f"loading run B and scoring {len(texts)} texts")
    p_b = _probabilities(b, texts)
    told(0.95, "counting the labels changed between their data")
    changes = label_changes(
        labels_by_text(config_a.data, config_a.text_column, config_a.label_column),
        labels_by_text(config_b.data, config_b.text_column, config_b.label_column),
    )
    eval_a, eval_b = a.read_eval() or {}, b.read_eval() or {}
    same_texts = sides_report(test, {"A": p_a, "B": p_b}, {"A": t_a, "B": t_b})
    return RunComparison(
        run_a=a.run_id,
        run_b=b.run_id,
        eval_metrics=metrics_side_by_side(eval_a.get("after"), eval_b.get("after")),
        same_text_metrics=metrics_side_by_side(
            classification_metrics(labels, p_a, threshold=t_a),
            classification_metrics(labels, p_b, threshold=t_b),
        ),
        verdicts=changed_verdicts(texts, labels, p_a, p_b, t_a, t_b),
        other_evals=evals_side_by_side(a.read_evals(), b.read_evals()),
        labels=changes,
        test_data=test_data,
        thresholds=(t_a, t_b),
        groups=groups_side_by_side(
            {
                "eval.json": (eval_a.get("groups", {}), eval_b.get("groups", {})),
                "same texts": (_after_groups(same_texts, "A"), _after_groups(same_texts, "B")),
            }
        ),
        charts=same_texts,
    )


def _after_groups(report: dict, side: str) -> dict:
    """``side``'s groups of a ``sides_report`` as an evaluation's "after" groups: {column: {group: {"after": ...}}}."""
    return {
        column: {group: {"after": sides[side]} for group, sides in by_group.items() if side in sides}
        for column, by_group in report["groups"].items()
    }


def summary_text(comparison: RunComparison) -> str:
    """Plain text: which run is A and B, what the shared texts were, and how many labels differ in their data."""
    labels, (threshold_a, threshold_b) = comparison.labels, comparison.thresholds
    by_split = ", ".join(f"{split}: {n}" for split, n in labels.changed_by_split.items()) or "none"
    return (
        f"A = {comparison.run_a}, B = {comparison.run_b}\n"
        f"Same-text metrics on {comparison.test_data} (thresholds: A {threshold_a:.4g}, B {threshold_b:.4g}); "
        f"{len(comparison.verdicts)} verdict(s) changed\n"
        f"Labels changed between their data: {labels.changed} (by split in B: {by_split}); "
        f"texts only in A: {labels.only_in_a}, only in B: {labels.only_in_b}"
    )

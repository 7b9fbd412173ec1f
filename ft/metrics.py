"""What an evaluation reports: a detector's metrics on labelled rows, by source, beside a rule on length alone.

The same report is written for a run's test split (``eval.json``, by ``ft.train``) and for any other
labelled data (``evals/<name>.json``, by ``ft.evaluate``):

    {"before": metrics, "after": metrics, "length_baseline": length metrics,
     "groups": {column: {group: {"before": metrics, "after": metrics, "length_baseline": length metrics}}},
     "curves": {"before": curves, "after": curves}}

``column`` is each of ``GROUP_COLUMNS`` the rows carry. ``curves`` are what the charts draw (runner/charts.py), kept
small so that a page reads them from the file and computes nothing: the ROC curve's corners, at most ``ROC_POINTS``
of them, and the reliability diagram's bins (``CALIBRATION_BINS`` equal-width P(injection) bins: rows, mean
P(injection), share of injections; ECE is their rows-weighted mean gap).

The length baseline scores a text by its number of characters: its ROC-AUC and recall at 1% false positives
say how far length alone separates the labels, and its accuracy is taken at a cut chosen on the run's
validation split (longer is an injection). A detector that barely beats it has probably learnt length, which
fails on short attacks and long benign documents.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ft.detector import classification_metrics
from ft.lazy import lazy
from ft.threshold import midpoints

skm = lazy("sklearn.metrics")

GROUP_COLUMNS = ("source", "category")
CALIBRATION_BINS = 10
LOW_FPR = 0.01
LENGTH_BASELINE = "length_baseline"
CURVES = "curves"
ROC_POINTS = 101
"""At most this many points of a ROC curve are stored: a few kB per side, whatever the rows."""
PLACES = 4
"""Stored curve values are rounded to this many decimals."""


class EvaluationReport(dict):
    """An evaluation's report (the module doc's shape: a plain dict, written as JSON as it is) that also holds,
    unwritten, the labels and each side's P(injection) it was computed from, for charts that need every row (the
    tracker's ROC curve and confusion matrix, ft/callbacks.py)."""

    def __init__(self, report: dict, labels: np.ndarray, scores: dict):
        super().__init__(report)
        self.labels = labels
        self.scores = scores


def recall_at_fpr(labels, p_injection, max_fpr: float = LOW_FPR) -> float | None:
    """The highest recall any threshold reaches while flagging at most ``max_fpr`` of the benign rows."""
    y, p = np.asarray(labels, dtype=int), np.asarray(p_injection, dtype=float)
    if len(set(y)) < 2:
        return None
    fpr, tpr, _ = skm.roc_curve(y, p)
    return float(tpr[fpr <= max_fpr].max())


def brier_score(labels, p_injection) -> float:
    return float(np.mean((np.asarray(p_injection, dtype=float) - np.asarray(labels, dtype=float)) ** 2))


def _calibration_bins(labels, p_injection, bins: int) -> tuple[np.ndarray, ...]:
    """For each non-empty equal-width P(injection) bin: its lower edge, rows, mean P(injection), share of
    injections."""
    y, p = np.asarray(labels, dtype=float), np.asarray(p_injection, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    used = np.unique(which)
    rows = np.array([np.sum(which == b) for b in used])
    mean_p = np.array([p[which == b].mean() for b in used])
    share = np.array([y[which == b].mean() for b in used])
    return used / bins, rows, mean_p, share


def expected_calibration_error(labels, p_injection, bins: int = CALIBRATION_BINS) -> float:
    """Mean |share of injections - mean P(injection)| over equal-width P bins, weighted by each bin's rows."""
    _, rows, mean_p, share = _calibration_bins(labels, p_injection, bins)
    return float(np.sum(np.abs(share - mean_p) * rows) / rows.sum()) if len(rows) else 0.0


def calibration_curve(labels, p_injection, bins: int = CALIBRATION_BINS) -> dict:
    """The reliability diagram's points: per non-empty bin, ``bin_low`` (its lower edge), ``rows``, ``mean_p``
    and ``injection_share``, rounded to ``PLACES``."""
    low, rows, mean_p, share = _calibration_bins(labels, p_injection, bins)
    return {
        "bin_low": _rounded(low),
        "rows": [int(n) for n in rows],
        "mean_p": _rounded(mean_p),
        "injection_share": _rounded(share),
    }


def roc_points(labels, p_injection, max_points: int = ROC_POINTS) -> dict | None:
    """The ROC curve's corners (``fpr``, ``tpr``), at most ``max_points`` evenly along it, its ends and the corner
    recall at 1% FPR is read at always among them; None when the rows hold one label only."""
    y, p = np.asarray(labels, dtype=int), np.asarray(p_injection, dtype=float)
    if len(set(y)) < 2:
        return None
    fpr, tpr, _ = skm.roc_curve(y, p)
    keep = np.arange(len(fpr))
    if len(fpr) > max_points:
        low_fpr_corner = np.flatnonzero(fpr <= LOW_FPR)[-1]
        keep = np.union1d(np.linspace(0, len(fpr) - 1, max_points - 1).round().astype(int), [low_fpr_corner])
    return {"fpr": _rounded(fpr[keep]), "tpr": _rounded(tpr[keep])}


def curves(labels, p_injection) -> dict:
    """What the charts of one side draw: its ROC points and reliability bins."""
    return {"roc": roc_points(labels, p_injection), "calibration": calibration_curve(labels, p_injection)}


def _rounded(values) -> list[float]:
    return [round(float(v), PLACES) for v in values]


def detection_metrics(labels, p_injection, answers=None, threshold: float = 0.5) -> dict:
    """classification_metrics plus recall at 1% FPR, Brier score, ECE and the share flagged."""
    out = classification_metrics(labels, p_injection, answers, threshold)
    out.update(
        recall_at_1pct_fpr=recall_at_fpr(labels, p_injection),
        brier=brier_score(labels, p_injection),
        ece=expected_calibration_error(labels, p_injection),
        flagged=float(np.mean(np.asarray(p_injection) >= threshold)),
    )
    return out


def text_lengths(texts) -> np.ndarray:
    return np.array([len(t) for t in texts], dtype=float)


def length_cut(labels, texts) -> float | None:
    """The length (characters) at or above which the length rule calls a text an injection: the most accurate
    cut on these rows (a run's validation split; ties: the shortest). None without rows."""
    lengths, y = text_lengths(texts), np.asarray(labels, dtype=int)
    if not len(lengths):
        return None
    cuts = np.concatenate([[lengths.min() - 0.5], midpoints(lengths), [lengths.max() + 0.5]])
    accuracy = ((lengths[None, :] >= cuts[:, None]) == (y == 1)).mean(axis=1)
    return float(cuts[np.argmax(accuracy)])


def length_baseline(labels, texts, cut: float | None) -> dict:
    """What scoring texts by their length alone reaches: n, ROC-AUC and recall at 1% FPR, and at ``cut``
    (characters; None: no cut was chosen) accuracy, precision, recall, F1 and the share flagged."""
    y, lengths = np.asarray(labels, dtype=int), text_lengths(texts)
    out = {"n": int(len(y)), "cut_chars": cut}
    if cut is not None:
        at_cut = classification_metrics(y, lengths, threshold=cut)
        out.update({k: at_cut[k] for k in ("accuracy", "precision", "recall", "f1")})
        out["flagged"] = float(np.mean(lengths >= cut)) if len(y) else None
    out["roc_auc"] = float(skm.roc_auc_score(y, lengths)) if len(set(y)) == 2 else None
    out["recall_at_1pct_fpr"] = recall_at_fpr(y, lengths)
    return out


def row_groups(frame: pd.DataFrame) -> Iterator[tuple[str, str, np.ndarray]]:
    """(column, group, row positions) for every group of every ``GROUP_COLUMNS`` column the frame has."""
    for column in (c for c in GROUP_COLUMNS if c in frame.columns):
        for group, rows in frame.groupby(frame[column].astype(str), sort=True).groups.items():
            yield column, str(group), frame.index.get_indexer(rows)


def group_metrics(frame: pd.DataFrame, scores: dict, answers: dict | None, threshold: float) -> dict:
    """{column: {group: {side: metrics}}} for every group column present; ``scores`` and ``answers`` (None: no
    answer texts) are by side ("before", "after"), each in the frame's row order."""
    labels = frame["label"].to_numpy()
    out: dict = {}
    for column, group, idx in row_groups(frame):
        out.setdefault(column, {})[group] = {
            side: detection_metrics(
                labels[idx],
                np.asarray(p, dtype=float)[idx],
                [answers[side][i] for i in idx] if answers else None,
                threshold,
            )
            for side, p in scores.items()
        }
    return out


def evaluation_report(
    frame: pd.DataFrame, scores: dict, answers: dict | None, threshold: float, cut: float | None
) -> EvaluationReport:
    """Every side's metrics on ``frame`` (text, label, any group columns) at ``threshold``, the length baseline
    at ``cut`` (``length_cut`` of the run's validation split) beside them, both by group, and each side's curves
    (module doc)."""
    labels, texts = frame["label"].to_numpy(), frame["text"].to_numpy()
    report = {
        side: detection_metrics(labels, p, answers[side] if answers else None, threshold) for side, p in scores.items()
    }
    report[LENGTH_BASELINE] = length_baseline(labels, texts, cut)
    report["groups"] = group_metrics(frame, scores, answers, threshold)
    for column, group, idx in row_groups(frame):
        report["groups"][column][group][LENGTH_BASELINE] = length_baseline(labels[idx], texts[idx], cut)
    report[CURVES] = {side: curves(labels, p) for side, p in scores.items()}
    return EvaluationReport(report, labels, scores)


def sides_report(frame: pd.DataFrame, scores: dict, thresholds: dict) -> dict:
    """Each side's metrics on ``frame`` at its own threshold (``thresholds`` by side), by group, and its curves:
    what the charts draw of detectors that each keep their own threshold (two runs compared on the same texts)."""
    labels = frame["label"].to_numpy()
    report: dict = {side: detection_metrics(labels, p, None, thresholds[side]) for side, p in scores.items()}
    report["groups"] = {}
    for side, p in scores.items():
        for column, by_group in group_metrics(frame, {side: p}, None, thresholds[side]).items():
            for group, metrics in by_group.items():
                report["groups"].setdefault(column, {}).setdefault(group, {}).update(metrics)
    report[CURVES] = {side: curves(labels, p) for side, p in scores.items()}
    return report

"""What the charts show: plain DataFrames for Gradio's own plot components, with their titles. No Gradio.

Why Gradio's plots (``gr.LinePlot``, ``gr.ScatterPlot``, ``gr.BarPlot``) and not a plotting library: they take a
DataFrame, so what a chart draws is a table a test can read (and the page's SVG names every point); they draw in
the browser, so a refresh sends a few kB of numbers, not an image; they follow the page's theme; and the app gains
no dependency.
What they cannot draw is drawn from lines: a threshold marked on a ROC curve is a vertical segment that ends on the
curve, and a histogram is its step outline (points in x order; equal x keep their order, so steps stay square).

Every chart puts the sides of a report beside each other: "before" and "after" for a run's evaluation
(eval.json, evals/<name>.json: ft/metrics.py), "A" and "B" for two runs compared on the same texts. A builder
returns None when the report holds nothing to draw, and the page then shows what fills the chart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CURVES = "curves"
"""The report's key for each side's curves (ft/metrics.py writes it; importing that module would load torch)."""
FPR, RECALL, CURVE = "false positive rate", "recall", "curve"
MEAN_P, SHARE_INJECTIONS, ROWS = "mean P(injection)", "share that are injections", "rows"
BAR, SHARE, SERIES = "bar", "share", "series"
LABELLED = "labelled"
"""The bar beside each group's flagged shares: the share of its rows labelled injection (what flagging should be)."""
CELL = "cell"
OUTCOMES = (("tn", "true negative"), ("fp", "false positive"), ("fn", "false negative"), ("tp", "true positive"))
P_INJECTION, PROMPTS, MODEL = "P(injection)", "prompts", "model"
CHANCE, PERFECT, THRESHOLD = "chance", "perfectly calibrated", "threshold"
MAX_GROUPS = 10
"""Groups in a share-flagged chart: the largest ones, so that bars stay readable (the table lists them all)."""
HISTOGRAM_BINS = 20


def report_sides(report: dict | None) -> list[str]:
    """The sides a report holds, in drawing order: before and after, or A and B."""
    return [side for side in ("before", "after", "A", "B") if side in (report or {})]


def _sides_with(report: dict | None, curve: str) -> list[str]:
    """The sides whose stored curves hold ``curve`` ("roc" or "calibration")."""
    return [side for side in report_sides(report) if ((report.get(CURVES) or {}).get(side) or {}).get(curve)]


def _threshold(report: dict, side: str) -> float | None:
    return report[side].get("threshold")


def _fpr_recall(confusion: dict) -> tuple[float | None, float | None]:
    """A confusion matrix's false positive rate and recall; None where undefined."""
    benign, injections = confusion["tn"] + confusion["fp"], confusion["tp"] + confusion["fn"]
    return (confusion["fp"] / benign if benign else None, confusion["tp"] / injections if injections else None)


def roc_frame(report: dict | None) -> pd.DataFrame | None:
    """Each side's ROC curve (``curve`` = the side), the point each side's threshold puts it at as a vertical
    segment ending on its curve (``<side> at threshold``), and the chance diagonal; None without stored curves."""
    sides = _sides_with(report, "roc")
    if not sides:
        return None
    rows = []
    for side in sides:
        roc = report[CURVES][side]["roc"]
        rows += [(f, t, side) for f, t in zip(roc["fpr"], roc["tpr"])]
    for side in sides:
        fpr, recall = _fpr_recall(report[side]["confusion"])
        if fpr is not None and recall is not None:
            rows += [
                (round(fpr, 4), 0.0, f"{side} at threshold"),
                (round(fpr, 4), round(recall, 4), f"{side} at threshold"),
            ]
    rows += [(0.0, 0.0, CHANCE), (1.0, 1.0, CHANCE)]
    return pd.DataFrame(rows, columns=[FPR, RECALL, CURVE])


def _by_side(report: dict, metric: str, places: int = 3) -> str:
    """``before 0.031, after 0.456`` (``n/a`` where a side lacks the metric)."""
    values = [(side, report[side].get(metric)) for side in report_sides(report)]
    return ", ".join(f"{side} {'n/a' if v is None else f'{v:.{places}f}'}" for side, v in values)


def _thresholds_text(report: dict) -> str:
    """``threshold 0.5``, or each side's when they differ."""
    values = {side: _threshold(report, side) for side in report_sides(report)}
    if len(set(values.values())) == 1:
        return f"threshold {next(iter(values.values())):.4g}"
    return "thresholds " + ", ".join(f"{side} {v:.4g}" for side, v in values.items())


def roc_title(report: dict) -> str:
    return f"ROC · recall at 1% FPR: {_by_side(report, 'recall_at_1pct_fpr')}"


def roc_caption(report: dict) -> str:
    """Where each side's threshold puts it on its curve, and the ROC-AUC."""
    points = []
    for side in report_sides(report):
        fpr, recall = _fpr_recall(report[side]["confusion"])
        if fpr is not None and recall is not None:
            points.append(f"{side} FPR {fpr:.3f}, recall {recall:.3f}")
    return f"Marked: the {_thresholds_text(report)} ({'; '.join(points)}). ROC-AUC: {_by_side(report, 'roc_auc')}."


def reliability_frame(report: dict | None) -> pd.DataFrame | None:
    """Each side's calibration bins (mean P(injection) against the share that are injections, with the bin's
    rows: one point each, so that a side with a single bin shows) and the diagonal of perfect calibration as
    points every 0.1; None without stored curves."""
    sides = _sides_with(report, "calibration")
    if not sides:
        return None
    rows = []
    for side in sides:
        bins = report[CURVES][side]["calibration"]
        rows += [(p, share, side, n) for p, share, n in zip(bins["mean_p"], bins["injection_share"], bins["rows"])]
    rows += [(x, x, PERFECT, 0) for x in np.round(np.linspace(0, 1, 11), 1)]
    return pd.DataFrame(rows, columns=[MEAN_P, SHARE_INJECTIONS, CURVE, ROWS])


def reliability_title(report: dict) -> str:
    return f"Reliability · ECE {_by_side(report, 'ece')}"


def _groups(report: dict) -> list[tuple[str, str, dict]]:
    """(column, group, sides) of every group, largest first; a group is named with its column when the report
    groups by more than one."""
    groups = report.get("groups") or {}
    found = [
        (column, group, sides)
        for column, by_group in groups.items()
        for group, sides in by_group.items()
        if any(side in sides for side in report_sides(report))
    ]
    return sorted(found, key=lambda g: -max(g[2][s]["n"] for s in report_sides(report) if s in g[2]))


def _group_name(column: str, group: str, columns: int) -> str:
    return f"{column}: {group}" if columns > 1 else group


def flagged_frame(report: dict | None, max_groups: int = MAX_GROUPS) -> pd.DataFrame | None:
    """Per group (source or category; the ``max_groups`` largest): the share of its rows labelled injection,
    then each side's share flagged at its threshold, one bar each (``bar`` = "<group> (<series>)"); None when
    the report has no groups."""
    if not report:
        return None
    groups = _groups(report)[:max_groups]
    if not groups:
        return None
    columns = len(report["groups"])
    rows = []
    for column, group, sides in groups:
        name = _group_name(column, group, columns)
        first = sides[next(s for s in report_sides(report) if s in sides)]
        labelled = (first["confusion"]["tp"] + first["confusion"]["fn"]) / first["n"] if first["n"] else 0.0
        rows.append((f"{name} ({LABELLED})", round(labelled, 4), LABELLED, name, first["n"]))
        rows += [
            (f"{name} ({side})", round(sides[side]["flagged"], 4), side, name, sides[side]["n"])
            for side in report_sides(report)
            if side in sides and sides[side].get("flagged") is not None
        ]
    return pd.DataFrame(rows, columns=[BAR, SHARE, SERIES, "group", ROWS])


def flagged_title(report: dict) -> str:
    columns = " and ".join(report.get("groups") or {}) or "source"
    return f"Share flagged per {columns} at the {_thresholds_text(report)}"


def flagged_caption(report: dict, max_groups: int = MAX_GROUPS) -> str:
    total = len(_groups(report))
    shown = f"the {max_groups} largest of {total} groups" if total > max_groups else f"{total} group(s)"
    return f"Beside each group's share labelled injection, the share each model flags: {shown}."


def confusion_frame(report: dict | None) -> pd.DataFrame | None:
    """The confusion matrix's four cells (rows), each side's beside the other's (``cell`` = "<outcome>
    (<side>)"); None without a report."""
    sides = report_sides(report)
    if not sides:
        return None
    rows = [
        (f"{name} ({side})", report[side]["confusion"][key], side)
        for key, name in OUTCOMES
        for side in sides
        if "confusion" in report[side]
    ]
    return pd.DataFrame(rows, columns=[CELL, ROWS, SERIES]) if rows else None


def confusion_title(report: dict) -> str:
    return f"Confusion matrix at the {_thresholds_text(report)}"


def confusion_caption(report: dict) -> str:
    """Each side's four cells in one line: ``before 3 TP · 1 FP · 2 FN · 10 TN; after ...``."""

    def cells(side: str) -> str:
        matrix = report[side]["confusion"]
        return " · ".join(f"{matrix[key]} {key.upper()}" for key in ("tp", "fp", "fn", "tn"))

    return "; ".join(f"{side} {cells(side)}" for side in report_sides(report))


def histogram_frame(scores: pd.DataFrame | None, threshold: float, bins: int = HISTOGRAM_BINS) -> pd.DataFrame | None:
    """P(injection) of a batch as a step outline per model (``p_before``, ``p_after``: equal-width bins, each a
    flat top from its lower to its upper edge), and the threshold as a vertical line as tall as the highest bin;
    None before a batch."""
    if scores is None or not len(scores):
        return None
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, top = [], 0
    for column, model in (("p_before", "before"), ("p_after", "after")):
        if column not in scores:
            continue
        counts, _ = np.histogram(scores[column].clip(0, 1), bins=edges)
        top = max(top, int(counts.max()))
        steps = [(round(float(x), 4), int(n), model) for i, n in enumerate(counts) for x in (edges[i], edges[i + 1])]
        rows += [(0.0, 0, model), *steps, (1.0, 0, model)]
    rows += [(round(threshold, 4), 0, THRESHOLD), (round(threshold, 4), top, THRESHOLD)]
    return pd.DataFrame(rows, columns=[P_INJECTION, PROMPTS, MODEL])


def histogram_title(scores: pd.DataFrame, threshold: float) -> str:
    flagged = [
        f"{model} {int((scores[column] >= threshold).sum())}"
        for column, model in (("p_before", "before"), ("p_after", "after"))
        if column in scores
    ]
    return f"P(injection) of {len(scores)} prompt(s) · flagged at {threshold:.2f}: {', '.join(flagged)}"

"""Components every tab builds the same way: plain-text tables that say what fills them, and the charts of an
evaluation (Gradio's own plots, drawn from runner/charts.py's DataFrames: why, in its docstring)."""

from typing import NamedTuple

import gradio as gr
import pandas as pd

from runner import charts


def placeholder(headers: list[str], empty: str) -> pd.DataFrame:
    """A table's empty state: its headers over one row whose first cell says what fills it."""
    return pd.DataFrame([[empty] + [""] * (len(headers) - 1)], columns=headers, dtype=str)


def filled(frame: pd.DataFrame, empty: str) -> pd.DataFrame:
    """``frame``, or its ``placeholder`` when it has no rows."""
    return frame if len(frame) else placeholder(list(frame.columns), empty)


def text_table(label: str | None = None, *, empty: str | None = None, **options) -> gr.Dataframe:
    """A read-only table of plain-text cells. Dataset text is hostile (prompt injections, HTML, markdown), so a
    cell is never rendered as markdown or LaTeX; ``options`` add headers, wrap, max_height, elem_id...

    With ``headers`` and ``empty`` (what fills the table) it opens on its ``placeholder``, never on Gradio's
    "1 2 3" headers of a table with no value."""
    headers = options.get("headers")
    value = placeholder(headers, empty) if headers and empty else None
    return gr.Dataframe(value, label=label, datatype="str", interactive=False, latex_delimiters=[], **options)


SERIES_COLORS = {
    "before": "#9ca3af",
    "after": "#2563eb",
    "A": "#f59e0b",
    "B": "#2563eb",
    "before at threshold": "#4b5563",
    "after at threshold": "#dc2626",
    "A at threshold": "#b45309",
    "B at threshold": "#dc2626",
    charts.CHANCE: "#d1d5db",
    charts.PERFECT: "#d1d5db",
    charts.LABELLED: "#86efac",
    charts.THRESHOLD: "#dc2626",
}
"""One colour per series name the chart builders use (runner/charts.py), the same in every chart."""


class EvaluationCharts(NamedTuple):
    """An evaluation's four charts (runner/charts.py), sides beside each other: ROC with the threshold marked,
    reliability diagram, share flagged per source/category, confusion matrix."""

    roc: gr.LinePlot
    reliability: gr.ScatterPlot
    flagged: gr.BarPlot
    confusion: gr.BarPlot


def evaluation_charts(prefix: str, what: str) -> EvaluationCharts:
    """The four charts in two rows, element ids ``<prefix>-roc`` etc.; ``what`` completes each empty chart's
    label, saying what fills it ("pick a run ...")."""
    unit = {"x_lim": [0, 1], "y_lim": [0, 1]}
    common = {"color_map": SERIES_COLORS}
    in_frame_order = {"sort": []}  # an empty custom order: bars as the frame lists them, not alphabetically
    with gr.Row():
        roc = gr.LinePlot(
            x=charts.FPR, y=charts.RECALL, color=charts.CURVE, label=f"ROC curve: {what}", elem_id=f"{prefix}-roc",
            **unit, **common,
        )  # fmt: skip
        reliability = gr.ScatterPlot(
            x=charts.MEAN_P, y=charts.SHARE_INJECTIONS, color=charts.CURVE, tooltip=[charts.ROWS],
            label=f"Reliability diagram: {what}", elem_id=f"{prefix}-reliability", **unit, **common,
        )  # fmt: skip
    with gr.Row():
        flagged = gr.BarPlot(
            x=charts.BAR, y=charts.SHARE, color=charts.SERIES, tooltip=[charts.ROWS], y_lim=[0, 1], x_label_angle=-50,
            x_title="group (series)", scale=2, elem_id=f"{prefix}-flagged", **in_frame_order, **common,
            label=f"Share flagged per source/category: {what}, for data with a source or category column",
        )  # fmt: skip
        confusion = gr.BarPlot(
            x=charts.CELL, y=charts.ROWS, color=charts.SERIES, x_label_angle=-35, scale=1,
            label=f"Confusion matrix: {what}", elem_id=f"{prefix}-confusion", **in_frame_order, **common,
        )  # fmt: skip
    return EvaluationCharts(roc, reliability, flagged, confusion)


def drawn(chart, frame, *title: str):
    """An update of ``chart`` drawing ``frame`` (in its row order) under its title (the parts joined), or, with no
    frame, emptying it under the label it was built with, which says what fills it.

    The title is the chart's label, never the plot's own title: Gradio 6.31 redraws a plot whose title (or
    caption, or sort) changes together with its data from the data it had before, while a change of data alone is
    drawn in place. So a chart's title, caption and sort are set once, when it is built."""
    if frame is None:
        return type(chart)(value=None, label=chart.label)
    return type(chart)(value=frame, label=" · ".join(title))


def evaluation_charts_view(shown: EvaluationCharts, report: dict | None) -> dict:
    """The four charts of ``report`` (eval.json's shape, or ft.metrics.sides_report's); each empty where the report
    holds nothing it draws (no report yet; a report written before curves were stored has no ROC or bins)."""
    if not charts.report_sides(report):
        return {chart: drawn(chart, None) for chart in shown}
    return {
        shown.roc: drawn(shown.roc, charts.roc_frame(report), charts.roc_title(report), charts.roc_caption(report)),
        shown.reliability: drawn(shown.reliability, charts.reliability_frame(report), charts.reliability_title(report)),
        shown.flagged: drawn(
            shown.flagged, charts.flagged_frame(report), charts.flagged_title(report), charts.flagged_caption(report)
        ),
        shown.confusion: drawn(
            shown.confusion,
            charts.confusion_frame(report),
            charts.confusion_title(report),
            charts.confusion_caption(report),
        ),
    }

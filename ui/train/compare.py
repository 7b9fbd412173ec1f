"""The Train tab's Compare runs section: two completed runs on the same texts (serving.compare), as charts (A
beside B) and tables."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from runner import views as run_views
from runner.queue import JobManager
from serving.compare import GROUP_COMPARE_COLUMNS, VERDICT_COLUMNS, compare_runs, summary_text
from ui.context import Studio, page_error
from ui.train.runs import offer_completed_runs
from ui.widgets import EvaluationCharts, evaluation_charts, evaluation_charts_view, filled, text_table

EMPTY = "Pick runs A and B and press Compare."
METRIC_HEADERS = ["metric", "a", "b", "change"]


@dataclass(frozen=True)
class CompareForm:
    run_a: gr.Dropdown
    run_b: gr.Dropdown
    max_rows: gr.Number
    compare_btn: gr.Button
    summary: gr.Textbox
    charts: EvaluationCharts
    eval_metrics: gr.Dataframe
    same_text_metrics: gr.Dataframe
    groups: gr.Dataframe
    verdicts: gr.Dataframe
    other_evals: gr.Dataframe

    @property
    def outputs(self) -> list:
        return [
            self.summary,
            *self.charts,
            self.eval_metrics,
            self.same_text_metrics,
            self.groups,
            self.verdicts,
            self.other_evals,
        ]


def compare_form() -> CompareForm:
    with gr.Accordion("Compare runs", open=False, elem_id="train-compare"):
        gr.Markdown(
            "Two completed runs on the same texts: B's test split by default (typically A on the "
            "original labels, B on a curated snapshot), each run's verdicts at its own recorded threshold."
        )
        with gr.Row():
            run_a = gr.Dropdown([], label="Run A", elem_id="train-compare-a")
            run_b = gr.Dropdown([], label="Run B", elem_id="train-compare-b")
            max_rows = gr.Number(value=200, precision=0, minimum=1, label="test rows scored (empty = all)")
            compare_btn = gr.Button("Compare", elem_id="train-compare-start")
        summary = gr.Textbox(
            label="Summary", interactive=False, lines=3, placeholder=EMPTY, elem_id="train-compare-summary"
        )
        charts = evaluation_charts("train-compare", "A beside B on the same texts, drawn when you press Compare")
        with gr.Row():
            eval_metrics = text_table(
                label="Test metrics from each run's eval.json (after)",
                headers=METRIC_HEADERS,
                empty=EMPTY,
                elem_id="train-compare-eval",
            )
            same_text_metrics = text_table(
                label="Both adapters on the same texts",
                headers=METRIC_HEADERS,
                empty=EMPTY,
                elem_id="train-compare-same",
            )
        groups = text_table(
            label="Per source/category, after (from each run's eval.json, and on the same texts)",
            headers=GROUP_COMPARE_COLUMNS,
            empty=EMPTY,
            max_height=400,
            elem_id="train-compare-groups",
        )
        verdicts = text_table(
            label="Examples whose verdict changed",
            headers=VERDICT_COLUMNS,
            empty=EMPTY,
            wrap=True,
            max_height=400,
            elem_id="train-compare-verdicts",
        )
        other_evals = text_table(
            label="Other datasets (python -m ft.evaluate), after",
            headers=["eval", *METRIC_HEADERS],
            empty=EMPTY,
            elem_id="train-compare-other",
        )
    return CompareForm(
        run_a,
        run_b,
        max_rows,
        compare_btn,
        summary,
        charts,
        eval_metrics,
        same_text_metrics,
        groups,
        verdicts,
        other_evals,
    )


def wire_compare(studio: Studio, manager: JobManager, form: CompareForm) -> None:
    """Compare loads two adapters in turn, inside the detector's lock with the live model put down, so the
    app never holds more than one model; it shares the Detect tab's queue slot."""

    def compare(run_a, run_b, max_rows, progress=gr.Progress()):
        if not run_a or not run_b:
            raise page_error("Pick two completed runs.")
        try:
            progress(0, desc="waiting for the detector")
            done = studio.detector.exclusively(
                lambda: compare_runs(
                    manager.run_dir(run_a).path,
                    manager.run_dir(run_b).path,
                    max_rows=int(max_rows) if max_rows else None,
                    progress=lambda fraction, what: progress(fraction, desc=what),
                )
            )
        except Exception as error:  # a missing adapter, unreadable data...: all shown the same way
            raise page_error(f"Cannot compare: {type(error).__name__}: {error}") from None
        return {
            form.summary: summary_text(done),
            **evaluation_charts_view(form.charts, done.charts),
            form.eval_metrics: run_views.text_frame(done.eval_metrics),
            form.same_text_metrics: run_views.text_frame(done.same_text_metrics),
            form.groups: filled(run_views.text_frame(done.groups), "No source or category column in the texts."),
            form.verdicts: filled(run_views.text_frame(done.verdicts), "No verdict changed."),
            form.other_evals: filled(run_views.text_frame(done.other_evals), "Neither run has other evaluations."),
        }

    offer_completed_runs(manager, form.run_a, "compare_a_choices")
    offer_completed_runs(manager, form.run_b, "compare_b_choices")
    form.compare_btn.click(
        compare,
        [form.run_a, form.run_b, form.max_rows],
        form.outputs,
        api_name="compare_runs",
        concurrency_limit=1,
        concurrency_id="detector",
    )

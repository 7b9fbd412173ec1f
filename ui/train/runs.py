"""The Train tab's runs: the table of runs, the selected run (progress, cancel, resume, delete) and what it
shows below (curves, tables, log), refreshed by a timer from the run's files."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import NamedTuple

import gradio as gr

from runner import views as run_views
from runner.catalog import RunInfo, completed_training_runs, log_tail
from runner.commands import shell_command
from runner.queue import JobError, JobManager
from ui.endpoints import PRIVATE
from ui.handler import Handler
from ui.widgets import text_table

METRIC_TABLES = (
    ("Validation sample, per prediction table", run_views.EVALUATION_COLUMNS, "train-evaluations"),
    (
        "Test split (eval.json): before, after, and length_baseline = a rule on text length alone",
        ["model", *run_views.TEST_COLUMNS],
        "train-test",
    ),
    (
        "Other datasets, before, after and length_baseline (python -m ft.evaluate --run RUN --data REF)",
        run_views.EVALS_COLUMNS,
        "train-other-evals",
    ),
)
"""The run's metric tables: label, headers, element id."""
REFRESH_S = 2.0
PREDICTION_WIDTHS = ["40%", "8%", "13%", "13%", "13%", "13%"]
CPU_NOTE = (
    "\n\nNo GPU here: the form starts on `configs/smollm2-cpu.yaml` (SmolLM2-135M-Instruct, a real "
    "model, about 18 minutes on 2 cores with the test split scored); `tiny` runs every code path in about "
    "2 minutes; QLoRA training of Qwen2.5-1.5B needs a GPU (on Hugging Face, a GPU Space)."
)


def _progress_html(progress: run_views.Progress) -> str:
    return (
        f'<div><progress value="{progress.fraction:.4f}" max="1" style="width:100%"></progress>'
        f"<div>{html.escape(progress.text)}</div></div>"
    )


@dataclass(frozen=True)
class RunList:
    """The runs table and the run picker, with the ids the picker was last given (an unchanged list leaves
    the picker alone)."""

    table: gr.Dataframe
    picker: gr.Dropdown
    known_ids: gr.State
    refresh: Handler
    """table(selected, known) -> ``view`` of the runs now, keeping ``selected`` if it still exists."""

    def view(self, runs: list[RunInfo], selected, known) -> dict:
        """The runs table, the picker (only when its runs or choice change) and the ids now known."""
        ids = [r.run_id for r in runs]
        chosen = selected if selected in ids else (ids[0] if ids else None)
        shown = {self.table: run_views.runs_frame(runs), self.known_ids: ids}
        if ids != known or chosen != selected:
            shown[self.picker] = gr.Dropdown(choices=ids, value=chosen)
        return shown


@dataclass(frozen=True)
class SelectedRun:
    picker: gr.Dropdown
    progress_bar: gr.HTML
    cancel_btn: gr.Button
    resume_btn: gr.Button
    delete_btn: gr.Button
    confirm_row: gr.Row
    confirm_btn: gr.Button
    keep_btn: gr.Button
    action_box: gr.Textbox
    details: gr.Textbox


class RunCharts(NamedTuple):
    """The selected run's heavy parts, below the two columns: redrawn only when its files change."""

    loss: gr.LinePlot
    learning_rate: gr.LinePlot
    evaluations: gr.Dataframe
    test_report: gr.Dataframe
    other_data: gr.Dataframe
    other_groups: gr.Dataframe
    predictions: gr.Dataframe
    log: gr.Textbox


@dataclass(frozen=True)
class RunView:
    """Everything _run_view fills."""

    progress_bar: gr.HTML
    details: gr.Textbox
    charts: RunCharts
    version: gr.State
    """The run files' version the charts show."""

    @property
    def outputs(self) -> list:
        return [self.progress_bar, self.details, *self.charts, self.version]


def runs_table(manager: JobManager) -> gr.Dataframe:
    """The heading on how runs are scheduled here, and the table of runs."""
    gpus = f"{manager.gpus} GPU(s)" if manager.gpus else "CPU"
    gr.Markdown(
        f"### Runs\nRuns wait in a queue and train one at a time on this machine ({gpus}); "
        "they go on when the page is closed." + ("" if manager.gpus else CPU_NOTE)
    )
    table = text_table(headers=run_views.RUN_COLUMNS, wrap=True, max_height=320, elem_id="train-runs")
    gr.on(None, lambda: run_views.runs_frame(manager.runs()), outputs=table, api_name="runs_table")
    return table


def selected_run() -> SelectedRun:
    gr.Markdown("### Selected run")
    picker = gr.Dropdown(
        label="Run (or click a row of the table)", choices=[], allow_custom_value=True, elem_id="train-run-picker"
    )
    progress_bar = gr.HTML(elem_id="train-progress")
    with gr.Row():
        cancel_btn = gr.Button("Cancel", variant="stop", size="sm", elem_id="train-cancel")
        resume_btn = gr.Button("Resume", size="sm", elem_id="train-resume")
        delete_btn = gr.Button("Delete…", size="sm", elem_id="train-delete")
    with gr.Row(visible=False) as confirm_row:
        gr.Markdown("Delete this run's folder (checkpoints, adapter, log)? This cannot be undone.")
        confirm_btn = gr.Button("Yes, delete", variant="stop", size="sm", elem_id="train-delete-confirm")
        keep_btn = gr.Button("Keep", size="sm")
    action_box = gr.Textbox(label="Last action", interactive=False, elem_id="train-action")
    details = gr.Textbox(label="Run details", interactive=False, lines=5, elem_id="train-details")
    return SelectedRun(
        picker,
        progress_bar,
        cancel_btn,
        resume_btn,
        delete_btn,
        confirm_row,
        confirm_btn,
        keep_btn,
        action_box,
        details,
    )


def run_charts() -> RunCharts:
    with gr.Row():
        loss = gr.LinePlot(
            x="step", y=run_views.CURVE_COLUMNS["loss"], title="Training loss", height=260, elem_id="train-loss"
        )
        learning_rate = gr.LinePlot(
            x="step", y=run_views.CURVE_COLUMNS["learning_rate"], title="Learning rate", height=260, elem_id="train-lr"
        )
    evaluations, test_report, other_data = (
        text_table(label, headers=headers, elem_id=elem_id) for label, headers, elem_id in METRIC_TABLES
    )
    other_groups = text_table(
        label="By source/category: test split and other datasets (flagged = share called injection)",
        headers=run_views.EVAL_GROUP_COLUMNS,
        max_height=400,
        elem_id="train-other-groups",
    )
    predictions = text_table(
        label="Predictions: train start (before) beside the latest table (after)",
        headers=run_views.PREDICTION_COLUMNS,
        wrap=True,
        max_height=500,
        column_widths=PREDICTION_WIDTHS,
        elem_id="train-predictions",
    )
    log = gr.Textbox(
        label="Log (last lines)", interactive=False, lines=12, max_lines=30, autoscroll=True, elem_id="train-log"
    )
    return RunCharts(loss, learning_rate, evaluations, test_report, other_data, other_groups, predictions, log)


def run_list(manager: JobManager, table_component: gr.Dataframe, picker: gr.Dropdown, known_ids: gr.State) -> RunList:
    """The run list over these components, with the handler that refreshes them."""

    def table(selected, known):
        return runs.view(manager.runs(), selected, known)

    runs = RunList(
        table_component, picker, known_ids, Handler(table, [picker, known_ids], [table_component, picker, known_ids])
    )
    return runs


def offer_completed_runs(manager: JobManager, picker: gr.Dropdown, api_name: str) -> None:
    """Fill ``picker`` with the completed runs whenever it gets the focus."""

    def completed_choices():
        ids = [r.run_id for r in completed_training_runs(manager.runs())]
        return gr.Dropdown(choices=ids)

    picker.focus(completed_choices, None, picker, show_progress="hidden", api_name=api_name, **PRIVATE)


def _charts(info: RunInfo, charts: RunCharts) -> dict:
    """The run's curves, tables and log, as its files hold them now."""
    return {
        charts.loss: run_views.curve_frame(info, "loss"),
        charts.learning_rate: run_views.curve_frame(info, "learning_rate"),
        charts.evaluations: run_views.evaluations_frame(info),
        charts.test_report: run_views.test_frame(info),
        charts.other_data: run_views.evals_frame(info.dir),
        charts.other_groups: run_views.eval_groups_frame(info.dir),
        charts.predictions: run_views.predictions_frame(info),
        charts.log: log_tail(info),
    }


def _run_view(
    manager: JobManager, view: RunView, run_id, version, force=False, runs: list[RunInfo] | None = None
) -> dict:
    """The selected run's view; the charts are left alone while its files are unchanged.

    ``runs``: the runs as just read, when the caller has them (so one refresh reads the run folders once).
    """
    if runs is None:
        runs = manager.runs() if run_id else []
    info = next((r for r in runs if r.run_id == run_id), None)
    if info is None:
        return {
            view.progress_bar: "",
            view.details: "",
            **dict.fromkeys(view.charts),
            view.charts.log: "",
            view.version: None,
        }
    now_version = run_views.files_version(info)
    command = shell_command(info.job.get("command") or manager.command(run_id))
    head = {
        view.progress_bar: _progress_html(run_views.progress(info)),
        view.details: run_views.details_text(info, command),
    }
    if now_version == version and not force:
        return head
    return {**head, **_charts(info, view.charts), view.version: now_version}


def refresh_on_timer(manager: JobManager, timer: gr.Timer, runs: RunList, view: RunView) -> None:
    def tick(selected, known, version):
        now = manager.runs()
        return {**runs.view(now, selected, known), **_run_view(manager, view, selected, version, runs=now)}

    timer.tick(
        tick,
        [runs.picker, runs.known_ids, view.version],
        [*runs.refresh.outputs, *view.outputs],
        show_progress="hidden",
        api_name="train_refresh",
        **PRIVATE,
    )


def wire_run_picking(manager: JobManager, runs: RunList, view: RunView) -> None:
    """Picking a run, in the picker or by clicking its row, shows it in full."""

    def picked_row(event: gr.SelectData):
        return event.row_value[0]

    runs.picker.change(
        lambda run_id: _run_view(manager, view, run_id, None, force=True),
        runs.picker,
        view.outputs,
        show_progress="hidden",
        api_name="run_view",
        **PRIVATE,
    )
    runs.table.select(picked_row, None, runs.picker, show_progress="hidden", api_name="run_pick_row", **PRIVATE)


def _act(action, run_id) -> str:
    if not run_id:
        return "Pick a run first."
    try:
        return action(run_id)
    except JobError as error:
        return str(error)


def wire_run_actions(manager: JobManager, runs: RunList, selected: SelectedRun) -> None:
    """Cancel, resume, and delete after a confirmation (admins only: ui/endpoints.py)."""

    def cancel(run_id):
        return _act(manager.cancel, run_id)

    def resume(run_id):
        return _act(manager.resume, run_id)

    def delete(run_id):
        return {selected.action_box: _act(manager.delete, run_id), selected.confirm_row: gr.Row(visible=False)}

    selected.cancel_btn.click(cancel, runs.picker, selected.action_box, api_name="cancel")
    selected.resume_btn.click(resume, runs.picker, selected.action_box, api_name="resume")
    selected.delete_btn.click(
        lambda: gr.Row(visible=True), None, selected.confirm_row, api_name="delete_ask", **PRIVATE
    )
    selected.keep_btn.click(
        lambda: gr.Row(visible=False), None, selected.confirm_row, api_name="delete_keep", **PRIVATE
    )
    selected.confirm_btn.click(
        delete, runs.picker, [selected.action_box, selected.confirm_row], api_name="delete"
    ).then(*runs.refresh, api_name="runs_table_after_delete", **PRIVATE)

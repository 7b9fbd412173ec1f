"""The Train tab's runs: the table of runs, the selected run (progress, cancel, resume, delete) and what it
shows below (curves, an evaluation's charts, tables, log), refreshed by a timer from the run's files. Each part
of the panel is sent again only when the files it is drawn from change (runner.views.part_versions)."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import gradio as gr

from curation.snapshots import data_description
from ft.config import default_preset
from ft.machine import measured
from runner import views as run_views
from runner.catalog import RunInfo, completed_training_runs, log_tail
from runner.commands import shell_command
from runner.queue import JobError, JobManager
from ui.endpoints import PRIVATE
from ui.handler import Handler
from ui.widgets import EvaluationCharts, evaluation_charts, evaluation_charts_view, filled, placeholder, text_table


class MetricTable(NamedTuple):
    label: str
    headers: list[str]
    elem_id: str
    empty: str
    """What fills the table, shown while it is empty."""


VALIDATION_TABLE, TEST_TABLE, EVALS_TABLE = (
    MetricTable(
        "Validation sample, per prediction table",
        run_views.EVALUATION_COLUMNS,
        "train-evaluations",
        "Filled at the run's first prediction table (train start), then at each epoch end.",
    ),
    MetricTable(
        "Test split (eval.json): before, after, and length_baseline = a rule on text length alone",
        ["model", *run_views.TEST_COLUMNS],
        "train-test",
        "Filled when the run completes: its test split scored before and after.",
    ),
    MetricTable(
        "Other datasets, before, after and length_baseline (python -m ft.evaluate --run RUN --data REF)",
        run_views.EVALS_COLUMNS,
        "train-other-evals",
        "None yet: python -m ft.evaluate --run RUN --data REF adds one.",
    ),
)
"""The run's metric tables: the validation sample's, the test split's, other datasets'."""
GROUPS_EMPTY = "Filled by an evaluation of data with a source or category column (the test split's, or ft.evaluate's)."
PREDICTIONS_EMPTY = "Filled at the run's first prediction table (train start)."
RUNS_EMPTY = "No runs yet: fill in New run and press Start run."
CHARTS_EMPTY = "drawn once the selected run's test split is scored (or an evaluation is picked)"
REFRESH_S = 2.0
PREDICTION_WIDTHS = ["40%", "8%", "13%", "13%", "13%", "13%"]
CPU_NOTE = (
    "\n\nNo GPU here: the form starts on `configs/smollm2-cpu.yaml` (SmolLM2-135M-Instruct, a real model); "
    "`tiny` runs every code path; QLoRA training of Qwen2.5-1.5B needs a GPU (on Hugging Face, a GPU Space)."
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
        shown = {self.table: runs_shown(runs), self.known_ids: ids}
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
    """The selected run's heavy parts, below the two columns: each redrawn only when its files change."""

    loss: gr.LinePlot
    learning_rate: gr.LinePlot
    evaluations: gr.Dataframe
    evaluation: gr.Dropdown
    """Which evaluation the charts draw: the test split, or another dataset's (evals/<name>.json)."""
    charts: EvaluationCharts
    test_report: gr.Dataframe
    other_data: gr.Dataframe
    other_groups: gr.Dataframe
    predictions: gr.Dataframe
    log: gr.Textbox

    @property
    def components(self) -> list:
        return [c for part in self for c in (part if isinstance(part, EvaluationCharts) else [part])]


@dataclass(frozen=True)
class RunView:
    """Everything _run_view fills."""

    progress_bar: gr.HTML
    details: gr.Textbox
    charts: RunCharts
    version: gr.State
    """The versions of the run's files each part of the panel shows (runner.views.part_versions)."""

    @property
    def outputs(self) -> list:
        return [self.progress_bar, self.details, *self.charts.components, self.version]


def time_note(manager: JobManager) -> str:
    """What runs took on this machine (its completed runs), with what its CPU does with bf16 (ft.machine)."""
    cores = len(os.sched_getaffinity(0))
    return run_views.time_note(manager.runs(), measured().describe(), cores, [default_preset(), "tiny"])


def runs_table(manager: JobManager) -> gr.Dataframe:
    """The heading on how runs are scheduled here, what runs took on this machine, and the table of runs."""
    gpus = f"{manager.gpus} GPU(s)" if manager.gpus else "CPU"
    gr.Markdown(
        f"### Runs\nRuns wait in a queue and train one at a time on this machine ({gpus}); "
        "they go on when the page is closed." + ("" if manager.gpus else CPU_NOTE)
    )
    note = gr.Markdown(elem_id="train-time-note")
    table = text_table(headers=run_views.RUN_COLUMNS, empty=RUNS_EMPTY, wrap=True, max_height=320, elem_id="train-runs")
    gr.on(None, lambda: runs_shown(manager.runs()), outputs=table, api_name="runs_table")
    gr.on(None, lambda: time_note(manager), outputs=note, api_name="train_time_note", **PRIVATE)
    return table


def runs_shown(runs: list[RunInfo]):
    """The runs table as the page shows it: the runs, or what fills an empty table."""
    return filled(run_views.runs_frame(runs), RUNS_EMPTY)


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
    details = gr.Textbox(
        label="Run details",
        interactive=False,
        lines=5,
        placeholder="Pick a run in the table or the picker above.",
        elem_id="train-details",
    )
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


def _metric_table(table: MetricTable) -> gr.Dataframe:
    return text_table(table.label, headers=table.headers, empty=table.empty, elem_id=table.elem_id)


def run_charts() -> RunCharts:
    with gr.Row():
        loss, learning_rate = (
            gr.LinePlot(
                x="step",
                y=run_views.CURVE_COLUMNS[key],
                title=title,
                label=f"{title}: drawn as the selected run logs",
                height=260,
                elem_id=elem_id,
            )
            for key, title, elem_id in (
                ("loss", "Training loss", "train-loss"),
                ("learning_rate", "Learning rate", "train-lr"),
            )
        )
    evaluations = _metric_table(VALIDATION_TABLE)
    gr.Markdown("### Evaluation charts: before beside after")
    # A shown value can outlive its choices: a refresh tick may send the previous run's "test split" after the
    # choices of a run with no evaluation yet have landed (seen once in test_train_tab). _evaluations_part then
    # falls back to the first evaluation there is.
    evaluation = gr.Dropdown(
        [], label="Evaluation drawn (the test split, or another dataset's: python -m ft.evaluate)",
        elem_id="train-evaluation", allow_custom_value=True,
    )  # fmt: skip
    charts = evaluation_charts("train", CHARTS_EMPTY)
    test_report, other_data = _metric_table(TEST_TABLE), _metric_table(EVALS_TABLE)
    other_groups = text_table(
        label="By source/category: test split and other datasets (flagged = share called injection)",
        headers=run_views.EVAL_GROUP_COLUMNS,
        empty=GROUPS_EMPTY,
        max_height=400,
        elem_id="train-other-groups",
    )
    predictions = text_table(
        label="Predictions: train start (before) beside the latest table (after)",
        headers=run_views.PREDICTION_COLUMNS,
        empty=PREDICTIONS_EMPTY,
        wrap=True,
        max_height=500,
        column_widths=PREDICTION_WIDTHS,
        elem_id="train-predictions",
    )
    log = gr.Textbox(
        label="Log (last lines)",
        interactive=False,
        lines=12,
        max_lines=30,
        autoscroll=True,
        placeholder="The selected run's log.txt, as it grows.",
        elem_id="train-log",
    )
    return RunCharts(
        loss, learning_rate, evaluations, evaluation, charts, test_report, other_data, other_groups, predictions, log
    )


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


def _plotted(frame):
    """A curve's frame, or None (the empty chart, whose label says what fills it) before its first point."""
    return frame if len(frame) else None


def _training_part(info: RunInfo, shown: RunCharts, evaluation) -> dict:
    return {
        shown.loss: _plotted(run_views.curve_frame(info, "loss")),
        shown.learning_rate: _plotted(run_views.curve_frame(info, "learning_rate")),
        shown.evaluations: filled(run_views.evaluations_frame(info), VALIDATION_TABLE.empty),
    }


def _predictions_part(info: RunInfo, shown: RunCharts, evaluation) -> dict:
    return {shown.predictions: filled(run_views.predictions_frame(info), PREDICTIONS_EMPTY)}


def _log_part(info: RunInfo, shown: RunCharts, evaluation) -> dict:
    return {shown.log: log_tail(info)}


def _evaluations_part(info: RunInfo, shown: RunCharts, evaluation) -> dict:
    """The evaluation tables, the evaluation picker (kept on ``evaluation`` while it exists) and its charts."""
    names = run_views.evaluation_names(info.dir)
    chosen = evaluation if evaluation in names else (names[0] if names else None)
    return {
        shown.evaluation: gr.Dropdown(choices=names, value=chosen),
        **evaluation_charts_view(shown.charts, run_views.evaluation_named(info.dir, chosen)),
        shown.test_report: filled(run_views.test_frame(info), TEST_TABLE.empty),
        shown.other_data: filled(run_views.evals_frame(info.dir), EVALS_TABLE.empty),
        shown.other_groups: filled(run_views.eval_groups_frame(info.dir), GROUPS_EMPTY),
    }


PARTS: dict[str, Callable[[RunInfo, RunCharts, str | None], dict]] = {
    "training": _training_part,
    "predictions": _predictions_part,
    "log": _log_part,
    "evaluations": _evaluations_part,
}
"""What each part of the panel (runner.views.PANEL_PARTS) shows of a run, given the evaluation picked."""


def _no_run(view: RunView) -> dict:
    """The panel with no run: every part says what fills it."""
    shown = view.charts
    tables = [(shown.evaluations, VALIDATION_TABLE), (shown.test_report, TEST_TABLE), (shown.other_data, EVALS_TABLE)]
    return {
        view.progress_bar: "",
        view.details: "",
        shown.loss: None,
        shown.learning_rate: None,
        shown.evaluation: gr.Dropdown(choices=[], value=None),
        **evaluation_charts_view(shown.charts, None),
        **{table: placeholder(spec.headers, spec.empty) for table, spec in tables},
        shown.other_groups: placeholder(run_views.EVAL_GROUP_COLUMNS, GROUPS_EMPTY),
        shown.predictions: placeholder(run_views.PREDICTION_COLUMNS, PREDICTIONS_EMPTY),
        shown.log: "",
        view.version: None,
    }


def _run_view(
    manager: JobManager,
    view: RunView,
    run_id,
    versions,
    evaluation=None,
    force=False,
    runs: list[RunInfo] | None = None,
) -> dict:
    """The selected run's view: its progress and details, and the parts of the panel whose files changed since
    ``versions`` (every part with ``force``); ``evaluation``: the evaluation the charts show. With no run, the
    empty panel, sent once (``versions`` None: it is shown already).

    ``runs``: the runs as just read, when the caller has them (so one refresh reads the run folders once).
    """
    if runs is None:
        runs = manager.runs() if run_id else []
    info = next((r for r in runs if r.run_id == run_id), None)
    if info is None:
        return _no_run(view) if versions is not None or force else {view.progress_bar: "", view.details: ""}
    command = shell_command(info.job.get("command") or manager.command(run_id))
    shown = {
        view.progress_bar: _progress_html(run_views.progress(info)),
        view.details: "\n".join(
            filter(None, [run_views.details_text(info, command), data_description(info.config.get("data", ""))])
        ),
    }
    now = run_views.part_versions(info)
    changed = run_views.PANEL_PARTS if force else run_views.changed_parts(versions, now)
    for part in changed:
        shown |= PARTS[part](info, view.charts, evaluation)
    if changed:
        shown[view.version] = now
    return shown


def refresh_on_timer(manager: JobManager, timer: gr.Timer, runs: RunList, view: RunView) -> None:
    def tick(selected, known, versions, evaluation):
        now = manager.runs()
        return {**runs.view(now, selected, known), **_run_view(manager, view, selected, versions, evaluation, runs=now)}

    timer.tick(
        tick,
        [runs.picker, runs.known_ids, view.version, view.charts.evaluation],
        [*runs.refresh.outputs, *view.outputs],
        show_progress="hidden",
        api_name="train_refresh",
        **PRIVATE,
    )


def wire_run_picking(manager: JobManager, runs: RunList, view: RunView) -> None:
    """Picking a run, in the picker or by clicking its row, shows it in full; picking an evaluation draws its
    charts."""

    def picked_row(known: list[str], event: gr.SelectData):
        return event.row_value[0] if event.row_value[0] in known else gr.skip()  # not the empty table's note

    def evaluation_charts_of(run_id, evaluation):
        info = next((r for r in manager.runs() if r.run_id == run_id), None)
        report = run_views.evaluation_named(info.dir, evaluation) if info else None
        return evaluation_charts_view(view.charts.charts, report)

    runs.picker.change(
        lambda run_id, evaluation: _run_view(manager, view, run_id, None, evaluation, force=True),
        [runs.picker, view.charts.evaluation],
        view.outputs,
        show_progress="hidden",
        api_name="run_view",
        **PRIVATE,
    )
    runs.table.select(
        picked_row, runs.known_ids, runs.picker, show_progress="hidden", api_name="run_pick_row", **PRIVATE
    )
    view.charts.evaluation.input(
        evaluation_charts_of,
        [runs.picker, view.charts.evaluation],
        list(view.charts.charts),
        api_name="run_evaluation_charts",
        **PRIVATE,
    )


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

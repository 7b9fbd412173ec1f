"""The Train tab: configure a run, queue it, watch it learn, cancel, resume or delete it; queue a label audit
of the form's data (ft.audit, through the same queue); compare two completed runs (serving.compare). One module a
part: form (the New run column and the audit), runs (the run list and the selected run), compare. Thin: the
queue, the commands and the checks live in runner/; what a run shows is built by runner.views.

Runs are background processes that write files; this tab only reads them (a gr.Timer refreshes the
view), so closing the browser tab never pauses a run. Text from the data or from a run's output is only
shown in plain-text components (Textbox, Dataframe with datatype "str"); the one HTML element, the progress
bar, carries numbers only.
"""

from __future__ import annotations

import gradio as gr

from ui.context import Studio
from ui.train.compare import compare_form, wire_compare
from ui.train.export import export_panel, wire_export
from ui.train.form import new_run_form, wire_audit, wire_saved_configs, wire_start
from ui.train.runs import (
    REFRESH_S,
    RunView,
    refresh_on_timer,
    run_charts,
    run_list,
    runs_table,
    selected_run,
    wire_run_actions,
    wire_run_picking,
)

__all__ = ["build"]


def build(studio: Studio) -> None:
    """The Train tab's components and events; call inside ``with gr.Tab("Train"):``.

    The tab reads and commands ``studio.jobs``, whose scheduler app.py runs. The whole layout comes first,
    then the events: the timer and the run list feed several parts. Every event names its endpoint
    (ui/endpoints.py).
    """
    manager = studio.jobs
    table = runs_table(manager)
    with gr.Row():
        with gr.Column(scale=1):
            form = new_run_form(studio, manager)
        with gr.Column(scale=1):
            selected = selected_run()
            export = export_panel()
    charts = run_charts()
    compare = compare_form()
    known_ids = gr.State([])
    version = gr.State(None)
    timer = gr.Timer(REFRESH_S)
    runs = run_list(manager, table, selected.picker, known_ids)
    view = RunView(selected.progress_bar, selected.details, charts, version)

    refresh_on_timer(manager, timer, runs, view)
    wire_saved_configs(manager, form)
    wire_audit(studio, manager, form, runs)
    wire_compare(studio, manager, compare)
    wire_start(studio, manager, form, runs)
    wire_run_picking(manager, runs, view)
    wire_run_actions(manager, runs, selected)
    wire_export(studio, manager, selected.picker, export)

"""The Train tab: configure a run, queue it, watch it learn, cancel, resume or delete it; queue a label audit
of the form's data (ft.audit, through the same queue); compare two completed runs (ft.compare). Thin: the
queue, the commands and the checks live in ft.jobs; what a run shows is built by ft.run_views.

Runs are background processes that write files; this tab only reads them (a gr.Timer refreshes the
view), so closing the browser tab never pauses a run. Text from the data or from a run's output is only
shown in plain-text components (Textbox, Dataframe with datatype "str"); the one HTML element, the progress
bar, carries numbers only.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from ft import run_views
from ft.audit import AuditOptions
from ft.jobs import (ROOT, FormField, JobError, JobManager, config_from_form, form_fields, form_values, log_tail,
                     shell_command, wandb_mode)
from ft.train import ConfigError, TrainConfig
from ui.context import Studio

REFRESH_S = 2.0
PREDICTION_WIDTHS = ["40%", "8%", "13%", "13%", "13%", "13%"]
TOP_SECTION = "Run"


def _data_choices(studio: Studio) -> list[tuple[str, str]]:
    """Curation snapshots (newest first), then the default dataset when it is on this machine."""
    choices = []
    for snapshot in studio.store.list_snapshots():
        rows = sum(split["rows"] for split in snapshot.manifest["splits"].values())
        choices.append((f"snapshot {snapshot.id} ({rows} rows, {snapshot.manifest['n_changes']} labels changed)",
                        str(snapshot.path)))
    default = TrainConfig.data
    if Path(default).exists():
        choices.append((default, default))
    return choices


def _field_input(field: FormField, studio: Studio):
    """The component for one config field, its default filled in and its help shown under it."""
    common = {"label": field.name, "info": field.help}
    if field.name == "data":
        data = gr.Dropdown(_data_choices(studio), value=field.default, allow_custom_value=True, **common)
        data.focus(lambda: gr.Dropdown(choices=_data_choices(studio)), None, data, show_progress="hidden")
        return data
    if field.name == "tracker":
        common["info"] = f"{field.help}. wandb here runs {wandb_mode()}."
    if field.choices:
        return gr.Dropdown(list(field.choices), value=field.default, allow_custom_value=field.open_choices, **common)
    if field.kind == "bool":
        return gr.Checkbox(value=field.default, **common)
    if field.kind in ("int", "float") and field.optional:  # a Number cannot be left empty: it sends 0
        return gr.Textbox(value="" if field.default is None else str(field.default),
                          placeholder="empty = none", **common)
    if field.kind in ("int", "float"):
        return gr.Number(value=field.default, precision=0 if field.kind == "int" else None, **common)
    if field.kind == "list":
        return gr.Textbox(value=", ".join(field.default), **common)
    return gr.Textbox(value=field.default or "", **common)


CPU_NOTE = ("\n\nNo GPU here: the `tiny` preset trains end to end on the CPU; real QLoRA training of "
            "Qwen2.5-1.5B needs a GPU (on Hugging Face, a GPU Space).")


def _saved_configs(manager: JobManager) -> list[tuple[str, str]]:
    """The project's example configs, then the config of every run, newest first."""
    examples = [(f"configs/{p.name}", str(p)) for p in sorted((ROOT / "configs").glob("*.yaml"))]
    return examples + [(f"run {r.run_id}", str(r.dir.config)) for r in manager.runs() if r.dir.config.exists()]


def _progress_html(progress: run_views.Progress) -> str:
    return (f'<div><progress value="{progress.fraction:.4f}" max="1" style="width:100%"></progress>'
            f"<div>{html.escape(progress.text)}</div></div>")


def build(studio: Studio) -> JobManager:
    """The Train tab's components and events; call inside ``with gr.Tab("Train"):``.

    Starts the job scheduler for ``studio.runs_dir`` (it launches only if no other app holds the lock).
    """
    manager = JobManager(studio.runs_dir)
    manager.start()
    fields = form_fields()
    gpus = f"{manager.gpus} GPU(s)" if manager.gpus else "CPU"

    gr.Markdown(f"### Runs\nRuns wait in a queue and train one at a time on this machine ({gpus}); "
                "they go on when the page is closed." + ("" if manager.gpus else CPU_NOTE))
    runs_table = gr.Dataframe(lambda: run_views.runs_frame(manager.runs()), datatype="str", interactive=False,
                              wrap=True, max_height=320, elem_id="train-runs")
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("### New run")
            with gr.Row(equal_height=True):
                saved = gr.Dropdown(_saved_configs(manager), label="Start from a saved config (optional)",
                                    scale=3, elem_id="train-saved-config")
                load_btn = gr.Button("Load", size="sm", scale=1, elem_id="train-load-config")
            form = [(f, _field_input(f, studio)) for f in fields if f.section == TOP_SECTION]
            for section in dict.fromkeys(f.section for f in fields if f.section != TOP_SECTION):
                with gr.Accordion(f"{section} settings", open=False):
                    form += [(f, _field_input(f, studio)) for f in fields if f.section == section]
            names = [f.name for f, _ in form]
            inputs = [component for _, component in form]
            with gr.Row():
                show_btn = gr.Button("Show command")
                start_btn = gr.Button("Start run", variant="primary", elem_id="train-start")
            with gr.Accordion("Label audit", open=False, elem_id="train-audit"):
                gr.Markdown("Rank the examples of this form's data whose label a detector doubts: K adapters, "
                            "each trained on the other folds, score the rows they never saw (about one run's "
                            "cost for K=2). The suspects are reviewed in Curate, queue 'suspects'.")
                with gr.Row():
                    audit_folds = gr.Number(value=AuditOptions.folds, precision=0, minimum=2, label="folds (K)",
                                            elem_id="train-audit-folds")
                    audit_seed = gr.Textbox(value="", label="seed (empty = the config's)",
                                            elem_id="train-audit-seed")
                audit_run = gr.Dropdown([], value=None, label="In-sample (biased, fast): score with this completed "
                                        "run instead (optional)", elem_id="train-audit-run")
                audit_btn = gr.Button("Start label audit", variant="primary", elem_id="train-audit-start")
            command_box = gr.Textbox(label="Command", interactive=False, lines=3, elem_id="train-command")
            planned_id = gr.State(None)

        with gr.Column(scale=1):
            gr.Markdown("### Selected run")
            run_picker = gr.Dropdown(label="Run (or click a row of the table)", choices=[],
                                     allow_custom_value=True, elem_id="train-run-picker")
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

    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y=run_views.CURVE_COLUMNS["loss"], title="Training loss", height=260,
                                elem_id="train-loss")
        lr_plot = gr.LinePlot(x="step", y=run_views.CURVE_COLUMNS["learning_rate"], title="Learning rate",
                              height=260, elem_id="train-lr")
    evaluations = gr.Dataframe(label="Validation sample, per prediction table", datatype="str",
                               interactive=False, elem_id="train-evaluations")
    test_report = gr.Dataframe(label="Test split, before and after (eval.json)", datatype="str",
                               interactive=False, elem_id="train-test")
    predictions = gr.Dataframe(label="Predictions: train start (before) beside the latest table (after)",
                               datatype="str", interactive=False, wrap=True, max_height=500, latex_delimiters=[],
                               column_widths=PREDICTION_WIDTHS, elem_id="train-predictions")
    log_box = gr.Textbox(label="Log (last lines)", interactive=False, lines=12, max_lines=30, autoscroll=True,
                         elem_id="train-log")
    with gr.Accordion("Compare runs", open=False, elem_id="train-compare"):
        gr.Markdown("Two completed runs on the same texts: B's test split by default (typically A on the "
                    "original labels, B on a curated snapshot).")
        with gr.Row():
            compare_a = gr.Dropdown([], label="Run A", elem_id="train-compare-a")
            compare_b = gr.Dropdown([], label="Run B", elem_id="train-compare-b")
            compare_rows = gr.Number(value=200, precision=0, minimum=1, label="test rows scored (empty = all)")
            compare_btn = gr.Button("Compare", elem_id="train-compare-start")
        compare_summary = gr.Textbox(label="Summary", interactive=False, lines=3, elem_id="train-compare-summary")
        with gr.Row():
            compare_eval = gr.Dataframe(label="Test metrics from each run's eval.json (after)", datatype="str",
                                        interactive=False, elem_id="train-compare-eval")
            compare_same = gr.Dataframe(label="Both adapters on the same texts", datatype="str", interactive=False,
                                        elem_id="train-compare-same")
        compare_verdicts = gr.Dataframe(label="Examples whose verdict changed", datatype="str", interactive=False,
                                        wrap=True, max_height=400, latex_delimiters=[],
                                        elem_id="train-compare-verdicts")
    known_ids = gr.State([])
    panel_version = gr.State(None)
    timer = gr.Timer(REFRESH_S)

    panel = [progress_bar, details, loss_plot, lr_plot, evaluations, test_report, predictions, log_box]

    def form_config(values) -> TrainConfig:
        config = config_from_form(dict(zip(names, values)), manager.runs_dir)
        for name in ("data", "model", "tokenizer"):
            if getattr(config, name):
                setattr(config, name, studio.checked_reference(getattr(config, name)))
        return config

    def load_config(path):
        if not path:
            raise gr.Error("Pick a saved config first.")
        try:
            values = form_values(TrainConfig.from_yaml(path))
        except ConfigError as error:
            raise gr.Error(str(error)) from None
        return [values[name] for name in names]

    def show_command(planned, *values):
        try:
            config = form_config(values)
        except ConfigError as error:
            return planned, f"Refused: {error}"
        run_id = planned if planned and not manager.run_dir(planned).path.exists() else manager.new_run_id(config)
        return run_id, shell_command(manager.command(run_id))

    def start(request: gr.Request, planned, known, *values):
        studio.require_admin(request, "start runs")
        try:
            run_id = manager.submit(form_config(values), planned)
        except ConfigError as error:
            return None, f"Refused: {error}", gr.skip(), gr.skip(), gr.skip()
        return None, f"Queued {run_id}:\n{shell_command(manager.command(run_id))}", *table(run_id, known)

    def start_audit(request: gr.Request, known, folds, seed, in_sample, *values):
        studio.require_admin(request, "start audits")
        seed = (seed or "").strip()
        if seed and not seed.lstrip("-").isdigit():
            return f"Refused: seed must be a whole number or empty, got {seed!r}", gr.skip(), gr.skip(), gr.skip()
        try:
            options = AuditOptions(folds=int(folds) if folds is not None else AuditOptions.folds,
                                   seed=int(seed) if seed else None, in_sample_run=in_sample or None)
            run_id = manager.submit_audit(form_config(values), options)
        except ConfigError as error:
            return f"Refused: {error}", gr.skip(), gr.skip(), gr.skip()
        return f"Queued audit {run_id}:\n{shell_command(manager.command(run_id))}", *table(run_id, known)

    def completed_choices():
        ids = run_views.completed_runs(manager.runs())
        return gr.Dropdown(choices=ids)

    def compare(run_a, run_b, max_rows):
        from ft.compare import compare_runs, summary_text

        if not run_a or not run_b:
            raise gr.Error("Pick two completed runs.")
        try:
            done = compare_runs(manager.run_dir(run_a).path, manager.run_dir(run_b).path,
                                max_rows=int(max_rows) if max_rows else None)
        except Exception as error:  # a missing adapter, unreadable data...: all shown the same way
            raise gr.Error(f"Cannot compare: {type(error).__name__}: {error}") from None
        frames = (done.eval_metrics, done.same_text_metrics, done.verdicts)
        return summary_text(done), *(run_views.text_frame(f) for f in frames)

    def table(selected, known):
        runs = manager.runs()
        ids = [r.run_id for r in runs]
        chosen = selected if selected in ids else (ids[0] if ids else None)
        picker = gr.Dropdown(choices=ids, value=chosen) if ids != known or chosen != selected else gr.skip()
        return run_views.runs_frame(runs), picker, ids

    def show_run(run_id, version, force=False):
        """The selected run's panel; heavy parts are skipped while its files are unchanged."""
        try:
            info = manager.get(run_id) if run_id else None
        except JobError:  # deleted meanwhile
            info = None
        if info is None:
            return ["", "", None, None, None, None, None, "", None]
        now_version = run_views.files_version(info)
        head = [_progress_html(run_views.progress(info)),
                run_views.details_text(info, shell_command(info.job.get("command") or manager.command(run_id)))]
        if now_version == version and not force:
            return head + [gr.skip()] * (len(panel) - len(head)) + [version]
        return head + [run_views.curve_frame(info, "loss"), run_views.curve_frame(info, "learning_rate"),
                       run_views.evaluations_frame(info), run_views.test_frame(info),
                       run_views.predictions_frame(info), log_tail(info), now_version]

    def tick(selected, known, version):
        return [*table(selected, known), *show_run(selected, version)]

    def picked_row(event: gr.SelectData):
        return event.row_value[0]

    def act(action, run_id, request: gr.Request | None):
        studio.require_admin(request, f"{action.__name__} runs")
        if not run_id:
            return "Pick a run first."
        try:
            return action(run_id)
        except JobError as error:
            return str(error)

    refresh_outputs = [runs_table, run_picker, known_ids, *panel, panel_version]
    timer.tick(tick, [run_picker, known_ids, panel_version], refresh_outputs, show_progress="hidden")
    saved.focus(lambda: gr.Dropdown(choices=_saved_configs(manager)), None, saved, show_progress="hidden")
    load_btn.click(load_config, saved, inputs)
    audit_btn.click(start_audit, [known_ids, audit_folds, audit_seed, audit_run, *inputs],
                    [command_box, runs_table, run_picker, known_ids])
    for picker in (audit_run, compare_a, compare_b):
        picker.focus(completed_choices, None, picker, show_progress="hidden")
    compare_btn.click(compare, [compare_a, compare_b, compare_rows],
                      [compare_summary, compare_eval, compare_same, compare_verdicts])
    show_btn.click(show_command, [planned_id, *inputs], [planned_id, command_box])
    start_btn.click(start, [planned_id, known_ids, *inputs],
                    [planned_id, command_box, runs_table, run_picker, known_ids])
    run_picker.change(lambda run_id: show_run(run_id, None, force=True), run_picker, [*panel, panel_version],
                      show_progress="hidden")
    runs_table.select(picked_row, None, run_picker, show_progress="hidden")
    def cancel(run_id, request: gr.Request):
        return act(manager.cancel, run_id, request)

    def resume(run_id, request: gr.Request):
        return act(manager.resume, run_id, request)

    def delete(run_id, request: gr.Request):
        return act(manager.delete, run_id, request), gr.Row(visible=False)

    cancel_btn.click(cancel, run_picker, action_box)
    resume_btn.click(resume, run_picker, action_box)
    delete_btn.click(lambda: gr.Row(visible=True), None, confirm_row)
    keep_btn.click(lambda: gr.Row(visible=False), None, confirm_row)
    confirm_btn.click(delete, run_picker,
                      [action_box, confirm_row]).then(table, [run_picker, known_ids],
                                                      [runs_table, run_picker, known_ids])
    return manager

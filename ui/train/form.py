"""The Train tab's New run column: the config form (from runner.forms.form_fields), saved configs to start from,
the command it runs, and the label audit of the form's data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ft.config import AuditOptions, ConfigError, TrainConfig, wandb_mode
from ft.machine import capabilities, precision_note
from ft.paths import ROOT
from runner.commands import shell_command
from runner.forms import FormField, config_from_form, form_fields, form_values, machine_recipe
from runner.queue import JobManager
from ui.context import Studio, page_error
from ui.endpoints import PRIVATE
from ui.train.runs import RunList, offer_completed_runs

TOP_SECTION = "Run"


def _data_choices(studio: Studio) -> list[tuple[str, str]]:
    """Curation snapshots (newest first), then the default dataset when it is on this machine."""
    choices = []
    for snapshot in studio.store.list_snapshots():
        rows = sum(split["rows"] for split in snapshot.manifest["splits"].values())
        choices.append(
            (
                f"snapshot {snapshot.id} ({rows} rows, {snapshot.manifest['n_changes']} labels changed)",
                str(snapshot.path),
            )
        )
    default = TrainConfig.data
    if Path(default).exists():
        choices.append((default, default))
    return choices


def _field_input(field: FormField, value, studio: Studio):
    """The component for one config field, holding ``value`` (as ``form_values`` gives it), its help under it."""
    common = {"label": field.name, "info": field.help}
    if field.name == "data":
        data = gr.Dropdown(_data_choices(studio), value=value, allow_custom_value=True, **common)
        data.focus(
            lambda: gr.Dropdown(choices=_data_choices(studio)),
            None,
            data,
            show_progress="hidden",
            api_name="data_choices",
            **PRIVATE,
        )
        return data
    if field.name == "tracker":
        common["info"] = f"{field.help}. wandb here runs {wandb_mode()}."
    if field.name == "precision":
        common["info"] = f"{field.help}. This machine: {capabilities().describe()}."
    if field.choices:
        return gr.Dropdown(list(field.choices), value=value, allow_custom_value=field.open_choices, **common)
    if field.kind == "bool":
        return gr.Checkbox(value=value, **common)
    if field.kind in ("int", "float") and field.optional:  # a Number cannot be left empty: it sends 0
        return gr.Textbox(value="" if value is None else str(value), placeholder="empty = none", **common)
    if field.kind in ("int", "float"):
        return gr.Number(value=value, precision=0 if field.kind == "int" else None, **common)
    return gr.Textbox(value=value or "", **common)


def _saved_configs(manager: JobManager) -> list[tuple[str, str]]:
    """The project's example configs, then the config of every run, newest first."""
    examples = [(f"configs/{p.name}", str(p)) for p in sorted((ROOT / "configs").glob("*.yaml"))]
    return examples + [(f"run {r.run_id}", str(r.dir.config)) for r in manager.runs() if r.dir.config.exists()]


@dataclass(frozen=True)
class AuditForm:
    folds: gr.Number
    seed: gr.Textbox
    in_sample_run: gr.Dropdown
    start_btn: gr.Button


@dataclass(frozen=True)
class NewRunForm:
    saved: gr.Dropdown
    load_btn: gr.Button
    fields: dict[str, gr.components.Component]
    """The config fields' inputs by field name."""
    show_btn: gr.Button
    start_btn: gr.Button
    audit: AuditForm
    command_box: gr.Textbox
    planned_id: gr.State
    """The run id whose command Show command printed, so that Start run starts that very command."""

    @property
    def inputs(self) -> list:
        """The config fields' inputs, in ``fields``' order (so a handler receives their values in that order)."""
        return list(self.fields.values())


def _config_inputs(studio: Studio) -> dict[str, gr.components.Component]:
    """Each field's input by name: the Run section's fields, then each other section in a closed accordion.
    They start on this machine's recipe, the config the saved-config box shows."""
    fields = form_fields()
    values = form_values(TrainConfig.from_yaml(machine_recipe()))
    form = {f.name: _field_input(f, values[f.name], studio) for f in fields if f.section == TOP_SECTION}
    for section in dict.fromkeys(f.section for f in fields if f.section != TOP_SECTION):
        with gr.Accordion(f"{section} settings", open=False):
            form |= {f.name: _field_input(f, values[f.name], studio) for f in fields if f.section == section}
    return form


def _audit_form() -> AuditForm:
    with gr.Accordion("Label audit", open=False, elem_id="train-audit"):
        gr.Markdown(
            "Rank the examples of this form's data whose label a detector doubts: K adapters, "
            "each trained on the other folds, score the rows they never saw (about one run's "
            "cost for K=2). The suspects are reviewed in Curate, queue 'suspects'."
        )
        with gr.Row():
            folds = gr.Number(
                value=AuditOptions.folds, precision=0, minimum=2, label="folds (K)", elem_id="train-audit-folds"
            )
            seed = gr.Textbox(value="", label="seed (empty = the config's)", elem_id="train-audit-seed")
        in_sample_run = gr.Dropdown(
            [],
            value=None,
            label="In-sample (biased, fast): score with this completed run instead (optional)",
            elem_id="train-audit-run",
        )
        start_btn = gr.Button("Start label audit", variant="primary", elem_id="train-audit-start")
    return AuditForm(folds, seed, in_sample_run, start_btn)


def new_run_form(studio: Studio, manager: JobManager) -> NewRunForm:
    gr.Markdown("### New run")
    with gr.Row(equal_height=True):
        saved = gr.Dropdown(
            _saved_configs(manager),
            value=str(machine_recipe()),
            scale=3,
            label="Start from a saved config (the form holds this machine's recipe)",
            elem_id="train-saved-config",
        )
        load_btn = gr.Button("Load", size="sm", scale=1, elem_id="train-load-config")
    fields = _config_inputs(studio)
    with gr.Row():
        show_btn = gr.Button("Show command")
        start_btn = gr.Button("Start run", variant="primary", elem_id="train-start")
    audit = _audit_form()
    command_box = gr.Textbox(label="Command", interactive=False, lines=3, elem_id="train-command")
    planned_id = gr.State(None)
    return NewRunForm(saved, load_btn, fields, show_btn, start_btn, audit, command_box, planned_id)


def _form_config(studio: Studio, manager: JobManager, form: NewRunForm, values) -> TrainConfig:
    """The form's values as a config, its typed paths checked first (Studio.checked_config_paths)."""
    return config_from_form(studio.checked_config_paths(dict(zip(form.fields, values))), manager.runs_dir)


def wire_saved_configs(manager: JobManager, form: NewRunForm) -> None:
    """The Load button fills the form from a saved config (the list is reread on focus)."""

    def load_config(path):
        if not path:
            raise page_error("Pick a saved config first.")
        if path not in {saved for _, saved in _saved_configs(manager)}:
            raise page_error("Pick one of the saved configs listed.")
        try:
            values = form_values(TrainConfig.from_yaml(path))
        except ConfigError as error:
            raise page_error(str(error)) from None
        return {component: values[name] for name, component in form.fields.items()}

    form.saved.focus(
        lambda: gr.Dropdown(choices=_saved_configs(manager)),
        None,
        form.saved,
        show_progress="hidden",
        api_name="saved_configs",
        **PRIVATE,
    )
    form.load_btn.click(load_config, form.saved, form.inputs, api_name="load_config", **PRIVATE)


def wire_audit(studio: Studio, manager: JobManager, form: NewRunForm, runs: RunList) -> None:
    """The audit's start button queues a label audit of the form's config (admins only)."""
    audit = form.audit

    def start_audit(known, folds, seed, in_sample, *values):
        seed = (seed or "").strip()
        if seed and not seed.lstrip("-").isdigit():
            return {form.command_box: f"Refused: seed must be a whole number or empty, got {seed!r}"}
        try:
            options = AuditOptions(
                folds=int(folds) if folds is not None else AuditOptions.folds,
                seed=int(seed) if seed else None,
                in_sample_run=in_sample or None,
            )
            run_id = manager.submit_audit(_form_config(studio, manager, form, values), options)
        except ConfigError as error:
            return {form.command_box: f"Refused: {error}"}
        return {
            form.command_box: f"Queued audit {run_id}:\n{shell_command(manager.command(run_id))}",
            **runs.refresh.fn(run_id, known),
        }

    audit.start_btn.click(
        start_audit,
        [runs.known_ids, audit.folds, audit.seed, audit.in_sample_run, *form.inputs],
        [form.command_box, *runs.refresh.outputs],
        api_name="start_audit",
        **PRIVATE,
    )
    offer_completed_runs(manager, audit.in_sample_run, "audit_run_choices")


def _with_precision_note(config: TrainConfig, argv: list[str]) -> str:
    """The run's command line, and under it what its precision costs on this machine when that is a bad choice."""
    note = precision_note(config.precision)
    return shell_command(argv) + (f"\nNote: {note}" if note else "")


def wire_start(studio: Studio, manager: JobManager, form: NewRunForm, runs: RunList) -> None:
    """Show command plans a run id and prints its command; Start run queues that run (admins only)."""

    def show_command(planned, *values):
        try:
            config = _form_config(studio, manager, form, values)
        except ConfigError as error:
            return {form.command_box: f"Refused: {error}"}
        run_id = planned if planned and not manager.run_dir(planned).path.exists() else manager.new_run_id(config)
        return {form.planned_id: run_id, form.command_box: _with_precision_note(config, manager.command(run_id))}

    def start(planned, known, *values):
        try:
            config = _form_config(studio, manager, form, values)
            run_id = manager.submit(config, planned)
        except ConfigError as error:
            return {form.planned_id: None, form.command_box: f"Refused: {error}"}
        return {
            form.planned_id: None,
            form.command_box: f"Queued {run_id}:\n{_with_precision_note(config, manager.command(run_id))}",
            **runs.refresh.fn(run_id, known),
        }

    form.show_btn.click(
        show_command,
        [form.planned_id, *form.inputs],
        [form.planned_id, form.command_box],
        api_name="show_command",
        **PRIVATE,
    )
    form.start_btn.click(
        start,
        [form.planned_id, runs.known_ids, *form.inputs],
        [form.planned_id, form.command_box, *runs.refresh.outputs],
        api_name="start",
        **PRIVATE,
    )

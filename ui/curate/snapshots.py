"""The Snapshots sub-tab: freeze the current labels, mixed as chosen, into files to download, train on, or push to
the Hub; delete one no run uses (admins only, after a confirmation)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from curation.filters import source_names
from curation.mix import MixOptions, parse_weights
from curation.snapshots import push_to_hub
from curation.store import DataUsers, LabelStore
from runner.catalog import data_lock, runs_using
from ui.context import Studio, page_error
from ui.curate.common import Shared, frame, reviewer_name
from ui.endpoints import PRIVATE
from ui.widgets import text_table

MIX_HELP = (
    "Every choice is made by each text's hash, never at random: the same store gives the same snapshot, and a "
    "text keeps its split as the store grows. Caps, weights and balance shape the train split only. "
    "A source name picks the sources under it too (`xquad` picks `xquad/question/de`)."
)


def runs_holding_data(runs_dir: Path) -> DataUsers:
    """The runs of ``runs_dir`` as deleting a snapshot asks after them: the runs' data lock held, the ids of the
    runs and audits whose data is the snapshot."""

    @contextmanager
    def users(data: Path) -> Iterator[list[str]]:
        with data_lock(runs_dir):
            yield runs_using(runs_dir, data)

    return users


def mix_line(manifest: dict) -> str:
    """How a snapshot was mixed, in a few words ("" for a snapshot from before mixes)."""
    return MixOptions.from_dict(manifest["mix"]).describe() if "mix" in manifest else ""


def snapshots_view(store: LabelStore, chosen: str | None = None) -> tuple:
    """(the snapshots table, the snapshot picker keeping ``chosen`` if it still exists, the sources a mix can
    hold out)."""
    snapshots = store.list_snapshots()
    table = frame(
        ["snapshot", "created", "by", "rows per split", "sources", "mix", "changes vs original"],
        [
            [
                s.id,
                s.manifest["created_at"],
                s.manifest["created_by"],
                ", ".join(f"{k}: {v['rows']}" for k, v in s.manifest["splits"].items()),
                len(s.manifest.get("sources", {})) or "",
                mix_line(s.manifest),
                s.manifest["n_changes"],
            ]
            for s in snapshots
        ],
    )
    ids = [s.id for s in snapshots]
    return (
        table,
        gr.Dropdown(choices=ids, value=chosen if chosen in ids else (ids[0] if ids else None)),
        gr.Dropdown(choices=source_names(store.sources())),
    )


def _snapshot_summary(manifest: dict) -> str:
    shown = {
        k: manifest[k]
        for k in (
            "id",
            "created_at",
            "created_by",
            "splits",
            "mix",
            "mix_effect",
            "content_hash",
            "n_changes",
            "n_added",
            "excluded_without_label",
            "reviewers",
            "sources",
        )
        if k in manifest
    }
    return json.dumps(shown, indent=1, ensure_ascii=False)


@dataclass(frozen=True)
class MixForm:
    """The mix options of the next snapshot, in the order the create handler takes them."""

    test_share: gr.Slider
    cap_per_source: gr.Number
    balance_labels: gr.Checkbox
    unseen_sources: gr.Dropdown
    weights: gr.Textbox

    @property
    def inputs(self) -> list:
        return [self.test_share, self.cap_per_source, self.balance_labels, self.unseen_sources, self.weights]


def _mix_form() -> MixForm:
    with gr.Accordion("Mix (optional: the defaults keep every labelled row once, in its imported split)", open=False):
        gr.Markdown(MIX_HELP)
        with gr.Row():
            test_share = gr.Slider(
                0,
                0.5,
                value=0,
                step=0.05,
                label="Test share carved from each source's train rows",
                info="Sources imported with their own test split keep it.",
            )
            cap = gr.Number(
                value=0, precision=0, minimum=0, label="Cap: most train rows per top-level source (0: none)"
            )
            balance = gr.Checkbox(label="Balance labels in train")
        with gr.Row():
            unseen = gr.Dropdown(
                choices=[],
                value=[],
                multiselect=True,
                label="Hold out as unseen (unseen.parquet: never trained on)",
            )
            weights = gr.Textbox(
                value="",
                label="Weights: one 'source = weight' a line (0.5 keeps about half, 3 repeats three times)",
                placeholder="xquad = 0.5\ngarak = 3",
                lines=3,
            )
    return MixForm(test_share, cap, balance, unseen, weights)


@dataclass(frozen=True)
class SnapshotPanel:
    tab: gr.Tab
    create_btn: gr.Button
    manifest: gr.Textbox
    files: gr.File
    chosen: gr.Dropdown
    hub_repo: gr.Textbox
    push_btn: gr.Button
    status: gr.Textbox
    delete_btn: gr.Button
    confirm_row: gr.Row
    confirm_text: gr.Markdown
    confirm_btn: gr.Button
    keep_btn: gr.Button
    table: gr.Dataframe
    mix: MixForm

    @property
    def outputs(self) -> list:
        """What snapshots_view fills, in its order."""
        return [self.table, self.chosen, self.mix.unseen_sources]


def _snapshot_panel() -> SnapshotPanel:
    can_push = bool(os.environ.get("HF_TOKEN"))
    with gr.Tab("Snapshots", id="snapshots") as tab:
        gr.Markdown(
            "A snapshot freezes the current labels: one parquet file per split (columns `text`, "
            "`label`, `source`) and `manifest.json` (rows per split, per source and label, the mix). "
            "Training runs name the snapshot they use."
        )
        mix = _mix_form()
        create_btn = gr.Button("Create snapshot", variant="primary")
        manifest = gr.Textbox(label="Manifest", interactive=False, lines=10)
        files = gr.File(label="Download", file_count="multiple", interactive=False)
        with gr.Row():
            chosen = gr.Dropdown(label="Snapshot", choices=[])
            hub_repo = gr.Textbox(label="Hub dataset repo", placeholder="your-name/injection-labels")
            push_btn = gr.Button("Push to the Hub", interactive=can_push)
            delete_btn = gr.Button("Delete…", elem_id="snapshot-delete")
        status = gr.Textbox(
            label="Snapshot status", interactive=False, value="" if can_push else "Set HF_TOKEN to push to the Hub."
        )
        with gr.Row(visible=False) as confirm_row:
            confirm_text = gr.Markdown()
            confirm_btn = gr.Button("Yes, delete", variant="stop", size="sm", elem_id="snapshot-delete-confirm")
            keep_btn = gr.Button("Keep it", size="sm")
        table = text_table(label="Snapshots")
    return SnapshotPanel(
        tab,
        create_btn,
        manifest,
        files,
        chosen,
        hub_repo,
        push_btn,
        status,
        delete_btn,
        confirm_row,
        confirm_text,
        confirm_btn,
        keep_btn,
        table,
        mix,
    )


def _view(store: LabelStore, panel: SnapshotPanel, chosen: str | None = None) -> dict:
    """snapshots_view as {component: value}."""
    return dict(zip(panel.outputs, snapshots_view(store, chosen)))


def _wire_create(studio: Studio, shared: Shared, panel: SnapshotPanel) -> None:
    def snapshot(
        typed: str,
        test_share: float,
        cap_per_source: float | None,
        balance_labels: bool,
        unseen_sources: list[str] | None,
        weights: str,
        request: gr.Request,
    ):
        try:
            options = MixOptions.from_dict(
                {
                    "test_share": test_share,
                    "cap_per_source": cap_per_source,
                    "balance_labels": balance_labels,
                    "unseen_sources": unseen_sources,
                    "weights": parse_weights(weights or ""),
                }
            )
            made = studio.store.create_snapshot(reviewer_name(request, typed) or "anonymous", options)
        except ValueError as error:  # an option out of range, a source the store lacks, no train rows left
            raise page_error(str(error)) from None
        return {
            panel.manifest: _snapshot_summary(made.manifest),
            panel.files: [str(p) for p in made.files],
            **_view(studio.store, panel, made.id),
        }

    panel.create_btn.click(
        snapshot,
        inputs=[shared.reviewer_box, *panel.mix.inputs],
        outputs=[panel.manifest, panel.files, *panel.outputs],
        api_name="snapshot",
    )


def _wire_push(studio: Studio, panel: SnapshotPanel) -> None:
    def push(snapshot_id: str | None, repo_id: str, progress=gr.Progress()):
        chosen = next((s for s in studio.store.list_snapshots() if s.id == snapshot_id), None)
        if chosen is None or not (repo_id or "").strip():
            raise page_error("Choose a snapshot and a Hub dataset repo.")
        progress(0, desc=f"pushing {chosen.id} to {repo_id.strip()}")
        try:
            return {panel.status: f"Pushed {chosen.id} to {push_to_hub(chosen, repo_id.strip())}"}
        except Exception as error:  # network and Hub errors all end up in front of the user the same way
            return {panel.status: f"Push failed: {type(error).__name__}: {error}"}

    panel.push_btn.click(push, inputs=[panel.chosen, panel.hub_repo], outputs=[panel.status], api_name="push_snapshot")


def _wire_delete(studio: Studio, shared: Shared, panel: SnapshotPanel) -> None:
    """Delete…, then a confirmation naming the snapshot; the store refuses while a run or audit names the
    snapshot as its data. Picking another snapshot closes the question."""
    doomed = gr.State(None)

    def ask(snapshot_id: str | None):
        known = snapshot_id in {s.id for s in studio.store.list_snapshots()}
        if not known:
            raise page_error("Choose a snapshot to delete.")
        question = f"Delete snapshot `{snapshot_id}` and its files? This cannot be undone; runs trained on it are kept."
        return {doomed: snapshot_id, panel.confirm_text: question, panel.confirm_row: gr.Row(visible=True)}

    def delete_snapshot(snapshot_id: str | None, typed: str, request: gr.Request):
        if not snapshot_id:
            raise page_error("Choose a snapshot to delete.")
        try:
            studio.store.delete_snapshot(
                snapshot_id, reviewer_name(request, typed) or "anonymous", runs_holding_data(studio.runs_dir)
            )
        except (KeyError, ValueError) as error:  # KeyError: no such snapshot (now); ValueError: a run's data
            raise page_error(str(error.args[0])) from None
        return {
            panel.status: f"Deleted {snapshot_id}.",
            panel.confirm_row: gr.Row(visible=False),
            **_view(studio.store, panel),
        }

    def hide_question():
        return {panel.confirm_row: gr.Row(visible=False)}

    panel.delete_btn.click(
        ask, panel.chosen, [doomed, panel.confirm_text, panel.confirm_row], api_name="delete_snapshot_ask", **PRIVATE
    )
    for closing, name in ((panel.keep_btn.click, "keep"), (panel.chosen.change, "close")):
        closing(hide_question, None, panel.confirm_row, api_name=f"delete_snapshot_{name}", **PRIVATE)
    panel.confirm_btn.click(
        delete_snapshot,
        inputs=[doomed, shared.reviewer_box],
        outputs=[panel.status, panel.confirm_row, *panel.outputs],
        api_name="delete_snapshot",
    )


def snapshots_tab(studio: Studio, shared: Shared) -> list:
    """The Snapshots sub-tab and its events; returns what snapshots_view fills."""
    panel = _snapshot_panel()
    panel.tab.select(
        lambda chosen: _view(studio.store, panel, chosen),
        inputs=[panel.chosen],
        outputs=panel.outputs,
        api_name="snapshots_view",
    )
    _wire_create(studio, shared, panel)
    _wire_push(studio, panel)
    _wire_delete(studio, shared, panel)
    return panel.outputs

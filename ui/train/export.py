"""The selected run's Export and Push to the Hub (admins only: ui/endpoints.py). Thin: ft/export.py does the work.

The adapter zip goes to a folder inside Gradio's cache, so the page serves it as a download and Gradio's cache
sweep removes it; merged weights go to ``<data dir>/exports/<run>-merged/`` and only their path is shown.
Merging loads the base model, so it runs on the detector's thread with no model loaded (``exclusively``), like
Compare runs: the process never holds two models.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ft.export import ExportError, export_adapter_zip, export_merged, merge_note, push
from ft.run_dir import RunDir
from runner.queue import JobError, JobManager
from ui.context import Studio, page_error

ZIP_DIR = Path(gr.utils.get_upload_folder()) / "injection-studio-exports"


@dataclass(frozen=True)
class ExportPanel:
    merged: gr.Checkbox
    export_btn: gr.Button
    download: gr.File
    repo: gr.Textbox
    private: gr.Checkbox
    push_btn: gr.Button
    status: gr.Textbox


def export_panel() -> ExportPanel:
    with gr.Accordion("Export or push the selected run's detector", open=False):
        merged = gr.Checkbox(
            label="Merged weights too (the adapter merged into the full-precision base; loads the base model)",
            value=False,
            elem_id="export-merged",
        )
        export_btn = gr.Button("Export", size="sm", elem_id="export-run")
        download = gr.File(label="Adapter zip", interactive=False, elem_id="export-zip")
        with gr.Row():
            repo = gr.Textbox(label="Hub model repo", placeholder="your-name/injection-detector", scale=3)
            private = gr.Checkbox(label="Private", value=True, scale=1)
            push_btn = gr.Button("Push to the Hub", size="sm", scale=1, interactive=bool(os.environ.get("HF_TOKEN")))
        status = gr.Textbox(
            label="Export status",
            interactive=False,
            elem_id="export-status",
            value="" if os.environ.get("HF_TOKEN") else "Set HF_TOKEN to push to the Hub.",
        )
    return ExportPanel(merged, export_btn, download, repo, private, push_btn, status)


def _finished_run(manager: JobManager, run_id: str | None) -> RunDir:
    """The listed run named ``run_id`` (an id from the browser never becomes a path by itself)."""
    try:
        return manager.get(run_id or "").dir
    except JobError:
        raise page_error("Pick a completed run first.") from None


def _pushed(studio: Studio, merged: bool, push_it: Callable[[], str]) -> str:
    """``push_it()``, on the detector's thread with no model loaded when a merge loads the base."""
    return studio.detector.exclusively(push_it) if merged else push_it()


def wire_export(studio: Studio, manager: JobManager, picker: gr.Dropdown, panel: ExportPanel) -> None:
    def export_run(run_id: str | None, merged: bool, progress=gr.Progress()):
        """The run's adapter zip (a download) and, with ``merged``, the merged folder's path."""
        run = _finished_run(manager, run_id)
        try:
            progress(0, desc="writing the adapter zip")
            archive = export_adapter_zip(run, ZIP_DIR / run.run_id)
            lines = [f"Adapter zip: {archive.name} (download below)."]
            if merged:
                progress(0.2, desc="loading the base model and merging the adapter into it")
                # the merge loads the base: one model in the app at a time
                folder = studio.detector.exclusively(lambda: export_merged(run, studio.data_dir / "exports"))
                lines += [f"Merged weights: {folder.resolve()}", merge_note(run)]
        except ExportError as error:
            raise page_error(error) from None
        except Exception as error:  # a config, tokenizer or model that cannot be read or loaded, a full disk...
            raise page_error(f"Cannot export: {type(error).__name__}: {error}".splitlines()[0]) from None
        return {panel.download: str(archive), panel.status: "\n".join(lines)}

    def push_run(run_id: str | None, repo_id: str, private: bool, merged: bool, progress=gr.Progress()) -> str:
        """Push the adapter (or the merged model) with its model card to a Hub model repo: one commit."""
        run = _finished_run(manager, run_id)
        if not (repo_id or "").strip():
            raise page_error("Type the Hub model repo to push to.")
        progress(0, desc=f"pushing the {'merged model' if merged else 'adapter'} to {repo_id.strip()}")
        try:
            url = _pushed(studio, merged, lambda: push(run, repo_id.strip(), merged=merged, private=private))
        except (ExportError, PermissionError) as error:
            raise page_error(error) from None
        except Exception as error:  # network and Hub errors all end up in front of the user the same way
            return f"Push failed: {type(error).__name__}: {error}"
        return f"Pushed run {run.run_id} ({'merged model' if merged else 'adapter'}) to {url}"

    panel.export_btn.click(
        export_run,
        [picker, panel.merged],
        [panel.download, panel.status],
        api_name="export_run",
        concurrency_limit=1,
        concurrency_id="export",
    )
    panel.push_btn.click(
        push_run,
        [picker, panel.repo, panel.private, panel.merged],
        panel.status,
        api_name="push_run",
        concurrency_limit=1,
        concurrency_id="export",
    )

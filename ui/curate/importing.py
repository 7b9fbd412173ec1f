"""The Import sub-tab: read a dataset (or a folder of sources), check how its raw labels map, then add it to the
store in one transaction."""

from __future__ import annotations

import os
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from curation.demo import demo_only
from curation.labels import BENIGN, INJECTION, guess_label, label_name
from curation.mix import top_source
from curation.sources import DEFAULT_SPLIT, Preview, RawTable, SourceError, prepare, read_source
from curation.store import ImportResult, LabelStore
from ui.context import Studio, page_error
from ui.curate.browse import Browse, store_view
from ui.curate.common import Shared, frame, reviewer_name
from ui.curate.review import Review
from ui.endpoints import PRIVATE

MAPPING_COLUMNS = ["raw label", "rows", "maps to"]
FOLDERS_HELP = (
    "A folder of files named after splits (`train`, `validation`, `test`) is one dataset. Any other folder is a "
    "folder of sources, imported in one step: each file is a source named after the file, a `source` column "
    "(when the file has one) is kept per row, and rows without a `split` column go to the split below "
    f"(default `{DEFAULT_SPLIT}`; a snapshot can carve a test share from every source by text hash)."
)


def read_summary(preview: Preview) -> str:
    """What was read, file by file (with each file's sources when they differ from its name)."""
    lines = [f"Read {preview.source}: {preview.n_rows} rows"]
    if preview.folder_of_sources:
        lines[0] += f", a folder of {len(preview.tables)} sources"
    for table in preview.tables:
        lines.append(f"  {table.file}: {len(table.frame)} {table.unit}s{_sources_named(table)}")
    return "\n".join(lines)


def _sources_named(table: RawTable) -> str:
    """The sources a file's rows get: its name, or (the first few of) those its source column names."""
    names = sorted(set(map(str, table.frame["source"])))
    if names == [table.source]:
        return f" · source {table.source}"
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return f" · {len(names)} sources from its source column: {shown}"


def import_summary(done: ImportResult, counts: dict[str, dict[int, int]]) -> str:
    """What an import added: examples, duplicates, rows per split and label, new examples per top-level source."""
    per_split = ", ".join(f"{s}: {c[BENIGN]} benign / {c[INJECTION]} injection" for s, c in counts.items())
    by_top: dict[str, int] = {}
    for source, added in done.added_by_source.items():
        by_top[top_source(source)] = by_top.get(top_source(source), 0) + added
    per_source = ", ".join(f"{source}: {added}" for source, added in by_top.items())
    return (
        f"Imported {done.source}: {done.added} new examples, {done.already_present} already in the store.\n"
        f"Dropped {done.duplicates} exact duplicate texts within the import "
        f"({done.conflicting_duplicates} of them with a different label; the first was kept).\n{per_split}"
        + (f"\nNew examples per source: {per_source}" if len(by_top) > 1 else "")
    )


@dataclass(frozen=True)
class ImportForm:
    source: gr.Textbox
    upload: gr.File
    text_column: gr.Textbox
    label_column: gr.Textbox
    single_split: gr.Textbox
    preview_btn: gr.Button
    mapping: gr.Dataframe
    import_btn: gr.Button
    import_status: gr.Textbox
    preview: gr.State
    """The dataset read by step 1, waiting for step 2."""


def _import_form() -> ImportForm:
    with gr.Row():
        source = gr.Textbox(
            label="Hugging Face dataset id or a path on the server (a file, or a folder)",
            placeholder="xTRam1/safe-guard-prompt-injection or /path/to/folder",
        )
        upload = gr.File(label="…or upload a parquet, CSV or JSONL file", file_types=[".parquet", ".csv", ".jsonl"])
    with gr.Row():
        text_column = gr.Textbox(value="text", label="Text column")
        label_column = gr.Textbox(value="label", label="Label column")
        single_split = gr.Textbox(
            label="Split of rows without one (a single file, or each file of a folder of sources)",
            placeholder="blank: train, or a single file's name if it is test/validation",
        )
    gr.Markdown(FOLDERS_HELP)
    preview_btn = gr.Button("1. Read and show the label mapping")
    mapping = gr.Dataframe(
        label="Label mapping: edit 'maps to' (injection / benign) where needed",
        headers=MAPPING_COLUMNS,
        datatype="str",
        interactive=True,
        static_columns=[0, 1],
    )
    import_btn = gr.Button("2. Import with this mapping", variant="primary", interactive=False)
    import_status = gr.Textbox(label="Import", interactive=False, lines=6)
    preview = gr.State(None)
    return ImportForm(
        source,
        upload,
        text_column,
        label_column,
        single_split,
        preview_btn,
        mapping,
        import_btn,
        import_status,
        preview,
    )


def _wire_read(studio: Studio, form: ImportForm) -> None:
    """Step 1 reads the source and proposes a label mapping; nothing is written."""

    def read(
        source_text: str, uploaded: str | None, text_col: str, label_col: str, split_name: str, progress=gr.Progress()
    ):
        target = uploaded or (source_text or "").strip()
        if not target:
            raise page_error("Give a dataset id or path, or upload a file.")
        if not uploaded:
            target = studio.checked_reference(target)
        try:
            result = read_source(
                target,
                text_column=text_col.strip(),
                label_column=label_col.strip(),
                split=split_name.strip() or None,
                name=os.path.basename(uploaded) if uploaded else None,
                progress=lambda f, d: progress(f, desc=d),
            )
        except SourceError as error:
            return {
                form.import_status: f"Cannot import:\n{error}",
                form.mapping: frame(MAPPING_COLUMNS, []),
                form.preview: None,
                form.import_btn: gr.Button(interactive=False),
            }
        rows = [
            [value, count, label_name(result.proposed_mapping[value])] for value, count in result.label_counts.items()
        ]
        summary = (
            f"{read_summary(result)}\nCheck the label mapping below, then import (one transaction for every "
            "file). Nothing has been written yet."
        )
        return {
            form.import_status: summary,
            form.mapping: frame(MAPPING_COLUMNS, rows),
            form.preview: result,
            form.import_btn: gr.Button(interactive=True),
        }

    form.preview_btn.click(
        read,
        inputs=[form.source, form.upload, form.text_column, form.label_column, form.single_split],
        outputs=[form.import_status, form.mapping, form.preview, form.import_btn],
        api_name="import_read",
    )


def _wire_import(store: LabelStore, shared: Shared, form: ImportForm, review: Review, browse: Browse) -> None:
    """Step 2 imports with the edited mapping, then refreshes the banner, Browse and the review panel."""

    def write(result, mapping_table: pd.DataFrame, typed: str, request: gr.Request, progress=gr.Progress()):
        if result is None:
            raise page_error("Read a dataset first.")
        chosen = {str(raw): guess_label(str(target)) for raw, _, target in mapping_table.itertuples(index=False)}
        try:
            prepared = prepare(result, chosen, progress=lambda f, d: progress(f, desc=d))
        except SourceError as error:
            return f"Nothing was imported:\n{error}"
        done = store.import_examples(
            prepared, actor=reviewer_name(request, typed) or "import", progress=lambda f, d: progress(f, desc=d)
        )
        return import_summary(done, prepared.counts())

    def after_import():
        return {
            **store_view(store, browse),
            shared.banner: gr.Markdown(visible=demo_only(store)),
            form.import_btn: gr.Button(interactive=False),
        }

    form.import_btn.click(
        write,
        inputs=[form.preview, form.mapping, shared.reviewer_box],
        outputs=[form.import_status],
        api_name="import_write",
    ).then(
        after_import,
        outputs=[*browse.store_outputs, shared.banner, form.import_btn],
        api_name="import_refresh",
        **PRIVATE,
    ).then(*browse.first_page, api_name="browse_after_import", **PRIVATE).then(
        *review.first_item, api_name="review_first_item_after_import", **PRIVATE
    )


def import_tab(studio: Studio, shared: Shared, review: Review, browse: Browse) -> None:
    """The Import sub-tab and its events."""
    with gr.Tab("Import", id="import"):
        form = _import_form()
    _wire_read(studio, form)
    _wire_import(studio.store, shared, form, review, browse)

"""The Browse sub-tab: what the store holds per source, split and label; the examples page by page under
filters; a selected row opens in Review."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import gradio as gr

from curation.filters import ExampleFilter, source_names
from curation.labels import BENIGN, INJECTION, label_name
from curation.store import LabelStore
from ui.context import page_error
from ui.curate.common import Shared, frame
from ui.curate.review import Review, review_view
from ui.endpoints import PRIVATE
from ui.handler import Handler
from ui.widgets import text_table

PAGE_SIZE = 50
LABEL_CHOICES = {"any": None, "injection": INJECTION, "benign": BENIGN}
REVIEWED_CHOICES = {"any": None, "reviewed": True, "unreviewed": False}
ALL_SPLITS = "all"
ALL_SOURCES = "all"
SOURCE_COLUMNS = ["source", "split", "benign", "injection", "no label", "rows"]


def _browse_page(store: LabelStore, panel: BrowsePanel, browse_filter: ExampleFilter, page: int) -> dict:
    """The panel's table, "showing" line and page number for one page; the page number is clamped to what
    exists."""
    result = store.page(browse_filter, max(page, 0), PAGE_SIZE)
    if not result.rows and result.total:
        result = store.page(browse_filter, (result.total - 1) // PAGE_SIZE, PAGE_SIZE)
    page = result.page
    table = frame(
        ["id", "split", "source", "text", "original", "current", "votes", "disagree", "from Detect"],
        [
            [
                e.id,
                e.split,
                e.source,
                e.text,
                label_name(e.original_label),
                label_name(e.current_label),
                e.n_votes,
                "yes" if e.disagree else "",
                "yes" if e.flagged else "",
            ]
            for e in result.rows
        ],
    )
    first = page * PAGE_SIZE + 1 if result.total else 0
    shown = f"Showing {first}–{page * PAGE_SIZE + len(result.rows)} of {result.total} · page {page + 1}"
    return {panel.table: table, panel.shown: shown, panel.page: page}


class Filters(NamedTuple):
    """The filter inputs, in the browse handler's argument order."""

    split: gr.Dropdown
    source: gr.Dropdown
    current: gr.Radio
    original: gr.Radio
    reviewed: gr.Radio
    changed: gr.Checkbox
    disagree: gr.Checkbox
    flagged: gr.Checkbox
    search: gr.Textbox


@dataclass(frozen=True)
class BrowsePanel:
    filters: Filters
    prev_btn: gr.Button
    shown: gr.Markdown
    next_btn: gr.Button
    page: gr.State
    table: gr.Dataframe
    selected_id: gr.State
    full_text: gr.Textbox
    review_this: gr.Button

    @property
    def page_outputs(self) -> list:
        """What _browse_page fills."""
        return [self.table, self.shown, self.page]


@dataclass(frozen=True)
class Browse:
    """What the other sub-tabs need of Browse: what grows with imports (the split and source filters' choices,
    the table of rows per source) and the handler showing the first page under the current filters."""

    split: gr.Dropdown
    source: gr.Dropdown
    sources_table: gr.Dataframe
    first_page: Handler

    @property
    def store_outputs(self) -> list:
        """What store_view fills."""
        return [self.split, self.source, self.sources_table]


def sources_frame(store: LabelStore) -> dict:
    """Rows per source x split, by current label: what the store holds, at a glance."""
    rows: dict[tuple[str, str], list[int]] = {}
    for count in store.source_split_label_counts():
        cells = rows.setdefault((count.source, count.split), [0, 0, 0])
        cells[{BENIGN: 0, INJECTION: 1, None: 2}[count.current_label]] += count.rows
    return frame(SOURCE_COLUMNS, [[*key, *cells, sum(cells)] for key, cells in rows.items()])


def store_view(store: LabelStore, browse: Browse) -> dict:
    """Browse's parts that change with imports, as the store is now."""
    return {
        browse.split: gr.Dropdown(choices=[ALL_SPLITS, *store.splits()]),
        browse.source: gr.Dropdown(choices=[ALL_SOURCES, *source_names(store.sources())]),
        browse.sources_table: sources_frame(store),
    }


def _filters() -> Filters:
    with gr.Row():
        split = gr.Dropdown([ALL_SPLITS], value=ALL_SPLITS, label="Split")
        source = gr.Dropdown(
            [ALL_SOURCES], value=ALL_SOURCES, label="Source (and the sources under it)", filterable=True
        )
        current = gr.Radio(list(LABEL_CHOICES), value="any", label="Current label")
        original = gr.Radio(list(LABEL_CHOICES), value="any", label="Original label")
        reviewed = gr.Radio(list(REVIEWED_CHOICES), value="any", label="Reviewed")
    with gr.Row():
        changed = gr.Checkbox(label="Changed vs original")
        disagree = gr.Checkbox(label="Reviewers disagree")
        flagged = gr.Checkbox(label="Sent from Detect")
        search = gr.Textbox(label="Search (full text)", placeholder="words to find")
    return Filters(split, source, current, original, reviewed, changed, disagree, flagged, search)


def _browse_panel() -> BrowsePanel:
    filters = _filters()
    with gr.Row():
        prev_btn = gr.Button("◀ Previous", size="sm")
        shown = gr.Markdown()
        next_btn = gr.Button("Next ▶", size="sm")
    page = gr.State(0)
    table = text_table(
        wrap=True, max_height=600, column_widths=["6%", "6%", "10%", "47%", "7%", "7%", "5%", "6%", "6%"]
    )
    selected_id = gr.State(None)
    full_text = gr.Textbox(label="Selected text (full, plain)", interactive=False, lines=4, max_lines=24)
    review_this = gr.Button("Review this example")
    return BrowsePanel(filters, prev_btn, shown, next_btn, page, table, selected_id, full_text, review_this)


def _wire_pages(store: LabelStore, shared: Shared, panel: BrowsePanel) -> Handler:
    """A filter change (and the page load) shows the first page and stores the filter for the review queue;
    the arrows page through it. Returns the first-page handler."""

    def browse(
        split: str,
        source: str,
        current: str,
        original: str,
        reviewed: str,
        changed: bool,
        disagree: bool,
        flagged: bool,
        search: str,
    ):  # named, so that the API lists them by name
        chosen = ExampleFilter(
            split=None if split == ALL_SPLITS else split,
            source=None if source in (ALL_SOURCES, None) else source,
            current_label=LABEL_CHOICES[current],
            original_label=LABEL_CHOICES[original],
            reviewed=REVIEWED_CHOICES[reviewed],
            changed=changed,
            disagree=disagree,
            flagged=flagged,
            search=search or "",
        )
        return {**_browse_page(store, panel, chosen, 0), shared.browse_filter: chosen}

    first_page = Handler(browse, list(panel.filters), [*panel.page_outputs, shared.browse_filter])
    gr.on(
        None,
        first_page.fn,
        inputs=first_page.inputs,
        outputs=first_page.outputs,
        trigger_mode="always_last",
        api_name="browse",
    )
    panel.prev_btn.click(
        lambda f, p: _browse_page(store, panel, f, p - 1),
        [shared.browse_filter, panel.page],
        panel.page_outputs,
        api_name="browse_previous",
    )
    panel.next_btn.click(
        lambda f, p: _browse_page(store, panel, f, p + 1),
        [shared.browse_filter, panel.page],
        panel.page_outputs,
        api_name="browse_next",
    )
    return first_page


def _wire_selection(store: LabelStore, panel: BrowsePanel, review: Review, tabs: gr.Tabs) -> None:
    """A clicked row shows its full text; "Review this example" opens it in the Review sub-tab."""

    def select_row(evt: gr.SelectData):
        example = store.example(int(evt.row_value[0]))
        if example is None:
            return {panel.selected_id: None, panel.full_text: ""}
        return {panel.selected_id: example.id, panel.full_text: example.text}

    def review_selected(example_id: int | None):
        if example_id is None:
            raise page_error("Select a row in the table first.")
        return {
            **dict(zip(review.outputs, review_view(store, example_id), strict=True)),
            tabs: gr.Tabs(selected="review"),
        }

    panel.table.select(
        select_row, outputs=[panel.selected_id, panel.full_text], api_name="browse_select_row", **PRIVATE
    )
    panel.review_this.click(
        review_selected,
        inputs=[panel.selected_id],
        outputs=[*review.outputs, tabs],
        api_name="browse_open_in_review",
        **PRIVATE,
    )


def browse_tab(store: LabelStore, shared: Shared, review: Review, tabs: gr.Tabs) -> Browse:
    """The Browse sub-tab and its events; ``tabs`` is the Curate sub-tabs, switched to Review on request."""
    with gr.Tab("Browse", id="browse"):
        with gr.Accordion("Rows per source, split and current label", open=False):
            sources_table = text_table(max_height=400, elem_id="sources-table")
        panel = _browse_panel()
    first_page = _wire_pages(store, shared, panel)
    _wire_selection(store, panel, review, tabs)
    return Browse(panel.filters.split, panel.filters.source, sources_table, first_page)

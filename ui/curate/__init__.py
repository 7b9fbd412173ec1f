"""The Curate tab: review, browse, import, reviewers, snapshots, one module a sub-tab. Thin: every decision
lives in curation/.

The review panel's queues are the store's (unreviewed, filtered set, disagreements) plus "suspects": a
completed label audit's examples in rank order (curation.suspects), voted on with the same buttons.

Dataset text is only ever shown in plain-text components (Textbox, Dataframe with datatype "str",
which Gradio escapes); Markdown here carries numbers and fixed words only.
"""

from __future__ import annotations

import gradio as gr

from curation.demo import demo_only
from curation.filters import ExampleFilter
from curation.store import LabelStore
from ui.context import Studio, reviewer_name_state
from ui.curate.browse import Browse, browse_tab, store_view
from ui.curate.common import Shared
from ui.curate.importing import import_tab
from ui.curate.review import KEYBOARD_HEAD, review_tab
from ui.curate.reviewers import ReviewersPanel, reviewers_tab, reviewers_view
from ui.curate.snapshots import snapshots_tab, snapshots_view
from ui.endpoints import PRIVATE

__all__ = ["KEYBOARD_HEAD", "build"]


def _top_of_tab() -> Shared:
    """The demo banner, the reviewer's name and counts, and the state the sub-tabs share."""
    banner = gr.Markdown(
        "**Demo dataset in use.** This small dataset ships with the app so that it works "
        "offline on a fresh machine. Import your own data in *Import*, or start the app with "
        "`--dataset PATH_OR_HUB_ID` on a fresh `--data-dir`.",
        visible=False,
    )
    saved_name = reviewer_name_state()
    current_id = gr.State(None)
    browse_filter = gr.State(ExampleFilter())
    with gr.Row():
        reviewer_box = gr.Textbox(label="Reviewer", placeholder="Type your name once", max_length=100, scale=1)
        counts = gr.Markdown()
    return Shared(banner, saved_name, current_id, browse_filter, reviewer_box, counts)


def _overview_on_load(
    store: LabelStore, shared: Shared, browse: Browse, reviewers: ReviewersPanel, snapshots: list
) -> None:
    """On page load: the banner, the split and source choices, the rows per source, the Reviewers and Snapshots
    sub-tabs as they are now."""

    def overview():
        return {
            shared.banner: gr.Markdown(visible=demo_only(store)),
            **store_view(store, browse),
            **reviewers_view(store, reviewers),
            **dict(zip(snapshots, snapshots_view(store), strict=True)),
        }

    gr.on(
        None,
        overview,
        outputs=[shared.banner, *browse.store_outputs, *reviewers.outputs, *snapshots],
        api_name="overview",
        **PRIVATE,
    )


def build(studio: Studio) -> None:
    """The Curate tab's components and events; call inside ``with gr.Tab("Curate"):``.

    Each sub-tab wires its own events as it is built; every event names its endpoint (ui/endpoints.py).
    """
    shared = _top_of_tab()
    with gr.Tabs() as tabs:
        review = review_tab(studio, shared)
        browse = browse_tab(studio.store, shared, review, tabs)
        import_tab(studio, shared, review, browse)
        reviewers = reviewers_tab(studio.store)
        snapshots = snapshots_tab(studio, shared)
    _overview_on_load(studio.store, shared, browse, reviewers, snapshots)

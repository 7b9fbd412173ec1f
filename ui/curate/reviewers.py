"""The Reviewers sub-tab: votes per reviewer, how often reviewers agree, the recent audit log."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from curation.labels import label_name
from curation.store import LabelStore
from ui.curate.common import frame, when
from ui.widgets import text_table

AGREEMENT_HELP = (
    "Agreement counts each reviewer's latest injection/benign vote per item (unsure left out). "
    "Percent agreement: share of items with two or more reviewers on which all agree. "
    "Cohen's kappa per pair of reviewers over the items both labelled: "
    "(p_o − p_e) / (1 − p_e), p_o the share they agree on, p_e = pA·pB + (1−pA)(1−pB) "
    "from each one's share of injection labels; the overall figure is the mean of the "
    "pairs' kappas weighted by shared items."
)


@dataclass(frozen=True)
class ReviewersPanel:
    counts: gr.Dataframe
    agreement: gr.Markdown
    pairs: gr.Dataframe
    recent: gr.Dataframe

    @property
    def outputs(self) -> list:
        return [self.counts, self.agreement, self.pairs, self.recent]


def reviewers_view(store: LabelStore, panel: ReviewersPanel) -> dict:
    """The panel as the store is now: votes per reviewer, agreement line, pairs of reviewers, recent changes."""
    counts = frame(
        ["reviewer", "votes", "injection", "benign", "unsure", "adjudications", "items"],
        [
            [c.reviewer, c.votes, c.injection, c.benign, c.unsure, c.adjudications, c.items]
            for c in store.reviewer_counts()
        ],
    )
    summary = store.agreement()
    if summary.n_items:
        kappa = "undefined" if summary.kappa is None else f"{summary.kappa:.3f}"
        text = (
            f"**{summary.n_items}** items with two or more reviewers · percent agreement "
            f"**{summary.percent_agreement:.1%}** · Cohen's kappa (weighted mean over pairs) **{kappa}**"
        )
    else:
        text = "No item has votes from two reviewers yet."
    pairs = frame(
        ["reviewer A", "reviewer B", "shared items", "agreement", "kappa"],
        [
            [
                p.reviewer_a,
                p.reviewer_b,
                p.n_items,
                f"{p.agreement:.1%}",
                "undefined" if p.kappa is None else f"{p.kappa:.3f}",
            ]
            for p in summary.pairs
        ],
    )
    events = frame(
        ["when", "who", "what", "example", "label before", "label after"],
        [
            [when(e.at), e.actor, e.action, e.example_id or "", label_name(e.from_label), label_name(e.to_label)]
            for e in store.events(50)
        ],
    )
    return {panel.counts: counts, panel.agreement: text, panel.pairs: pairs, panel.recent: events}


def reviewers_tab(store: LabelStore) -> ReviewersPanel:
    """The Reviewers sub-tab, refreshed when opened or on its button."""
    with gr.Tab("Reviewers", id="reviewers") as tab:
        refresh = gr.Button("Refresh", size="sm")
        counts = text_table(label="Votes per reviewer")
        agreement = gr.Markdown()
        gr.Markdown(AGREEMENT_HELP)
        pairs = text_table(label="Pairs of reviewers")
        recent = text_table(label="Recent changes (audit log)", wrap=True)
    panel = ReviewersPanel(counts, agreement, pairs, recent)
    gr.on(
        [refresh.click, tab.select],
        lambda: reviewers_view(store, panel),
        outputs=panel.outputs,
        api_name="reviewers_view",
    )
    return panel

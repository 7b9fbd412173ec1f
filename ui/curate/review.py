"""The Review sub-tab: one example at a time from a queue, voted on with buttons or with the keys of
KEYBOARD_HEAD.

The queues are the store's (unreviewed, filtered set, disagreements) plus "suspects": a completed label
audit's examples in rank order (curation.suspects), voted on with the same buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from curation.filters import ExampleFilter, Queue
from curation.labels import BENIGN, INJECTION, LABEL_RULE, UNSURE, label_name
from curation.store import Example, LabelStore
from curation.suspects import list_audits, next_suspect, read_audit, record_audit_scores, suspects_queue
from access.roles import ADJUDICATE
from ui.context import Studio, page_error
from ui.curate.common import Shared, frame, reviewer, reviewer_name, when
from ui.endpoints import PRIVATE
from ui.handler import Handler

SUSPECTS = "suspects"
"""The review queue walking a label audit's suspects in rank order (beside the store's own queues)."""
TOP_SUSPECTS = 20

KEYBOARD_HEAD = """
<script>
/* Curate shortcuts: a key clicks the visible review button whose id it names; never while typing. */
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  const typing = target && (target.isContentEditable ||
    (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) && !target.readOnly && !target.disabled));
  if (typing) return;
  const ids = {i: "vote-injection", b: "vote-benign", u: "vote-unsure", s: "vote-skip", z: "vote-undo"};
  const button = document.getElementById(ids[event.key.toLowerCase()]);
  if (!button || button.offsetParent === null || button.disabled) return;
  event.preventDefault();
  button.click();
});
</script>
"""


# -- what the panel shows ----------------------------------------------------------------------------------


def _example_info(store: LabelStore, example: Example) -> str:
    lines = [
        f"#{example.id} · split {example.split} · source {example.source}",
        f"Original label: {label_name(example.original_label) or '(none)'} · "
        f"Current label: {label_name(example.current_label) or '(none)'}",
        f"Votes: {example.n_votes} from {example.n_reviewers} reviewer(s)"
        + (" · reviewers disagree" if example.disagree else "")
        + (" · adjudicated" if example.adjudicated else "")
        + (" · sent from Detect" if example.flagged else ""),
    ]
    score = store.latest_score(example.id)
    if score:
        lines.append(f"Detector P(injection): {score.p_injection:.3f} (run {score.run_id}, {when(score.scored_at)})")
    return "\n".join(lines)


def _votes_frame(store: LabelStore, example_id: int | None) -> pd.DataFrame:
    votes = store.votes(example_id) if example_id is not None else []
    return frame(["reviewer", "vote", "note", "when", "adjudication", "status"],
                 [[v.reviewer, label_name(v.label), v.note, when(v.cast_at), "yes" if v.adjudication else "",
                   f"retracted {when(v.retracted_at)}" if v.retracted_at else "counts"] for v in votes])


def _history_frame(store: LabelStore, example_id: int | None) -> pd.DataFrame:
    events = store.history(example_id) if example_id is not None else []
    return frame(["when", "who", "what", "label before", "label after"],
                 [[when(e.at), e.actor, e.action, label_name(e.from_label), label_name(e.to_label)] for e in events])


def review_view(store: LabelStore, example_id: int | None) -> tuple:
    """(example id, text, info, votes, history) for the review panel."""
    example = store.example(example_id) if example_id is not None else None
    if example is None:
        return None, "", "Nothing left in this queue.", _votes_frame(store, None), _history_frame(store, None)
    return (example.id, example.text, _example_info(store, example), _votes_frame(store, example.id),
            _history_frame(store, example.id))


def _counts(store: LabelStore, name: str) -> str:
    totals = store.totals()
    mine = next((c.votes for c in store.reviewer_counts() if c.reviewer == name), 0)
    return (f"**{totals.examples}** examples · **{totals.reviewed}** reviewed · "
            f"**{totals.changed}** changed vs original · **{totals.open_disagreements}** open disagreements · "
            f"your votes: **{mine}**")


# -- the suspects queue --------------------------------------------------------------------------------


def _audit_choices(studio: Studio) -> list[tuple[str, str]]:
    """Completed label audits, newest first, the in-sample ones marked biased."""
    choices = []
    for path in list_audits(studio.runs_dir):
        try:
            audit = read_audit(path)
        except (OSError, ValueError):
            continue
        choices.append((f"{audit.id} · {audit.method}" + (" · BIASED" if audit.biased else ""), str(path)))
    return choices


def _load_audit(studio: Studio, path: str | None):
    """The audit at ``path``, which must be a run folder of this app (a page may send any path); read_audit
    refuses one that is not a completed audit."""
    if not path:
        return None
    if Path(path).resolve().parent != Path(studio.runs_dir).resolve():
        raise page_error("Pick one of the label audits listed.")
    try:
        return read_audit(path)
    except (OSError, ValueError) as error:
        raise page_error(f"Cannot read the audit: {error}") from None


def _suspects_view(studio: Studio, audit_path: str | None, example_id: int | None) -> tuple[str, pd.DataFrame]:
    """(a line on the audit, the queue and the shown item; the top of the queue as a table)."""
    store = studio.store
    columns = ["rank", "example", "audit P(injection)", "audited label", "current label", "issue", "text"]
    audit = _load_audit(studio, audit_path)
    if audit is None:
        return "Pick a completed label audit.", frame(columns, [])
    queue = suspects_queue(store, audit)
    lines = [f"Audit {audit.id} · {audit.method}"
             + (" · BIASED: in-sample, its adapter saw these labels" if audit.biased else "")
             + f" · {len(queue)} suspects left in the queue"]
    shown = queue[queue["example_id"] == example_id]
    if len(shown):
        row = shown.iloc[0]
        lines.append(f"This item: rank {row['rank']} · audit P(injection) {row['p_injection']:.3f} · "
                     f"label audited: {label_name(int(row['audited_label']))} · "
                     f"current label: {label_name(row['current_label'])}")
    top = queue.head(TOP_SUSPECTS)
    rows = []
    for r in top.itertuples(index=False):
        example = store.example(int(r.example_id))
        rows.append([r.rank, r.example_id, f"{r.p_injection:.3f}", label_name(int(r.audited_label)),
                     label_name(r.current_label), "yes" if r.is_issue else "", example.text if example else ""])
    return "\n".join(lines), frame(columns, rows)


def _suspects_update(studio: Studio, chosen_queue: str, audit_path: str | None, example_id: int | None):
    """The suspects view for the shown item; left as it is unless the suspects queue is chosen."""
    if chosen_queue != SUSPECTS:
        return gr.skip(), gr.skip()
    return _suspects_view(studio, audit_path, example_id)


def _next_id(studio: Studio, chosen_queue: str, name: str, after_id: int | None, browse: ExampleFilter,
             audit_path: str | None) -> int | None:
    if chosen_queue == SUSPECTS:
        audit = _load_audit(studio, audit_path)
        return next_suspect(studio.store, audit, after_id=after_id) if audit else None
    return studio.store.next_in_queue(Queue(chosen_queue), name or "anonymous", after_id, browse)


# -- components ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuspectsBox:
    """The suspects queue's audit picker and view, visible only while that queue is chosen."""
    box: gr.Column
    audit_picker: gr.Dropdown
    info: gr.Textbox
    table: gr.Dataframe

    @property
    def outputs(self) -> list:
        """What _suspects_view fills, in its order."""
        return [self.info, self.table]


@dataclass(frozen=True)
class VoteButtons:
    injection: gr.Button
    benign: gr.Button
    unsure: gr.Button
    skip: gr.Button
    undo: gr.Button


@dataclass(frozen=True)
class ReviewPanel:
    current_id: gr.State
    queue: gr.Radio
    adjudicate: gr.Checkbox
    suspects: SuspectsBox
    text: gr.Textbox
    info: gr.Textbox
    note: gr.Textbox
    buttons: VoteButtons
    votes: gr.Dataframe
    history: gr.Dataframe

    @property
    def outputs(self) -> list:
        """What review_view fills, in its order."""
        return [self.current_id, self.text, self.info, self.votes, self.history]


@dataclass(frozen=True)
class Review:
    """What the other sub-tabs need of Review: the panel's outputs (Browse opens an example there) and the
    handler showing the chosen queue's first item (Import reruns it)."""
    outputs: list
    first_item: Handler


def _suspects_box() -> SuspectsBox:
    with gr.Column(visible=False) as box:
        audit_picker = gr.Dropdown([], value=None, label="Label audit (completed)", elem_id="curate-audit")
        info = gr.Textbox(label="Suspect", interactive=False, lines=2, elem_id="curate-suspect")
        with gr.Accordion("Top suspects", open=False):
            table = gr.Dataframe(datatype="str", interactive=False, wrap=True, max_height=400,
                                 latex_delimiters=[], elem_id="curate-suspects-table")
    return SuspectsBox(box, audit_picker, info, table)


def _vote_buttons() -> VoteButtons:
    """The vote buttons; their elem_ids are the ones KEYBOARD_HEAD clicks."""
    with gr.Row():
        return VoteButtons(injection=gr.Button("Injection (i)", variant="stop", elem_id="vote-injection"),
                           benign=gr.Button("Benign (b)", variant="primary", elem_id="vote-benign"),
                           unsure=gr.Button("Unsure (u)", elem_id="vote-unsure"),
                           skip=gr.Button("Skip (s)", elem_id="vote-skip"),
                           undo=gr.Button("Undo my last vote (z)", elem_id="vote-undo"))


def _review_panel(current_id: gr.State) -> ReviewPanel:
    gr.Markdown(LABEL_RULE)
    with gr.Row():
        queue = gr.Radio([q.value for q in Queue] + [SUSPECTS], value=Queue.UNREVIEWED.value, label="Queue",
                         info="'filtered set' follows the filters in Browse; 'suspects' walks a label "
                              "audit's doubted labels, most doubted first", elem_id="curate-queue")
        adjudicate = gr.Checkbox(label="Adjudicate (my vote decides)", value=False)
    suspects = _suspects_box()
    text = gr.Textbox(label="Text (shown as plain text)", interactive=False, lines=6, max_lines=24)
    info = gr.Textbox(label="Labels", interactive=False, lines=4)
    note = gr.Textbox(label="Note (optional)", max_length=2000)
    buttons = _vote_buttons()
    votes = gr.Dataframe(label="Votes", datatype="str", interactive=False, wrap=True)
    with gr.Accordion("History of this item", open=False):
        history = gr.Dataframe(datatype="str", interactive=False, wrap=True)
    return ReviewPanel(current_id, queue, adjudicate, suspects, text, info, note, buttons, votes, history)


# -- events --------------------------------------------------------------------------------------------


def _first_item(studio: Studio, shared: Shared, panel: ReviewPanel) -> Handler:
    """Show the chosen queue's first item, with the counts and the suspects view."""
    def first_item(typed: str, chosen_queue: str, browse: ExampleFilter, audit_path: str | None,
                   request: gr.Request):
        name = reviewer_name(request, typed)
        example_id = _next_id(studio, chosen_queue, name, None, browse, audit_path)
        return (*review_view(studio.store, example_id), _counts(studio.store, name),
                *_suspects_update(studio, chosen_queue, audit_path, example_id))

    return Handler(first_item, [shared.reviewer_box, panel.queue, shared.browse_filter, panel.suspects.audit_picker],
                   [*panel.outputs, shared.counts, *panel.suspects.outputs])


def _identify_then_show_first_item(shared: Shared, first_item: Handler) -> None:
    """On page load: the login name (fixed) or the name saved in this browser, then the first item."""
    def identify(saved: str, request: gr.Request):
        if getattr(request, "username", None):
            return gr.Textbox(value=request.username, interactive=False, label="Reviewer (from your login)")
        return gr.Textbox(value=saved or "")

    gr.on(None, identify, inputs=[shared.saved_name], outputs=[shared.reviewer_box], api_name="curate_identify",
          **PRIVATE).then(*first_item, api_name="review_first_item")


def _wire_suspects_queue(studio: Studio, panel: ReviewPanel, first_item: Handler) -> None:
    """Choosing the suspects queue shows its audit picker; picking an audit records its scores once."""
    suspects = panel.suspects

    def show_suspects_box(chosen_queue: str):
        shown = chosen_queue == SUSPECTS
        return gr.Column(visible=shown), gr.Dropdown(choices=_audit_choices(studio)) if shown else gr.skip()

    def pick_audit(audit_path: str | None):
        audit = _load_audit(studio, audit_path)
        if audit is not None:
            record_audit_scores(studio.store, audit)  # once: it records nothing when this audit's scores are in

    panel.queue.change(show_suspects_box, panel.queue, [suspects.box, suspects.audit_picker],
                       api_name="review_queue_chosen", **PRIVATE).then(
        *first_item, api_name="review_first_item_of_queue", **PRIVATE)
    suspects.audit_picker.focus(lambda: gr.Dropdown(choices=_audit_choices(studio)), None, suspects.audit_picker,
                                show_progress="hidden", api_name="review_audit_choices", **PRIVATE)
    suspects.audit_picker.input(pick_audit, suspects.audit_picker, None, api_name="review_audit_chosen",
                                **PRIVATE).then(*first_item, api_name="review_first_item_of_audit", **PRIVATE)


def _remember_reviewer_name(shared: Shared) -> None:
    gr.on([shared.reviewer_box.submit, shared.reviewer_box.blur], lambda name: (name or "").strip(),
          inputs=[shared.reviewer_box], outputs=[shared.saved_name], api_name="curate_remember_name", **PRIVATE)


def _wire_votes(studio: Studio, shared: Shared, panel: ReviewPanel) -> None:
    """Each vote button (Skip votes nothing) moves on to the queue's next item; adjudicating takes a lead."""
    store = studio.store

    def vote_with(label: int | None):
        def vote(example_id: int | None, note_text: str, adjudication: bool, chosen_queue: str, typed: str,
                 browse: ExampleFilter, audit_path: str | None, request: gr.Request):
            name = reviewer(request, typed)
            if example_id is not None and label is not None:
                if adjudication:
                    studio.require(request, ADJUDICATE)
                try:
                    store.cast_vote(example_id, name, label, note_text or "", adjudication)
                except (ValueError, KeyError) as error:  # KeyError: no such example
                    raise page_error(error.args[0] if error.args else error) from None
            shown = _next_id(studio, chosen_queue, name, example_id, browse, audit_path)
            return (*review_view(store, shown), "", _counts(store, name),
                    *_suspects_update(studio, chosen_queue, audit_path, shown))
        return vote

    buttons = panel.buttons
    inputs = [panel.current_id, panel.note, panel.adjudicate, panel.queue, shared.reviewer_box, shared.browse_filter,
              panel.suspects.audit_picker]
    outputs = [*panel.outputs, panel.note, shared.counts, *panel.suspects.outputs]
    for button, label, name in ((buttons.injection, INJECTION, "injection"), (buttons.benign, BENIGN, "benign"),
                                (buttons.unsure, UNSURE, "unsure"), (buttons.skip, None, "skip")):
        button.click(vote_with(label), inputs=inputs, outputs=outputs, api_name=f"vote_{name}")


def _wire_undo(studio: Studio, shared: Shared, panel: ReviewPanel) -> None:
    """Undo retracts the reviewer's last vote and shows that item again."""
    def undo(example_id: int | None, typed: str, chosen_queue: str, audit_path: str | None, request: gr.Request):
        name = reviewer(request, typed)
        store = studio.store
        try:
            retracted = store.undo_last_vote(name)
        except ValueError as error:
            raise page_error(error) from None
        if retracted is None:
            gr.Info("You have no vote to undo.")
        shown = retracted.example_id if retracted else example_id
        return (*review_view(store, shown), _counts(store, name),
                *_suspects_update(studio, chosen_queue, audit_path, shown))

    panel.buttons.undo.click(undo, inputs=[panel.current_id, shared.reviewer_box, panel.queue,
                                           panel.suspects.audit_picker],
                             outputs=[*panel.outputs, shared.counts, *panel.suspects.outputs], api_name="vote_undo")


def review_tab(studio: Studio, shared: Shared) -> Review:
    """The Review sub-tab and its events; what Browse and Import need of it."""
    with gr.Tab("Review", id="review"):
        panel = _review_panel(shared.current_id)
    first_item = _first_item(studio, shared, panel)
    _identify_then_show_first_item(shared, first_item)
    _wire_suspects_queue(studio, panel, first_item)
    _remember_reviewer_name(shared)
    _wire_votes(studio, shared, panel)
    _wire_undo(studio, shared, panel)
    return Review(panel.outputs, first_item)

"""The Review sub-tab: one example at a time from a queue, voted on with buttons or with the keys of
KEYBOARD_HEAD.

The queues are the store's (unreviewed, filtered set, disagreements) plus "suspects": a completed label
audit's examples in rank order (curation.suspects), voted on with the same buttons.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from access.roles import ADJUDICATE
from curation.filters import ExampleFilter, Queue
from curation.labels import BENIGN, INJECTION, LABEL_RULE, UNSURE, label_name
from curation.store import AuditInfo, Event, LabelStore, ReviewItem, ReviewQueue, VoteRecord
from curation.suspects import audit_to_review, list_audits, read_audit
from ui.context import Studio, name_box, page_error
from ui.curate.common import Shared, frame, reviewer, reviewer_name, when
from ui.endpoints import PRIVATE
from ui.handler import Handler
from ui.widgets import text_table

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


def _example_info(item: ReviewItem) -> str:
    example, score = item.example, item.score
    lines = [
        f"#{example.id} · split {example.split} · source {example.source}",
        f"Original label: {label_name(example.original_label) or '(none)'} · "
        f"Current label: {label_name(example.current_label) or '(none)'}",
        f"Votes: {example.n_votes} from {example.n_reviewers} reviewer(s)"
        + (" · reviewers disagree" if example.disagree else "")
        + (" · adjudicated" if example.adjudicated else "")
        + (" · sent from Detect" if example.flagged else ""),
    ]
    if score:
        lines.append(f"Detector P(injection): {score.p_injection:.3f} (run {score.run_id}, {when(score.scored_at)})")
    return "\n".join(lines)


def _votes_frame(votes: list[VoteRecord]) -> dict:
    return frame(
        ["reviewer", "vote", "note", "when", "adjudication", "status"],
        [
            [
                v.reviewer,
                label_name(v.label),
                v.note,
                when(v.cast_at),
                "yes" if v.adjudication else "",
                f"retracted {when(v.retracted_at)}" if v.retracted_at else "counts",
            ]
            for v in votes
        ],
    )


def _history_frame(events: list[Event]) -> dict:
    return frame(
        ["when", "who", "what", "label before", "label after"],
        [[when(e.at), e.actor, e.action, label_name(e.from_label), label_name(e.to_label)] for e in events],
    )


def _panel_values(item: ReviewItem) -> tuple:
    """(example id, text, info, votes, history), in ReviewPanel.outputs' order."""
    example = item.example
    if example is None:
        return None, "", "Nothing left in this queue.", _votes_frame([]), _history_frame([])
    return example.id, example.text, _example_info(item), _votes_frame(item.votes), _history_frame(item.history)


def review_view(store: LabelStore, example_id: int | None) -> tuple:
    """(example id, text, info, votes, history) for the review panel (Browse opens an example there)."""
    return _panel_values(store.review_item(example_id, ""))


def _counts(item: ReviewItem) -> str:
    totals = item.totals
    return (
        f"**{totals.examples}** examples · **{totals.reviewed}** reviewed · "
        f"**{totals.changed}** changed vs original · **{totals.open_disagreements}** open disagreements · "
        f"your votes: **{item.reviewer_votes}**"
    )


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


def _audit(studio: Studio, path: str | None) -> AuditInfo | None:
    """The audit a page names (recorded in the store on first use), or a page error saying what is wrong."""
    try:
        return audit_to_review(studio.store, studio.runs_dir, path)
    except ValueError as error:
        raise page_error(error) from None


def _suspects_view(store: LabelStore, audit: AuditInfo | None, example_id: int | None) -> tuple[str, dict]:
    """(a line on the audit, the queue and the shown item; the top of the queue as a table)."""
    columns = ["rank", "example", "audit P(injection)", "audited label", "current label", "issue", "text"]
    if audit is None:
        return "Pick a completed label audit.", frame(columns, [])
    view = store.suspects_view(audit.id, example_id, TOP_SUSPECTS)
    lines = [
        f"Audit {audit.id} · {audit.method}"
        + (" · BIASED: in-sample, its adapter saw these labels" if audit.biased else "")
        + f" · {view.left} suspects left in the queue"
    ]
    if view.shown:
        shown = view.shown
        lines.append(
            f"This item: rank {shown.rank} · audit P(injection) {shown.p_injection:.3f} · "
            f"label audited: {label_name(shown.audited_label)} · "
            f"current label: {label_name(shown.current_label)}"
        )
    rows = [
        [
            s.rank,
            s.example_id,
            f"{s.p_injection:.3f}",
            label_name(s.audited_label),
            label_name(s.current_label),
            "yes" if s.is_issue else "",
            s.text,
        ]
        for s in view.top
    ]
    return "\n".join(lines), frame(columns, rows)


def _review_queue(
    studio: Studio, chosen_queue: str, name: str, browse: ExampleFilter | None, audit_path: str | None
) -> tuple[ReviewQueue, AuditInfo | None]:
    """The chosen queue for this reviewer, and its audit when it is the suspects queue."""
    queue = Queue(chosen_queue)
    audit = _audit(studio, audit_path) if queue is Queue.SUSPECTS else None
    return ReviewQueue(queue, name, browse or ExampleFilter(), audit.id if audit else None), audit


# -- components ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuspectsBox:
    """The suspects queue's audit picker and view, visible only while that queue is chosen."""

    box: gr.Column
    audit_picker: gr.Dropdown
    info: gr.Textbox
    table: gr.Dataframe


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
class Answers:
    """Builds the review handlers' answers: {component: value} for the panel, the counts and, in the suspects
    queue, the suspects view."""

    store: LabelStore
    panel: ReviewPanel
    counts: gr.Markdown

    @property
    def outputs(self) -> list:
        return [*self.panel.outputs, self.counts, self.panel.suspects.info, self.panel.suspects.table]

    def show(self, example_id: int | None, name: str, queue: Queue, audit: AuditInfo | None) -> dict:
        """The panel showing ``example_id`` to reviewer ``name``: the example and the counts read in one
        transaction, the suspects view (in that queue) in another."""
        item = self.store.review_item(example_id, name)
        answer = {**dict(zip(self.panel.outputs, _panel_values(item))), self.counts: _counts(item)}
        if queue is Queue.SUSPECTS:
            suspects = self.panel.suspects
            answer.update(zip((suspects.info, suspects.table), _suspects_view(self.store, audit, example_id)))
        return answer


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
            table = text_table(wrap=True, max_height=400, elem_id="curate-suspects-table")
    return SuspectsBox(box, audit_picker, info, table)


def _vote_buttons() -> VoteButtons:
    """The vote buttons; their elem_ids are the ones KEYBOARD_HEAD clicks."""
    with gr.Row():
        return VoteButtons(
            injection=gr.Button("Injection (i)", variant="stop", elem_id="vote-injection"),
            benign=gr.Button("Benign (b)", variant="primary", elem_id="vote-benign"),
            unsure=gr.Button("Unsure (u)", elem_id="vote-unsure"),
            skip=gr.Button("Skip (s)", elem_id="vote-skip"),
            undo=gr.Button("Undo my last vote (z)", elem_id="vote-undo"),
        )


def _review_panel(current_id: gr.State) -> ReviewPanel:
    gr.Markdown(LABEL_RULE)
    with gr.Row():
        queue = gr.Radio(
            [q.value for q in Queue],
            value=Queue.UNREVIEWED.value,
            label="Queue",
            info="'filtered set' follows the filters in Browse; 'suspects' walks a label "
            "audit's doubted labels, most doubted first",
            elem_id="curate-queue",
        )
        adjudicate = gr.Checkbox(label="Adjudicate (my vote decides)", value=False)
    suspects = _suspects_box()
    text = gr.Textbox(label="Text (shown as plain text)", interactive=False, lines=6, max_lines=24)
    info = gr.Textbox(label="Labels", interactive=False, lines=4)
    note = gr.Textbox(label="Note (optional)", max_length=2000)
    buttons = _vote_buttons()
    votes = text_table(label="Votes", wrap=True)
    with gr.Accordion("History of this item", open=False):
        history = text_table(wrap=True)
    return ReviewPanel(current_id, queue, adjudicate, suspects, text, info, note, buttons, votes, history)


# -- events --------------------------------------------------------------------------------------------


def _first_item(studio: Studio, shared: Shared, answers: Answers) -> Handler:
    """Show the chosen queue's first item, with the counts and the suspects view."""

    def first_item(typed: str, chosen_queue: str, browse: ExampleFilter, audit_path: str | None, request: gr.Request):
        name = reviewer_name(request, typed)
        queue, audit = _review_queue(studio, chosen_queue, name or "anonymous", browse, audit_path)
        return answers.show(studio.store.next_item(queue), name, queue.queue, audit)

    panel = answers.panel
    return Handler(
        first_item,
        [shared.reviewer_box, panel.queue, shared.browse_filter, panel.suspects.audit_picker],
        answers.outputs,
    )


def _identify_then_show_first_item(shared: Shared, first_item: Handler) -> None:
    """On page load: the login name (fixed) or the name saved in this browser, then the first item."""

    def identify(saved: str, request: gr.Request):
        return {shared.reviewer_box: name_box(saved, request, login_label="Reviewer (from your login)")}

    gr.on(
        None, identify, inputs=[shared.saved_name], outputs=[shared.reviewer_box], api_name="curate_identify", **PRIVATE
    ).then(*first_item, api_name="review_first_item")


def _wire_suspects_queue(studio: Studio, panel: ReviewPanel, first_item: Handler) -> None:
    """Choosing the suspects queue shows its audit picker; picking an audit records it in the store once."""
    suspects = panel.suspects

    def audit_choices():
        return {suspects.audit_picker: gr.Dropdown(choices=_audit_choices(studio))}

    def show_suspects_box(chosen_queue: str):
        shown = chosen_queue == Queue.SUSPECTS.value
        return {suspects.box: gr.Column(visible=shown), **(audit_choices() if shown else {})}

    def pick_audit(audit_path: str | None):
        _audit(studio, audit_path)

    panel.queue.change(
        show_suspects_box, panel.queue, [suspects.box, suspects.audit_picker], api_name="review_queue_chosen", **PRIVATE
    ).then(*first_item, api_name="review_first_item_of_queue", **PRIVATE)
    suspects.audit_picker.focus(
        audit_choices, None, suspects.audit_picker, show_progress="hidden", api_name="review_audit_choices", **PRIVATE
    )
    suspects.audit_picker.input(
        pick_audit, suspects.audit_picker, None, api_name="review_audit_chosen", **PRIVATE
    ).then(*first_item, api_name="review_first_item_of_audit", **PRIVATE)


def _remember_reviewer_name(shared: Shared) -> None:
    gr.on(
        [shared.reviewer_box.submit, shared.reviewer_box.blur],
        lambda name: {shared.saved_name: (name or "").strip()},
        inputs=[shared.reviewer_box],
        outputs=[shared.saved_name],
        api_name="curate_remember_name",
        **PRIVATE,
    )


def _vote_then_next(
    store: LabelStore, example_id: int, label: int, note: str, adjudication: bool, queue: ReviewQueue
) -> int | None:
    """The vote recorded and the queue's next item (one transaction); a refused vote as a page error."""
    try:
        return store.cast_vote_and_next(example_id, label, note, adjudication, queue)
    except (ValueError, KeyError) as error:  # KeyError: no such example
        raise page_error(error.args[0] if error.args else error) from None


def _wire_votes(studio: Studio, shared: Shared, answers: Answers) -> None:
    """Each vote button (Skip votes nothing) moves on to the queue's next item; adjudicating takes a lead. A vote
    and the search for the next item are one transaction."""
    store, panel = studio.store, answers.panel

    def vote_with(label: int | None):
        def vote(
            example_id: int | None,
            note_text: str,
            adjudication: bool,
            chosen_queue: str,
            typed: str,
            browse: ExampleFilter,
            audit_path: str | None,
            request: gr.Request,
        ):
            name = reviewer(request, typed)
            queue, audit = _review_queue(studio, chosen_queue, name, browse, audit_path)
            if example_id is None or label is None:
                shown = store.next_item(queue, example_id)
            else:
                if adjudication:
                    studio.require(request, ADJUDICATE)
                shown = _vote_then_next(store, example_id, label, note_text or "", adjudication, queue)
            return {**answers.show(shown, name, queue.queue, audit), panel.note: ""}

        return vote

    buttons = panel.buttons
    inputs = [
        panel.current_id,
        panel.note,
        panel.adjudicate,
        panel.queue,
        shared.reviewer_box,
        shared.browse_filter,
        panel.suspects.audit_picker,
    ]
    for button, label, name in (
        (buttons.injection, INJECTION, "injection"),
        (buttons.benign, BENIGN, "benign"),
        (buttons.unsure, UNSURE, "unsure"),
        (buttons.skip, None, "skip"),
    ):
        button.click(vote_with(label), inputs=inputs, outputs=[*answers.outputs, panel.note], api_name=f"vote_{name}")


def _wire_undo(studio: Studio, shared: Shared, answers: Answers) -> None:
    """Undo retracts the reviewer's last vote and shows that item again."""
    panel = answers.panel

    def undo(example_id: int | None, typed: str, chosen_queue: str, audit_path: str | None, request: gr.Request):
        name = reviewer(request, typed)
        queue, audit = _review_queue(studio, chosen_queue, name, None, audit_path)
        try:
            retracted = studio.store.undo_last_vote(name)
        except ValueError as error:
            raise page_error(error) from None
        if retracted is None:
            gr.Info("You have no vote to undo.")
        return answers.show(retracted.example_id if retracted else example_id, name, queue.queue, audit)

    panel.buttons.undo.click(
        undo,
        inputs=[panel.current_id, shared.reviewer_box, panel.queue, panel.suspects.audit_picker],
        outputs=answers.outputs,
        api_name="vote_undo",
    )


def review_tab(studio: Studio, shared: Shared) -> Review:
    """The Review sub-tab and its events; what Browse and Import need of it."""
    with gr.Tab("Review", id="review"):
        panel = _review_panel(shared.current_id)
    answers = Answers(studio.store, panel, shared.counts)
    first_item = _first_item(studio, shared, answers)
    _identify_then_show_first_item(shared, first_item)
    _wire_suspects_queue(studio, panel, first_item)
    _remember_reviewer_name(shared)
    _wire_votes(studio, shared, answers)
    _wire_undo(studio, shared, answers)
    return Review(panel.outputs, first_item)

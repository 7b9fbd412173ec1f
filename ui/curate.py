"""The Curate tab: review, browse, import, reviewers, snapshots. Thin: every decision lives in curation/.

The review panel's queues are the store's (unreviewed, filtered set, disagreements) plus "suspects": a
completed label audit's examples in rank order (curation.suspects), voted on with the same buttons.

Dataset text is only ever shown in plain-text components (Textbox, Dataframe with datatype "str",
which Gradio escapes); Markdown here carries numbers and fixed words only.
"""

from __future__ import annotations

import json
import os
import time

import gradio as gr
import pandas as pd

from curation.demo import demo_only
from curation.filters import ExampleFilter, Queue
from curation.labels import BENIGN, INJECTION, LABEL_RULE, UNSURE, guess_label, label_name
from curation.snapshots import push_to_hub
from curation.sources import SourceError, prepare, read_source
from curation.store import Example, LabelStore
from curation.suspects import list_audits, next_suspect, read_audit, record_audit_scores, suspects_queue
from ui.context import Studio

PAGE_SIZE = 50
LABEL_CHOICES = {"any": None, "injection": INJECTION, "benign": BENIGN}
REVIEWED_CHOICES = {"any": None, "reviewed": True, "unreviewed": False}
ALL_SPLITS = "all"
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


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def _reviewer_name(request: gr.Request | None, typed: str | None) -> str:
    """The login name when auth is on (it cannot be typed over), else the name typed on the page; may be ''."""
    return (getattr(request, "username", None) or typed or "").strip()


def _reviewer(request: gr.Request | None, typed: str | None) -> str:
    """The reviewer casting a vote: a name is required."""
    name = _reviewer_name(request, typed)
    if not name:
        raise gr.Error("Type your name in the Reviewer box first.")
    return name


def _frame(columns: list[str], rows: list[list]) -> pd.DataFrame:
    return pd.DataFrame([[str(v) for v in row] for row in rows], columns=columns, dtype=str)


# -- review panel --------------------------------------------------------------------------------------


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
        lines.append(f"Detector P(injection): {score.p_injection:.3f} (run {score.run_id}, {_when(score.scored_at)})")
    return "\n".join(lines)


def _votes_frame(store: LabelStore, example_id: int | None) -> pd.DataFrame:
    votes = store.votes(example_id) if example_id is not None else []
    return _frame(["reviewer", "vote", "note", "when", "adjudication", "status"],
                  [[v.reviewer, label_name(v.label), v.note, _when(v.cast_at), "yes" if v.adjudication else "",
                    f"retracted {_when(v.retracted_at)}" if v.retracted_at else "counts"] for v in votes])


def _history_frame(store: LabelStore, example_id: int | None) -> pd.DataFrame:
    events = store.history(example_id) if example_id is not None else []
    return _frame(["when", "who", "what", "label before", "label after"],
                  [[_when(e.at), e.actor, e.action, label_name(e.from_label), label_name(e.to_label)]
                   for e in events])


def _review_view(store: LabelStore, example_id: int | None) -> tuple:
    """(example id, text, info, votes, history) for the review panel."""
    example = store.example(example_id) if example_id is not None else None
    if example is None:
        return None, "", "Nothing left in this queue.", _votes_frame(store, None), _history_frame(store, None)
    return (example.id, example.text, _example_info(store, example), _votes_frame(store, example.id),
            _history_frame(store, example.id))


def _counts(store: LabelStore, reviewer: str) -> str:
    totals = store.totals()
    mine = next((c.votes for c in store.reviewer_counts() if c.reviewer == reviewer), 0)
    return (f"**{totals.examples}** examples · **{totals.reviewed}** reviewed · "
            f"**{totals.changed}** changed vs original · **{totals.open_disagreements}** open disagreements · "
            f"your votes: **{mine}**")


# -- suspects queue ------------------------------------------------------------------------------------


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


def _load_audit(path: str | None):
    if not path:
        return None
    try:
        return read_audit(path)
    except (OSError, ValueError) as error:
        raise gr.Error(f"Cannot read the audit: {error}") from None


def _suspects_view(store: LabelStore, audit_path: str | None, example_id: int | None) -> tuple[str, pd.DataFrame]:
    """(a line on the audit, the queue and the shown item; the top of the queue as a table)."""
    columns = ["rank", "example", "audit P(injection)", "audited label", "current label", "issue", "text"]
    audit = _load_audit(audit_path)
    if audit is None:
        return "Pick a completed label audit.", _frame(columns, [])
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
    return "\n".join(lines), _frame(columns, rows)


# -- browse panel --------------------------------------------------------------------------------------


def _browse_filter(split: str, current: str, original: str, reviewed: str, changed: bool, disagree: bool,
                   flagged: bool, search: str) -> ExampleFilter:
    return ExampleFilter(split=None if split == ALL_SPLITS else split, current_label=LABEL_CHOICES[current],
                         original_label=LABEL_CHOICES[original], reviewed=REVIEWED_CHOICES[reviewed],
                         changed=changed, disagree=disagree, flagged=flagged, search=search or "")


def _browse_page(store: LabelStore, browse_filter: ExampleFilter, page: int) -> tuple:
    """(table, "showing" line, page number) for one page; the page number is clamped to what exists."""
    result = store.page(browse_filter, max(page, 0), PAGE_SIZE)
    if not result.rows and result.total:
        result = store.page(browse_filter, (result.total - 1) // PAGE_SIZE, PAGE_SIZE)
    page = result.page
    table = _frame(["id", "split", "text", "original", "current", "votes", "disagree", "from Detect"],
                   [[e.id, e.split, e.text, label_name(e.original_label), label_name(e.current_label), e.n_votes,
                     "yes" if e.disagree else "", "yes" if e.flagged else ""] for e in result.rows])
    first = page * PAGE_SIZE + 1 if result.total else 0
    shown = f"Showing {first}–{page * PAGE_SIZE + len(result.rows)} of {result.total} · page {page + 1}"
    return table, shown, page


# -- reviewers and snapshots ----------------------------------------------------------------------------


def _reviewers_view(store: LabelStore) -> tuple:
    counts = _frame(["reviewer", "votes", "injection", "benign", "unsure", "adjudications", "items"],
                    [[c.reviewer, c.votes, c.injection, c.benign, c.unsure, c.adjudications, c.items]
                     for c in store.reviewer_counts()])
    summary = store.agreement()
    if summary.n_items:
        kappa = "undefined" if summary.kappa is None else f"{summary.kappa:.3f}"
        text = (f"**{summary.n_items}** items with two or more reviewers · percent agreement "
                f"**{summary.percent_agreement:.1%}** · Cohen's kappa (weighted mean over pairs) **{kappa}**")
    else:
        text = "No item has votes from two reviewers yet."
    pairs = _frame(["reviewer A", "reviewer B", "shared items", "agreement", "kappa"],
                   [[p.reviewer_a, p.reviewer_b, p.n_items, f"{p.agreement:.1%}",
                     "undefined" if p.kappa is None else f"{p.kappa:.3f}"] for p in summary.pairs])
    events = _frame(["when", "who", "what", "example", "label before", "label after"],
                    [[_when(e.at), e.actor, e.action, e.example_id or "", label_name(e.from_label),
                      label_name(e.to_label)] for e in store.events(50)])
    return counts, text, pairs, events


def _snapshots_view(store: LabelStore, chosen: str | None = None) -> tuple:
    snapshots = store.list_snapshots()
    table = _frame(["snapshot", "created", "by", "rows per split", "changes vs original"],
                   [[s.id, s.manifest["created_at"], s.manifest["created_by"],
                     ", ".join(f"{k}: {v['rows']}" for k, v in s.manifest["splits"].items()), s.manifest["n_changes"]]
                    for s in snapshots])
    ids = [s.id for s in snapshots]
    return table, gr.Dropdown(choices=ids, value=chosen if chosen in ids else (ids[0] if ids else None))


def _snapshot_summary(manifest: dict) -> str:
    shown = {k: manifest[k] for k in ("id", "created_at", "created_by", "splits", "content_hash", "n_changes",
                                      "n_added", "excluded_without_label", "reviewers")}
    return json.dumps(shown, indent=1, ensure_ascii=False)


# -- the tab -----------------------------------------------------------------------------------------------


def build(studio: Studio) -> None:
    """The Curate tab's components and events; call inside ``with gr.Tab("Curate"):``."""
    store = studio.store
    banner = gr.Markdown("**Demo dataset in use.** This small dataset ships with the app so that it works "
                         "offline on a fresh machine. Import your own data in *Import*, or start the app with "
                         "`--dataset PATH_OR_HUB_ID` on a fresh `--data-dir`.", visible=False)
    saved_name = gr.BrowserState("", storage_key="injection-studio-reviewer")
    current_id = gr.State(None)
    browse_filter = gr.State(ExampleFilter())
    with gr.Row():
        reviewer_box = gr.Textbox(label="Reviewer", placeholder="Type your name once", max_length=100, scale=1)
        counts = gr.Markdown()

    with gr.Tabs() as tabs:
        with gr.Tab("Review", id="review"):
            gr.Markdown(LABEL_RULE)
            with gr.Row():
                queue = gr.Radio([q.value for q in Queue] + [SUSPECTS], value=Queue.UNREVIEWED.value, label="Queue",
                                 info="'filtered set' follows the filters in Browse; 'suspects' walks a label "
                                      "audit's doubted labels, most doubted first", elem_id="curate-queue")
                adjudicate = gr.Checkbox(label="Adjudicate (my vote decides)", value=False)
            with gr.Column(visible=False) as suspects_box:
                audit_picker = gr.Dropdown([], value=None, label="Label audit (completed)", elem_id="curate-audit")
                suspect_info = gr.Textbox(label="Suspect", interactive=False, lines=2, elem_id="curate-suspect")
                with gr.Accordion("Top suspects", open=False):
                    suspects_table = gr.Dataframe(datatype="str", interactive=False, wrap=True, max_height=400,
                                                  latex_delimiters=[], elem_id="curate-suspects-table")
            text = gr.Textbox(label="Text (shown as plain text)", interactive=False, lines=6, max_lines=24)
            info = gr.Textbox(label="Labels", interactive=False, lines=4)
            note = gr.Textbox(label="Note (optional)", max_length=2000)
            with gr.Row():
                injection_btn = gr.Button("Injection (i)", variant="stop", elem_id="vote-injection")
                benign_btn = gr.Button("Benign (b)", variant="primary", elem_id="vote-benign")
                unsure_btn = gr.Button("Unsure (u)", elem_id="vote-unsure")
                skip_btn = gr.Button("Skip (s)", elem_id="vote-skip")
                undo_btn = gr.Button("Undo my last vote (z)", elem_id="vote-undo")
            votes = gr.Dataframe(label="Votes", datatype="str", interactive=False, wrap=True)
            with gr.Accordion("History of this item", open=False):
                history = gr.Dataframe(datatype="str", interactive=False, wrap=True)

        with gr.Tab("Browse", id="browse"):
            with gr.Row():
                split = gr.Dropdown([ALL_SPLITS], value=ALL_SPLITS, label="Split")
                current = gr.Radio(list(LABEL_CHOICES), value="any", label="Current label")
                original = gr.Radio(list(LABEL_CHOICES), value="any", label="Original label")
                reviewed = gr.Radio(list(REVIEWED_CHOICES), value="any", label="Reviewed")
            with gr.Row():
                changed = gr.Checkbox(label="Changed vs original")
                disagree = gr.Checkbox(label="Reviewers disagree")
                flagged = gr.Checkbox(label="Sent from Detect")
                search = gr.Textbox(label="Search (full text)", placeholder="words to find")
            with gr.Row():
                prev_btn = gr.Button("◀ Previous", size="sm")
                shown = gr.Markdown()
                next_btn = gr.Button("Next ▶", size="sm")
            page = gr.State(0)
            table = gr.Dataframe(datatype="str", interactive=False, wrap=True, max_height=600,
                                 column_widths=["6%", "7%", "55%", "8%", "8%", "5%", "5%", "6%"])
            selected_id = gr.State(None)
            full_text = gr.Textbox(label="Selected text (full, plain)", interactive=False, lines=4, max_lines=24)
            review_this = gr.Button("Review this example")

        with gr.Tab("Import", id="import"):
            with gr.Row():
                source = gr.Textbox(label="Hugging Face dataset id or a path on the server",
                                    placeholder="xTRam1/safe-guard-prompt-injection or /path/to/folder")
                upload = gr.File(label="…or upload a parquet, CSV or JSONL file",
                                 file_types=[".parquet", ".csv", ".jsonl"])
            with gr.Row():
                text_column = gr.Textbox(value="text", label="Text column")
                label_column = gr.Textbox(value="label", label="Label column")
                single_split = gr.Textbox(label="Split of a single file",
                                          placeholder="blank: train, or the file's name if it is test/validation")
            preview_btn = gr.Button("1. Read and show the label mapping")
            mapping = gr.Dataframe(label="Label mapping: edit 'maps to' (injection / benign) where needed",
                                   headers=["raw label", "rows", "maps to"], datatype="str", interactive=True,
                                   static_columns=[0, 1])
            import_btn = gr.Button("2. Import with this mapping", variant="primary", interactive=False)
            import_status = gr.Textbox(label="Import", interactive=False, lines=6)
            preview = gr.State(None)

        with gr.Tab("Reviewers", id="reviewers") as reviewers_tab:
            refresh_reviewers = gr.Button("Refresh", size="sm")
            reviewer_table = gr.Dataframe(label="Votes per reviewer", datatype="str", interactive=False)
            agreement = gr.Markdown()
            gr.Markdown("Agreement counts each reviewer's latest injection/benign vote per item (unsure left out). "
                        "Percent agreement: share of items with two or more reviewers on which all agree. "
                        "Cohen's kappa per pair of reviewers over the items both labelled: "
                        "(p_o − p_e) / (1 − p_e), p_o the share they agree on, p_e = pA·pB + (1−pA)(1−pB) "
                        "from each one's share of injection labels; the overall figure is the mean of the "
                        "pairs' kappas weighted by shared items.")
            pairs = gr.Dataframe(label="Pairs of reviewers", datatype="str", interactive=False)
            recent = gr.Dataframe(label="Recent changes (audit log)", datatype="str", interactive=False, wrap=True)

        with gr.Tab("Snapshots", id="snapshots") as snapshots_tab:
            gr.Markdown("A snapshot freezes the current labels: one parquet file per split (columns `text`, "
                        "`label`) and `manifest.json`. Training runs name the snapshot they use.")
            snapshot_btn = gr.Button("Create snapshot", variant="primary")
            snapshot_info = gr.Textbox(label="Manifest", interactive=False, lines=10)
            snapshot_files = gr.File(label="Download", file_count="multiple", interactive=False)
            with gr.Row():
                chosen_snapshot = gr.Dropdown(label="Snapshot", choices=[])
                hub_repo = gr.Textbox(label="Hub dataset repo", placeholder="your-name/injection-labels")
                push_btn = gr.Button("Push to the Hub", interactive=bool(os.environ.get("HF_TOKEN")))
            push_status = gr.Textbox(label="Hub", interactive=False,
                                     value="" if os.environ.get("HF_TOKEN") else "Set HF_TOKEN to push to the Hub.")
            snapshot_table = gr.Dataframe(label="Snapshots", datatype="str", interactive=False)

    review_outputs = [current_id, text, info, votes, history]
    suspect_outputs = [suspect_info, suspects_table]

    def next_id(chosen_queue: str, name: str, after_id: int | None, browse: ExampleFilter, audit_path: str | None):
        if chosen_queue == SUSPECTS:
            audit = _load_audit(audit_path)
            return next_suspect(store, audit, after_id=after_id) if audit else None
        return store.next_in_queue(Queue(chosen_queue), name or "anonymous", after_id, browse)

    def suspects_of(chosen_queue: str, audit_path: str | None, example_id: int | None):
        if chosen_queue != SUSPECTS:
            return gr.skip(), gr.skip()
        return _suspects_view(store, audit_path, example_id)

    # -- identity and first item ---------------------------------------------------------------------
    def identify(saved: str, request: gr.Request):
        if getattr(request, "username", None):
            return gr.Textbox(value=request.username, interactive=False, label="Reviewer (from your login)")
        return gr.Textbox(value=saved or "")

    def first_item(typed: str, chosen_queue: str, browse: ExampleFilter, audit_path: str | None,
                   request: gr.Request):
        name = _reviewer_name(request, typed)
        example_id = next_id(chosen_queue, name, None, browse, audit_path)
        return (*_review_view(store, example_id), _counts(store, name),
                *suspects_of(chosen_queue, audit_path, example_id))

    first_inputs = [reviewer_box, queue, browse_filter, audit_picker]
    first_outputs = [*review_outputs, counts, *suspect_outputs]
    gr.on(None, identify, inputs=[saved_name], outputs=[reviewer_box]).then(
        first_item, inputs=first_inputs, outputs=first_outputs)

    def show_suspects_box(chosen_queue: str):
        shown = chosen_queue == SUSPECTS
        return gr.Column(visible=shown), gr.Dropdown(choices=_audit_choices(studio)) if shown else gr.skip()

    queue.change(show_suspects_box, queue, [suspects_box, audit_picker]).then(
        first_item, inputs=first_inputs, outputs=first_outputs)
    audit_picker.focus(lambda: gr.Dropdown(choices=_audit_choices(studio)), None, audit_picker,
                       show_progress="hidden")

    def pick_audit(audit_path: str | None):
        audit = _load_audit(audit_path)
        if audit is not None:
            record_audit_scores(store, audit)  # once: it records nothing when this audit's scores are in

    audit_picker.input(pick_audit, audit_picker, None).then(first_item, inputs=first_inputs, outputs=first_outputs)
    gr.on([reviewer_box.submit, reviewer_box.blur], lambda name: (name or "").strip(), inputs=[reviewer_box],
          outputs=[saved_name])

    # -- voting --------------------------------------------------------------------------------------
    def vote_with(label: int | None):
        def vote(example_id: int | None, note_text: str, adjudication: bool, chosen_queue: str, typed: str,
                 browse: ExampleFilter, audit_path: str | None, request: gr.Request):
            name = _reviewer(request, typed)
            if example_id is not None and label is not None:
                try:
                    store.cast_vote(example_id, name, label, note_text or "", adjudication)
                except ValueError as error:
                    raise gr.Error(str(error)) from None
            shown = next_id(chosen_queue, name, example_id, browse, audit_path)
            return (*_review_view(store, shown), "", _counts(store, name),
                    *suspects_of(chosen_queue, audit_path, shown))
        return vote

    vote_inputs = [current_id, note, adjudicate, queue, reviewer_box, browse_filter, audit_picker]
    for button, label in ((injection_btn, INJECTION), (benign_btn, BENIGN), (unsure_btn, UNSURE), (skip_btn, None)):
        button.click(vote_with(label), inputs=vote_inputs, outputs=[*review_outputs, note, counts, *suspect_outputs])

    def undo(example_id: int | None, typed: str, chosen_queue: str, audit_path: str | None, request: gr.Request):
        name = _reviewer(request, typed)
        retracted = store.undo_last_vote(name)
        if retracted is None:
            gr.Info("You have no vote to undo.")
        shown = retracted.example_id if retracted else example_id
        return *_review_view(store, shown), _counts(store, name), *suspects_of(chosen_queue, audit_path, shown)

    undo_btn.click(undo, inputs=[current_id, reviewer_box, queue, audit_picker],
                   outputs=[*review_outputs, counts, *suspect_outputs])

    # -- browsing ------------------------------------------------------------------------------------
    filters = [split, current, original, reviewed, changed, disagree, flagged, search]

    def browse(*values):
        chosen = _browse_filter(*values)
        return *_browse_page(store, chosen, 0), chosen

    gr.on(None, browse, inputs=filters, outputs=[table, shown, page, browse_filter], trigger_mode="always_last")
    prev_btn.click(lambda f, p: _browse_page(store, f, p - 1), [browse_filter, page], [table, shown, page])
    next_btn.click(lambda f, p: _browse_page(store, f, p + 1), [browse_filter, page], [table, shown, page])

    def select_row(evt: gr.SelectData):
        example = store.example(int(evt.row_value[0]))
        return (example.id, example.text) if example else (None, "")

    table.select(select_row, outputs=[selected_id, full_text])

    def review_selected(example_id: int | None):
        if example_id is None:
            raise gr.Error("Select a row in the table first.")
        return *_review_view(store, example_id), gr.Tabs(selected="review")

    review_this.click(review_selected, inputs=[selected_id], outputs=[*review_outputs, tabs])

    # -- importing -----------------------------------------------------------------------------------
    def read(source_text: str, uploaded: str | None, text_col: str, label_col: str, split_name: str,
             progress=gr.Progress()):
        target = uploaded or (source_text or "").strip()
        if not target:
            raise gr.Error("Give a dataset id or path, or upload a file.")
        if not uploaded:
            target = studio.checked_reference(target)
        try:
            result = read_source(target, text_column=text_col.strip(), label_column=label_col.strip(),
                                 split=split_name.strip() or None,
                                 name=os.path.basename(uploaded) if uploaded else None,
                                 progress=lambda f, d: progress(f, desc=d))
        except SourceError as error:
            return (f"Cannot import:\n{error}", _frame(["raw label", "rows", "maps to"], []), None,
                    gr.Button(interactive=False))
        rows = [[value, count, label_name(result.proposed_mapping[value])]
                for value, count in result.label_counts.items()]
        tables = "\n".join(f"  {t.file}: {len(t.frame)} {t.unit}s" for t in result.tables)
        summary = (f"Read {result.source}: {result.n_rows} rows\n{tables}\n"
                   "Check the label mapping below, then import. Nothing has been written yet.")
        return summary, _frame(["raw label", "rows", "maps to"], rows), result, gr.Button(interactive=True)

    preview_btn.click(read, inputs=[source, upload, text_column, label_column, single_split],
                      outputs=[import_status, mapping, preview, import_btn])

    def write(result, mapping_table: pd.DataFrame, typed: str, request: gr.Request, progress=gr.Progress()):
        if result is None:
            raise gr.Error("Read a dataset first.")
        chosen = {str(raw): guess_label(str(target)) for raw, _, target in mapping_table.itertuples(index=False)}
        try:
            prepared = prepare(result, chosen, progress=lambda f, d: progress(f, desc=d))
        except SourceError as error:
            return f"Nothing was imported:\n{error}"
        done = store.import_examples(prepared, actor=_reviewer_name(request, typed) or "import",
                                     progress=lambda f, d: progress(f, desc=d))
        per_split = ", ".join(f"{s}: {c[BENIGN]} benign / {c[INJECTION]} injection"
                              for s, c in prepared.counts().items())
        return (f"Imported {done.source}: {done.added} new examples, {done.already_present} already in the store.\n"
                f"Dropped {done.duplicates} exact duplicate texts within the source "
                f"({done.conflicting_duplicates} of them with a different label; the first was kept).\n{per_split}")

    def after_import():
        return (gr.Dropdown(choices=[ALL_SPLITS, *store.splits()]), gr.Markdown(visible=demo_only(store)),
                gr.Button(interactive=False))

    import_btn.click(write, inputs=[preview, mapping, reviewer_box], outputs=[import_status]).then(
        after_import, outputs=[split, banner, import_btn]).then(
        browse, inputs=filters, outputs=[table, shown, page, browse_filter]).then(
        first_item, inputs=first_inputs, outputs=first_outputs)

    # -- reviewers, snapshots, page load ---------------------------------------------------------------
    reviewer_outputs = [reviewer_table, agreement, pairs, recent]
    gr.on([refresh_reviewers.click, reviewers_tab.select], lambda: _reviewers_view(store), outputs=reviewer_outputs)
    snapshots_tab.select(lambda chosen: _snapshots_view(store, chosen), inputs=[chosen_snapshot],
                         outputs=[snapshot_table, chosen_snapshot])

    def snapshot(typed: str, request: gr.Request):
        studio.require_admin(request, "create snapshots")
        made = store.create_snapshot(_reviewer_name(request, typed) or "anonymous")
        return (_snapshot_summary(made.manifest), [str(p) for p in made.files],
                *_snapshots_view(store, made.id))

    snapshot_btn.click(snapshot, inputs=[reviewer_box],
                       outputs=[snapshot_info, snapshot_files, snapshot_table, chosen_snapshot])

    def push(snapshot_id: str | None, repo_id: str, request: gr.Request):
        studio.require_admin(request, "push snapshots to the Hub")
        chosen = next((s for s in store.list_snapshots() if s.id == snapshot_id), None)
        if chosen is None or not (repo_id or "").strip():
            raise gr.Error("Choose a snapshot and a Hub dataset repo.")
        try:
            return f"Pushed {chosen.id} to {push_to_hub(chosen, repo_id.strip())}"
        except Exception as error:  # network and Hub errors all end up in front of the user the same way
            return f"Push failed: {type(error).__name__}: {error}"

    push_btn.click(push, inputs=[chosen_snapshot, hub_repo], outputs=[push_status])

    def overview():
        return (gr.Markdown(visible=demo_only(store)), gr.Dropdown(choices=[ALL_SPLITS, *store.splits()]),
                *_reviewers_view(store), *_snapshots_view(store))

    gr.on(None, overview, outputs=[banner, split, *reviewer_outputs, snapshot_table, chosen_snapshot])

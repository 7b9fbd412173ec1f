"""The Detect tab: a prompt (or many) scored by the base model and the fine-tuned one, side by side.

Thin: loading, scoring and tables live in serving/service.py and serving/batch_io.py. Every model event
shares one queue slot (``concurrency_id="detector"``, limit 1) on top of the service's lock.
The threshold only re-renders stored scores: moving it never calls the model.

API (gradio_client): ``/detect`` (text, detector, threshold) -> result dicts, streamed (scores and verdicts
first, then the answers as they grow);
``/detect_batch`` (lines, file, detector, threshold) -> (table, note); ``/detect_batch_csv``
(threshold) -> the last batch of this session as a CSV file; ``/detector_add`` (ref) offers an exported
detector (a folder inside the allowed ones, or a Hub repo id) under the key it returns in the Detector
choices (``export:<folder>`` / ``hub:<repo id>``). Every other event here is private.

Scores live on the server (gr.State, per session): what is sent to review, and the score recorded
with it, comes from there, never from what a browser sends back.

At a glance: each side's P(injection) as a labelled bar (gr.Label of the one class "injection", so the two sides'
bars line up; no heading, which would name the class whatever the slider says), the verdict at the current
threshold, the answer text as it is written, and one small note (time to the scores and to the answers,
truncation). A batch adds a histogram of P(injection)
with the threshold line (runner/charts.py). Loading a model and scoring show progress in the page.

User text is only ever shown in Textbox, JSON and Dataframe "str" cells, which render plain text; the one
Markdown element, the note, holds numbers only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pandas as pd

from curation.store import LabelStore
from runner import charts
from runner.views import TEST_COLUMNS
from serving.batch_io import (
    EXAMPLE_COLUMNS,
    BatchInputError,
    batch_texts,
    examples_table,
    verdict_table,
    write_session_csv,
)
from serving.service import RUN_PREFIX, DetectorChoice, DetectorService, ServingError, no_test_metrics, verdict
from ui.context import Studio, name_box, page_error, reviewer_name_state
from ui.endpoints import PRIVATE
from ui.widgets import SERIES_COLORS, drawn, filled, text_table

MODEL_EVENTS = {"concurrency_limit": 1, "concurrency_id": "detector"}
VIEW_EVENTS = {"concurrency_limit": 2, "concurrency_id": "detect_view", "trigger_mode": "always_last"}
"""Re-rendering stored scores: cheap, but bounded like any request a page can repeat at will."""
CSV_DIR = Path(gr.utils.get_upload_folder()) / "injection-studio-detect"
"""Inside Gradio's cache, so the file is served as it is (no second copy) and swept with the cache."""
SIDES = ("before", "after")
RESULT_BOXES = ("P(injection)", "Verdict", "Answer")
"""A side's results, each named with the side, e.g. "Verdict after": labelled bars, then two text boxes."""
BARS = "P(injection)"
NOTE_BOX = "Detection note"
"""The time to the scores and to the whole answers, and whether the prompt was cut to the model's length: numbers
only (a Markdown element)."""
NO_ADAPTER = "(no fine-tuned adapter: pick a run)"
NOT_LOADED = (
    "Nothing is loaded until you pick a detector or press Detect: loading a model takes seconds to minutes on a CPU."
)
METRIC_HEADERS = ["model", *TEST_COLUMNS]
BATCH_HEADERS = ["row", "text", "p_before", "verdict_before", "p_after", "verdict_after", "change", "truncated"]
METRICS_EMPTY = "Pick a detector to see its test metrics (a run's eval.json)."
BASE_METRICS_EMPTY = "A base model has no test metrics: pick a completed run to see a fine-tuned one's."
EXAMPLES_EMPTY = "Pick a detector: prompts from its test split appear here."
BATCH_EMPTY = "Score some prompts: their verdicts appear here, largest disagreement first."


def _choice_pairs(service: DetectorService) -> list[tuple[str, str]]:
    return [(c.label, c.key) for c in service.choices()]


def detector_summary(choice: DetectorChoice) -> str:
    if choice.exported is not None:
        return f"Loaded {choice.label}; the test metrics it was exported with are below."
    if choice.run is None:
        return (
            f"Loaded {choice.label}. Only the 'before' side is shown: pick a completed run to compare "
            "with a fine-tuned adapter."
        )
    return f"Loaded {choice.label}; its test metrics (eval.json) are below."


def one_prompt_view(result: dict, threshold: float) -> dict:
    """Each result's value by its name (per side: P(injection) as a bar {"injection": p} or None, the verdict at
    ``threshold``, the answer; then the note), from the stored result only."""
    values = {}
    for name in SIDES:
        side = result.get(name)
        if side is None:
            shown = {BARS: None, "Verdict": "", "Answer": NO_ADAPTER}
        else:
            p = side["p_injection"]
            shown = {BARS: {"injection": p}, "Verdict": verdict(p, threshold), "Answer": side["answer"]}
        values |= {f"{what} {name}": value for what, value in shown.items()}
    return values | {NOTE_BOX: detection_note(result)}


def at_threshold(name: str) -> bool:
    """Whether a one-prompt box shows something the threshold decides (the bars' label, the verdict)."""
    return name.startswith((BARS, "Verdict"))


def detection_note(result: dict) -> str:
    """How long the scores took (both sides come from one pass) and the answers, or that they are still being
    written; and a truncation warning when the prompt was cut."""
    note = f"Scored in {result['scored_ms']:.0f} ms; " + (
        "writing the answers…" if result["answering"] else f"answers in {result['answered_ms']:.0f} ms."
    )
    if result["truncated"]:
        note += f" The prompt was longer than the model's {result['max_length']} tokens: only its beginning was scored."
    return note


def bars_label(name: str, bars: dict | None, scored: bool) -> str:
    """A side's bar's label: its name, and what fills it while empty (a prompt, or, once a base model alone has
    scored one, a fine-tuned run)."""
    if bars is not None:
        return name
    return f"{name}: {'pick a fine-tuned run' if scored else 'press Detect'}"


def histogram_view(histogram: gr.LinePlot, scores: pd.DataFrame | None, threshold: float):
    """The batch's P(injection) histogram with the threshold line, from stored scores (gr.skip() before a
    batch)."""
    frame = charts.histogram_frame(scores, threshold)
    if frame is None:
        return gr.skip()
    return drawn(histogram, frame, charts.histogram_title(scores, threshold))


def batch_view(scores: pd.DataFrame | None, threshold: float):
    """The results table, rebuilt from stored scores at ``threshold``."""
    if scores is None:
        return gr.skip()
    return verdict_table(scores, threshold)


def loading_note(service: DetectorService, key: str | None) -> str:
    """What the wait is for: loading the detector (when another one is in memory), or scoring only."""
    return "scoring" if key and key == service.loaded_key else f"loading {key or 'the detector'}, then scoring"


def one_prompt_candidate(text: str, result: dict) -> dict:
    """What "send to review" sends for a prompt detected here: its text, the detector and P(injection) after."""
    after = result.get("after")
    return {"text": text, "detector": result["detector"], "p": after["p_injection"] if after else None}


def send_candidate(store: LabelStore, candidate: dict | None, reviewer: str | None, label: int | None) -> str:
    """Put the candidate's text in front of reviewers (new example, or a flag on the stored one) with
    ``label`` as this reviewer's vote (None: flag only), and record the run's P(injection) for it."""
    name = (reviewer or "").strip()
    if not name:
        raise ValueError("Type your name in the 'Your name' box first.")
    if not candidate:
        raise ValueError("Detect a prompt, or click a row of the batch results, first.")
    example_id = store.send_to_review(candidate["text"], name, label)
    if candidate["p"] is not None and candidate["detector"].startswith(RUN_PREFIX):
        store.record_scores(candidate["detector"].removeprefix(RUN_PREFIX), [(candidate["text"], candidate["p"])])
    how = {None: "flagged", 0: "labelled benign", 1: "labelled injection"}[label]
    return f"Example #{example_id} {how} by {name}; find it in Curate (Browse, 'Sent from Detect')."


def build(studio: Studio) -> None:
    """The Detect tab's components and events; call inside ``with gr.Tab("Detect"):``."""
    service = studio.detector
    gr.Markdown(
        "Type a prompt and compare the base model (**before**) with the fine-tuned detector (**after**). "
        "One model is loaded for everyone using this app: picking another detector switches it for all."
    )
    with gr.Row():
        detector = gr.Dropdown(
            _choice_pairs(service),
            value=service.loaded_key or service.default_key(),
            label="Detector",
            allow_custom_value=True,
            scale=4,
        )
        reload_btn = gr.Button("Reload run list", size="sm", scale=0)
        threshold = gr.Slider(
            0, 1, value=0.5, step=0.01, label="Threshold", info="P(injection) at or above it is an injection", scale=3
        )
    with gr.Row():
        exported_ref = gr.Textbox(
            label="Exported detector (folder or Hub id)",
            scale=4,
            elem_id="detect-exported",
            placeholder="a folder from Train → Export (unzipped), or owner/name on the Hub",
        )
        add_btn = gr.Button("Load exported detector (folder or Hub id)", size="sm", scale=1)
    status = gr.Textbox(label="Detector status", interactive=False, value=NOT_LOADED)
    with gr.Accordion("Test metrics of this run (eval.json)", open=True):
        metrics = text_table(headers=METRIC_HEADERS, empty=METRICS_EMPTY, elem_id="detect-metrics")

    with gr.Tabs():
        with gr.Tab("One prompt"):
            prompt = gr.Textbox(label="Prompt", lines=4, max_lines=12, placeholder="Type or paste a prompt")
            detect_btn = gr.Button("Detect", variant="primary")
            result_boxes = {}  # what one_prompt_view fills, by name
            with gr.Row():
                for name, title in zip(SIDES, ("Base model (before)", "Fine-tuned (after)")):
                    with gr.Column():
                        gr.Markdown(f"**{title}**")
                        bars = f"{BARS} {name}"
                        result_boxes[bars] = gr.Label(
                            label=bars_label(bars, None, scored=False),
                            show_heading=False,
                            elem_id=f"detect-bars-{name}",
                        )
                        result_boxes |= {
                            label: gr.Textbox(label=label, interactive=False, elem_id=f"detect-{what.lower()}-{name}")
                            for what in RESULT_BOXES[1:]
                            for label in [f"{what} {name}"]
                        }
            result_boxes[NOTE_BOX] = gr.Markdown(elem_id="detect-note")
            examples = text_table(
                label="Example prompts from the test split (click one to try it)",
                headers=EXAMPLE_COLUMNS,
                empty=EXAMPLES_EMPTY,
                wrap=True,
                max_height=400,
                elem_id="detect-examples",
            )
            example_texts = gr.State([])
            last = gr.State(None)
            with gr.Accordion("Result as the API returns it", open=False):
                result = gr.JSON(elem_id="detect-result")
        with gr.Tab("Many prompts"):
            pasted = gr.Textbox(label="Prompts, one per line", lines=6, max_lines=20)
            upload = gr.File(
                label="Prompts file (CSV, parquet or JSONL with a 'text' column)",
                file_types=[".csv", ".parquet", ".jsonl"],
                type="filepath",
                elem_id="detect-upload",
            )
            score_btn = gr.Button("Score all", variant="primary")
            batch_note = gr.Textbox(label="Batch status", interactive=False)
            histogram = gr.LinePlot(
                x=charts.P_INJECTION,
                y=charts.PROMPTS,
                color=charts.MODEL,
                color_map=SERIES_COLORS,
                x_lim=[0, 1],
                height=260,
                label="P(injection) histogram with the threshold line: drawn when you score prompts",
                elem_id="detect-histogram",
            )
            table = text_table(
                label="Batch results, largest disagreement first (click a row to send it to review)",
                headers=BATCH_HEADERS,
                empty=BATCH_EMPTY,
                wrap=True,
                max_height=600,
                elem_id="detect-results",
            )
            with gr.Row():
                export_btn = gr.Button("Export CSV", scale=0, elem_id="detect-export")
                csv_file = gr.File(label="CSV of the results (full text)", interactive=False, elem_id="detect-csv")
            scores = gr.State(None)

    with gr.Accordion("Send to review (adds the text to the label store, or flags it if already there)", open=True):
        review_text = gr.Textbox(label="Text to send", interactive=False, lines=3, max_lines=10)
        candidate = gr.State(None)
        saved_name = reviewer_name_state()
        with gr.Row():
            reviewer_box = gr.Textbox(label="Your name", max_length=100, scale=1)
            send_injection = gr.Button("Send as injection", variant="stop")
            send_benign = gr.Button("Send as benign")
            send_flag = gr.Button("Flag for review, no label")
        review_status = gr.Textbox(label="Send status", interactive=False)

    one_outputs = list(result_boxes.values())
    threshold_names = [name for name in result_boxes if at_threshold(name)]

    # -- the detector ------------------------------------------------------------------------------
    def offered_detectors(current: str | None = None):
        keys = [key for _, key in _choice_pairs(service)]
        value = current if current in keys else service.loaded_key or service.default_key()
        return gr.Dropdown(choices=_choice_pairs(service), value=value)

    def show_detector(key: str | None, progress=gr.Progress()):
        try:
            progress(0, desc=f"loading {key}" if key != service.loaded_key else "loaded")
            choice = service.load(key)
        except ServingError as exc:
            return {
                status: f"⚠ {exc}",
                metrics: filled(no_test_metrics(), METRICS_EMPTY),
                examples: filled(examples_table([]), EXAMPLES_EMPTY),
                example_texts: [],
            }
        try:
            progress(0.5, desc="scoring prompts from its test split to pick examples")
            picked, status_text = service.example_prompts(key), detector_summary(choice)
        except ServingError as exc:
            picked, status_text = [], f"{detector_summary(choice)} {exc}"
        return {
            status: status_text,
            metrics: filled(choice.test_metrics(), BASE_METRICS_EMPTY),
            examples: filled(examples_table(picked), EXAMPLES_EMPTY),
            example_texts: [e.text for e in picked],
            threshold: choice.threshold,
        }

    detector_outputs = [status, metrics, examples, example_texts, threshold]
    gr.on(None, offered_detectors, inputs=None, outputs=[detector], api_name="detector_choices", **PRIVATE)
    detector.input(
        show_detector, inputs=[detector], outputs=detector_outputs, api_name="detector_pick", **PRIVATE, **MODEL_EVENTS
    )
    reload_btn.click(
        offered_detectors, inputs=[detector], outputs=[detector], api_name="detector_reload_choices", **PRIVATE
    )

    def add_exported(ref: str, progress=gr.Progress()):
        """Offer an exported detector (a folder inside the allowed ones, or a Hub model repo) and pick it."""
        progress(0, desc="reading the export (a Hub repo is downloaded)")
        try:
            key = service.add_detector(studio.checked_reference(ref or ""))
        except ServingError as exc:
            raise page_error(exc) from None
        return gr.Dropdown(choices=_choice_pairs(service), value=key)

    add_btn.click(
        add_exported, inputs=[exported_ref], outputs=[detector], api_name="detector_add", **MODEL_EVENTS
    ).success(
        show_detector,
        inputs=[detector],
        outputs=detector_outputs,
        api_name="detector_load_added",
        **PRIVATE,
        **MODEL_EVENTS,
    )

    # -- one prompt --------------------------------------------------------------------------------
    def comparisons(text: str, detector: str, threshold: float) -> Iterator[dict]:
        try:
            for outcome in service.comparisons(detector, text):
                yield outcome.to_dict(threshold)
        except ServingError as exc:
            raise page_error(exc) from None

    def detect(text: str, detector: str, threshold: float) -> Iterator[dict]:
        """P(injection), verdict and short answer from the base model (before) and the fine-tuned detector
        (after; null for a base model alone) for one prompt, streamed as the model makes them: the first result
        comes right after the scoring pass ("answering": true, each answer its first token, "scored_ms"), the
        answers then grow a token at a time, and the last result is whole ("answering": false, "answered_ms")."""
        yield from comparisons(text, detector, threshold)

    gr.api(detect, api_name="detect", **MODEL_EVENTS)

    def result_view(outcome: dict, threshold: float, names: list[str] | None = None) -> dict:
        """The boxes named in ``names`` (all by default), filled from ``outcome`` at ``threshold``."""
        return {
            result_boxes[name]: gr.Label(value, label=bars_label(name, value, scored=True))
            if name.startswith(BARS)
            else value
            for name, value in one_prompt_view(outcome, threshold).items()
            if names is None or name in names
        }

    def detect_prompt(text: str, detector: str, threshold: float, progress=gr.Progress()):
        """The page's Detect: what /detect streams, shown as it comes (verdicts first, then the answers)."""
        progress(0, desc=loading_note(service, detector))
        names = None
        for outcome in comparisons(text, detector, threshold):
            stored = {"result": outcome, "candidate": one_prompt_candidate(text, outcome)}
            yield {result: outcome, last: stored, **result_view(outcome, threshold, names)} | {
                review_text: text,
                candidate: stored["candidate"],
            }
            names = [n for n in result_boxes if n not in threshold_names]  # the scores stay; the slider may move

    def rethreshold(stored: dict | None, threshold: float):
        return result_view(stored["result"], threshold, threshold_names) if stored else gr.skip()

    detect_btn.click(
        detect_prompt,
        inputs=[prompt, detector, threshold],
        outputs=[result, last, *one_outputs, review_text, candidate],
        api_name="detect_prompt",
        **PRIVATE,
        **MODEL_EVENTS,
    )
    threshold.change(
        rethreshold,
        inputs=[last, threshold],
        outputs=[result_boxes[name] for name in threshold_names],
        api_name="detect_rethreshold",
        **PRIVATE,
        **VIEW_EVENTS,
    )

    def example_text(texts: list[str], evt: gr.SelectData):
        return texts[int(evt.row_value[0])] if texts else gr.skip()  # the empty table's note is no example

    examples.select(example_text, inputs=[example_texts], outputs=[prompt], api_name="detect_example", **PRIVATE)

    # -- many prompts ------------------------------------------------------------------------------
    def detect_batch(lines: str, file: str | None, detector: str, threshold: float, progress=gr.Progress()):
        """P(injection) and verdicts from both models for many prompts (pasted lines and/or a CSV,
        parquet or JSONL file with a 'text' column): the table (largest disagreement first, text cut
        to 300 characters, 'row' = input position) and a note. /detect_batch_csv then writes its CSV."""
        try:
            texts, read_note = batch_texts(lines, file)
            progress(0, desc=f"{loading_note(service, detector)} {len(texts)} prompts")
            scored = service.score_batch(
                detector, texts, progress=lambda done, total: progress(done / total, desc=f"{done}/{total} prompts")
            )
        except (BatchInputError, ServingError) as exc:
            raise page_error(exc) from None
        return {table: batch_view(scored, threshold), batch_note: f"Scored {read_note}.", scores: scored}

    def batch_shown(stored: pd.DataFrame | None, threshold: float):
        """The batch's table and histogram at ``threshold``, from stored scores."""
        return {table: batch_view(stored, threshold), histogram: batch_histogram(stored, threshold)}

    def batch_histogram(stored: pd.DataFrame | None, threshold: float):
        return histogram_view(histogram, stored, threshold)

    def export_csv(stored: pd.DataFrame | None, threshold: float, request: gr.Request) -> str:
        """This session's last batch at ``threshold`` as a CSV file (full text, formulas escaped); the
        session's previous CSV is replaced."""
        if stored is None:
            raise page_error("Score some prompts first.")
        table_now = verdict_table(stored, threshold, text_chars=None)
        return str(write_session_csv(table_now, CSV_DIR, request.session_hash or "no-session"))

    def batch_candidate(stored: pd.DataFrame | None, evt: gr.SelectData):
        if stored is None:
            return gr.skip()
        row = int(evt.row_value[0])
        text = stored.at[row, "text"]
        p = float(stored.at[row, "p_after"]) if "p_after" in stored else None
        return {review_text: text, candidate: {"text": text, "detector": stored.attrs["detector"], "p": p}}

    score_btn.click(
        detect_batch,
        inputs=[pasted, upload, detector, threshold],
        outputs=[table, batch_note, scores],
        api_name="detect_batch",
        **MODEL_EVENTS,
    ).success(batch_histogram, inputs=[scores, threshold], outputs=[histogram], api_name="detect_histogram", **PRIVATE)
    score_btn.click(None, None, csv_file, js="() => null")  # the last batch's CSV link goes: in the page alone
    export_btn.click(
        export_csv,
        inputs=[scores, threshold],
        outputs=[csv_file],
        api_name="detect_batch_csv",
        concurrency_limit=2,
        concurrency_id="detect_csv",
    )
    threshold.change(
        batch_shown,
        inputs=[scores, threshold],
        outputs=[table, histogram],
        api_name="detect_batch_rethreshold",
        **PRIVATE,
        **VIEW_EVENTS,
    )
    table.select(
        batch_candidate, inputs=[scores], outputs=[review_text, candidate], api_name="detect_pick_row", **PRIVATE
    )

    # -- send to review ----------------------------------------------------------------------------
    def send(label: int | None):
        def sender(chosen: dict | None, typed: str, request: gr.Request) -> str:
            try:
                return send_candidate(studio.store, chosen, getattr(request, "username", None) or typed, label)
            except ValueError as exc:
                raise page_error(exc) from None

        return sender

    for button, label, name in (
        (send_injection, 1, "injection"),
        (send_benign, 0, "benign"),
        (send_flag, None, "flag"),
    ):
        button.click(
            send(label), inputs=[candidate, reviewer_box], outputs=[review_status], api_name=f"send_{name}", **PRIVATE
        )

    def identify(saved: str, request: gr.Request):
        return name_box(saved, request)

    gr.on(None, identify, inputs=[saved_name], outputs=[reviewer_box], api_name="detect_identify", **PRIVATE)
    gr.on(
        [reviewer_box.submit, reviewer_box.blur],
        lambda typed: (typed or "").strip(),
        inputs=[reviewer_box],
        outputs=[saved_name],
        api_name="detect_remember_name",
        **PRIVATE,
    )

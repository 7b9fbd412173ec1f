"""The live detector behind the Detect tab and its API: pick a run or a base model, score prompts.

- One model in memory. A run's base model and its LoRA adapter are one loaded
  model: "before" is the same model inside ``disable_adapter()``. Loading
  another detector first drops the one in hand (and empties the CUDA cache), so
  the process never holds two copies.
- One request at a time. A lock serialises loading and scoring: every visitor
  and API client shares the one model, and a switch cannot happen mid-batch.
- Long inputs are clipped before tokenising (see ``clip_to_model``): a 1 MB
  paste costs a few hundred tokens' worth of work and scores exactly as the
  full text would.
- Detectors are chosen by key, from the list this module builds: a completed
  run (``run:<run_id>``, a folder under ``runs_dir``), a base preset
  (``base:<preset>``), or an exported detector added by an explicit
  ``add_detector`` call once the caller has confined its path
  (``export:<folder>``, ``hub:<repo id>``; see ft/exported.py). Nothing else
  reaches the loader, so a key can never name an arbitrary path.

No Gradio here; ``ui/detect.py`` is a thin page over ``DetectorService``.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import gc
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd
from huggingface_hub import is_offline_mode
from safetensors import safe_open

from ft import data, models
from ft.config import PRESETS, ConfigError, TrainConfig, default_preset
from ft.detector import Detector, Scored, ScoredPair, load_detector
from ft.exported import ExportedError, described_config, download, load_exported, read_description
from ft.lazy import lazy
from ft.paths import SHARED
from ft.run_dir import RunDir, recorded_threshold
from runner.catalog import RunInfo, completed_training_runs, list_runs
from runner.views import metrics_frame

torch = lazy("torch")

RUN_PREFIX, BASE_PREFIX, EXPORT_PREFIX, HUB_PREFIX = "run:", "base:", "export:", "hub:"
BASE_PRESETS = tuple(PRESETS)
ANSWER_TOKENS = 8
MAX_PROMPT_CHARS = 2_000_000
EXAMPLE_SAMPLE_ROWS = 48
# A token never spans more characters than this (Qwen2.5's longest is 128), so the first
# (n + slack) * MAX_TOKEN_CHARS characters of a text always hold its first n + slack tokens.
MAX_TOKEN_CHARS = 128
CLIP_SLACK_TOKENS = 64

Progress = Callable[[int, int], None]
T = TypeVar("T")
MODEL_THREAD = "detector-model"


class ServingError(ValueError):
    """A detector cannot be chosen, loaded or used; the message is written for the page."""


class _Abandoned(Exception):
    """The reader of ``DetectorService.comparisons`` has gone: the rest of the answers is not worth the model."""


class EmptyInput(ServingError):
    """Nothing to score: no model call is made."""


def default_example_data() -> str:
    """Where a base model alone takes its example prompts from: the offline copy, else the Hub dataset."""
    shared = SHARED / "data" / "safe-guard"
    return str(shared) if shared.is_dir() else "xTRam1/safe-guard-prompt-injection"


@dataclass(frozen=True)
class DetectorChoice:
    """A detector the page can offer; ``config`` says how to load it and where its test split is."""

    key: str
    label: str
    config: TrainConfig
    run: RunDir | None = None
    exported: Path | None = None
    """The folder of an exported detector (ft/exported.py), a Hub repo's once downloaded."""
    exported_metrics: dict | None = None
    missing: str | None = None
    """Why a base model is not on this machine (it then needs the Hub), or None."""

    @property
    def threshold(self) -> float:
        """The detector's own threshold: chosen on its run's validation split (eval.json, or an export's copy of
        it); the config's for a base model or an older run."""
        report = self.run.read_eval() if self.run is not None else self.exported_metrics
        return recorded_threshold(report, self.config.threshold)

    def test_metrics(self) -> pd.DataFrame:
        """The before/after test metrics (a run's eval.json, an export's copy of it) as the Train tab shows them;
        no rows for a base model."""
        report = self.run.read_eval() if self.run is not None else self.exported_metrics
        return metrics_frame(report or {})


def no_test_metrics() -> pd.DataFrame:
    return metrics_frame({})


def run_choice(info: RunInfo) -> DetectorChoice | None:
    """The run as a choice, from its config as listed; None when config.yaml is unreadable or unusable (the run
    is then not offered)."""
    if not info.config:
        return None
    try:
        config = TrainConfig.from_dict(info.config)
    except ConfigError:
        return None
    return DetectorChoice(RUN_PREFIX + info.run_id, f"run {info.run_id} ({config.model}, fine-tuned)", config, info.dir)


def base_choice(preset: str, example_data: str) -> DetectorChoice:
    """A base preset as a choice, its label saying where it would come from when it is not on this machine."""
    config = TrainConfig(model=preset, tokenizer=models.default_tokenizer(preset), data=example_data)
    missing = models.missing_offline(preset)
    where = (
        ""
        if missing is None
        else (" · not on this machine" if is_offline_mode() else " · downloads from the Hub on first use")
    )
    return DetectorChoice(BASE_PREFIX + preset, f"base model {preset} (no fine-tuning){where}", config, missing=missing)


def exported_choice(key: str, folder: Path, shown_as: str) -> DetectorChoice:
    """An exported detector's folder as a choice; ServingError when it is not one."""
    try:
        described = read_description(folder)
        config = described_config(described)
    except ExportedError as exc:
        raise ServingError(str(exc)) from None
    how = (
        "merged: one model, with no adapter to switch off, so it shows as 'before'"
        if described["kind"] == "merged"
        else "adapter on its base"
    )
    return DetectorChoice(
        key,
        f"exported {shown_as} ({config.model}, {how})",
        config,
        exported=folder,
        exported_metrics=described.get("test_metrics"),
    )


def check_adapter(run: RunDir) -> None:
    """Raise ServingError naming the problem when the run's adapter files are missing or unreadable."""
    config_file, weights = run.adapter / "adapter_config.json", run.adapter / "adapter_model.safetensors"
    for needed in (config_file, weights):
        if not needed.is_file():
            raise ServingError(f"Run {run.run_id} cannot be used: its adapter file {needed.name} is missing.")
    try:
        json.loads(config_file.read_text(encoding="utf-8"))
        with safe_open(str(weights), framework="pt") as opened:
            opened.keys()
    except Exception as exc:  # json, UTF-8 and safetensors each raise their own types
        raise ServingError(
            f"Run {run.run_id} cannot be used: its adapter is corrupt ({type(exc).__name__}: {exc})."
        ) from None


def loaded(label: str, load: Callable[[], Detector]) -> Detector:
    """``load()``, or ServingError "Cannot load <label>: <the first line of why>"."""
    try:
        return load()
    except Exception as exc:  # from_pretrained and PEFT raise many types for a missing or bad checkpoint
        first_line = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ServingError(f"Cannot load {label}: {first_line}") from None


def checked_prompt(text: str | None) -> str:
    """The text to score, or EmptyInput / ServingError with a message for the page."""
    if text is None or not text.strip():
        raise EmptyInput("Type or paste a prompt first.")
    if len(text) > MAX_PROMPT_CHARS:
        raise ServingError(f"The prompt is {len(text):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    return text


def clip_to_model(tokenizer, text: str, max_length: int) -> str:
    """The head of ``text`` that still holds more tokens than the model sees, cut at a token boundary.

    The detector keeps an over-long query's first tokens and drops the rest. Tokenising all of a
    1 MB paste takes seconds per side; tokenising only a window that surely holds the kept tokens
    (plus slack) and cutting there gives the same token ids, hence the same score and the same
    ``truncated`` flag.
    """
    keep = max_length + CLIP_SLACK_TOKENS
    window = keep * MAX_TOKEN_CHARS
    if len(text) <= window:
        return text
    head = text[:window]
    offsets = tokenizer(head, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return head[: offsets[keep][0]] if len(offsets) > keep else head


@dataclass(frozen=True)
class Side:
    """One model's view of one prompt: P(injection) and its short greedy answer (so far)."""

    p_injection: float
    answer: str


def verdict(p_injection: float, threshold: float) -> str:
    return "injection" if p_injection >= threshold else "benign"


@dataclass(frozen=True)
class Comparison:
    """Base ("before") and fine-tuned ("after", None for a base model alone) on one prompt, from one pass.

    ``scored_ms``: from the start of the pass to both sides' scores. While ``answered_ms`` is None the answers
    are still being written (each holds the tokens so far); then it is the time to the whole answers.
    """

    detector: str
    before: Side
    after: Side | None
    truncated: bool
    max_length: int
    scored_ms: float
    answered_ms: float | None = None

    def to_dict(self, threshold: float) -> dict:
        """The JSON the page and the API return; verdicts at ``threshold``."""

        def side(s: Side | None):
            if s is None:
                return None
            return {"p_injection": s.p_injection, "verdict": verdict(s.p_injection, threshold), "answer": s.answer}

        return {
            "detector": self.detector,
            "threshold": threshold,
            "truncated": self.truncated,
            "max_length": self.max_length,
            "answering": self.answered_ms is None,
            "scored_ms": round(self.scored_ms, 1),
            "answered_ms": None if self.answered_ms is None else round(self.answered_ms, 1),
            "before": side(self.before),
            "after": side(self.after),
        }


def comparison(key: str, pair: ScoredPair, max_length: int, scored_ms: float, answered_ms: float | None) -> Comparison:
    before, after = pair
    return Comparison(
        detector=key,
        before=Side(before.p_injection, before.answer or ""),
        after=Side(after.p_injection, after.answer or "") if after else None,
        truncated=before.truncated,
        max_length=max_length,
        scored_ms=scored_ms,
        answered_ms=answered_ms,
    )


@dataclass(frozen=True)
class ExamplePrompt:
    """A test-split prompt worth trying, with why it was picked."""

    kind: str
    label: int
    text: str


@dataclass
class _Loaded:
    choice: DetectorChoice
    detector: Detector
    examples: list[ExamplePrompt] | None = None


class DetectorService:
    """The one loaded detector of this process, shared by every request; thread-safe."""

    def __init__(
        self, runs_dir: str | Path, example_data: str | None = None, training_here: Callable[[], bool] = lambda: False
    ):
        self.runs_dir = Path(runs_dir)
        self.example_data = example_data or default_example_data()
        self._training_here = training_here
        self._lock = threading.RLock()
        self._loaded: _Loaded | None = None
        self._added: dict[str, DetectorChoice] = {}
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=MODEL_THREAD)

    def _on_model_thread(self, work: Callable[[], T]) -> T:
        """``work()`` on the service's one model thread, under the model lock (directly when already there).

        All of the app's torch work runs in this one thread: GNU OpenMP keeps a team of worker threads per
        calling thread, and once the process holds more of them than it has cores it throttles their spinning
        to almost nothing, so every small op of a one-prompt pass waits for sleeping threads to wake (measured:
        ~300 ms a Detect call from request threads against ~180 ms from one thread). The caller's context
        variables go along, so Gradio's progress bar still reaches its page.
        """
        if threading.current_thread().name.startswith(MODEL_THREAD):
            with self._lock:
                return work()
        return self._model_thread.submit(contextvars.copy_context().run, self._under_lock, work).result()

    def _under_lock(self, work: Callable[[], T]) -> T:
        """``work()`` under the model lock with this moment's torch thread count (run on the model thread)."""
        with self._lock:
            torch.set_num_threads(self._model_threads())
            return work()

    def _model_threads(self) -> int:
        """Torch threads for the next piece of model work: one while a run of this app trains, else all.

        A run's OpenMP team holds every core; a two-thread team beside it waits at each op's barrier for a
        thread the run has preempted, so a Detect call took 2.9x its idle time (bench/share_bench.py).
        """
        all_threads = self._all_threads  # read before the first set_num_threads, whatever this call returns
        return 1 if self._training_here() else all_threads

    @functools.cached_property
    def _all_threads(self) -> int:
        """Torch's thread count before this service first changed it (read at the first model work, so that
        building the app imports no torch)."""
        return torch.get_num_threads()

    # -- what can be picked ------------------------------------------------------------------------

    def choices(self) -> list[DetectorChoice]:
        """Completed runs (newest first), the exported detectors added, then the base presets."""
        runs = [
            c for c in (run_choice(info) for info in completed_training_runs(list_runs(self.runs_dir))) if c is not None
        ]
        bases = [base_choice(p, self.example_data) for p in BASE_PRESETS]
        return runs + list(self._added.values()) + bases

    def choice(self, key: str | None) -> DetectorChoice:
        for offered in self.choices():
            if offered.key == key:
                return offered
        raise ServingError(f"No detector {key!r}: pick a completed run or a base model.")

    def default_key(self) -> str:
        """The newest completed run, else the base model this machine trains by default (default_preset)."""
        runs = [c.key for c in self.choices() if c.run is not None]
        return runs[0] if runs else BASE_PREFIX + default_preset()

    def _works_here(self, but: str) -> str:
        """The labels of the other choices that load on this machine, for an error message."""
        return "; ".join(c.label for c in self.choices() if c.key != but and c.missing is None)

    def add_detector(self, ref: str) -> str:
        """Offer an exported detector from now on, for every user; its key.

        ``ref`` is an absolute folder path that the caller has already confined to the allowed folders
        (``export:<folder>``), or a Hub model repo id, downloaded here (``hub:<repo id>``). The folder must
        hold a detector.json: nothing is loaded until the key is picked.
        """
        if Path(ref).is_absolute():
            key, folder = EXPORT_PREFIX + ref, Path(ref)
        else:
            key = HUB_PREFIX + ref
            try:
                folder = download(ref)
            except ExportedError as exc:
                raise ServingError(str(exc)) from None
        choice = exported_choice(key, folder, Path(ref).name if folder == Path(ref) else ref)
        with self._lock:
            self._added[key] = choice
        return key

    @property
    def loaded_key(self) -> str | None:
        loaded = self._loaded
        return loaded.choice.key if loaded else None

    # -- loading -----------------------------------------------------------------------------------

    def load(self, key: str | None) -> DetectorChoice:
        """Make ``key`` the loaded detector (a no-op when it already is); the previous one is freed first."""
        return self._on_model_thread(lambda: self._ensure(key).choice)

    def unload(self) -> None:
        """Drop the model and give its memory back (CUDA included)."""
        with self._lock:
            self._loaded = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def exclusively(self, work: Callable[[], T]) -> T:
        """``work()`` with no model loaded, on the model thread, for work that loads models of its own (Compare
        runs, a merged export): the process then never holds two models, such work waits its turn like any
        request, and its torch ops run on the one thread whose OpenMP team the app keeps."""

        def unloaded() -> T:
            self.unload()
            return work()

        return self._on_model_thread(unloaded)

    def _ensure(self, key: str | None) -> _Loaded:
        if self._loaded is not None and self._loaded.choice.key == key:
            return self._loaded
        choice = self.choice(key)
        if choice.run is not None:
            check_adapter(choice.run)
        if choice.missing is not None and is_offline_mode():
            raise ServingError(
                f"Cannot load base model {choice.config.model}: {choice.missing} and the Hub is off "
                f"(HF_HUB_OFFLINE). Works here: {self._works_here(choice.key)}."
            )
        self.unload()
        try:
            detector = self._load_detector(choice)
        except ServingError as exc:
            if choice.run is not None or choice.exported is not None:
                raise
            raise ServingError(f"{exc} Works here: {self._works_here(choice.key)}.") from None
        self._loaded = _Loaded(choice, detector)
        return self._loaded

    @staticmethod
    def _load_detector(choice: DetectorChoice) -> Detector:
        if choice.exported is not None:
            return loaded(choice.label, lambda: load_exported(choice.exported))
        return loaded(
            choice.label, lambda: load_detector(choice.config, choice.run.adapter if choice.run is not None else None)
        )

    # -- scoring -----------------------------------------------------------------------------------

    def compare(self, key: str | None, text: str | None, max_new_tokens: int = ANSWER_TOKENS) -> Comparison:
        """Both sides' P(injection) and whole answer for one prompt (no model call for empty text)."""
        return collections.deque(self.comparisons(key, text, max_new_tokens), maxlen=1)[0]

    def comparisons(
        self, key: str | None, text: str | None, max_new_tokens: int = ANSWER_TOKENS
    ) -> Iterator[Comparison]:
        """``compare``'s result as the pass makes it: first the scores and verdicts (each answer its first token),
        then the answers after every token, last the whole (``answered_ms`` set). The scores come after the
        scoring pass alone; each answer token is one more pass of both sides. A reader that stops early (a client
        gone) stops the answers at the next token, so the next request does not wait for them."""
        text = checked_prompt(text)
        if threading.current_thread().name.startswith(MODEL_THREAD):
            steps: list[Comparison] = []
            self._on_model_thread(lambda: self._answered_prompt(key, text, max_new_tokens, steps.append))
            yield from steps
            return
        made: queue.SimpleQueue[Comparison | None] = queue.SimpleQueue()
        abandoned = threading.Event()

        def hand_over(step: Comparison) -> None:
            if abandoned.is_set():
                raise _Abandoned
            made.put(step)

        def answering() -> None:
            with contextlib.suppress(_Abandoned):
                self._answered_prompt(key, text, max_new_tokens, hand_over)

        finished = self._model_thread.submit(contextvars.copy_context().run, self._under_lock, answering)
        finished.add_done_callback(lambda _: made.put(None))
        try:
            while (step := made.get()) is not None:
                yield step
        finally:
            abandoned.set()
        finished.result()

    def _answered_prompt(
        self, key: str | None, text: str, max_new_tokens: int, each: Callable[[Comparison], None]
    ) -> None:
        """Hand ``each`` the Comparison for one prompt after the scoring pass and after every answer token, then
        the whole one."""
        loaded = self._ensure(key)
        detector, started, scored_ms = loaded.detector, time.perf_counter(), []
        clipped = clip_to_model(detector.tokenizer, text, detector.max_length)

        def step(pair: ScoredPair) -> None:
            scored_ms[:1] = scored_ms[:1] or [(time.perf_counter() - started) * 1000]
            each(comparison(loaded.choice.key, pair, detector.max_length, scored_ms[0], None))

        pair = detector.answered_pair(clipped, max_new_tokens=max_new_tokens, each_step=step)
        answered_ms = (time.perf_counter() - started) * 1000
        each(comparison(loaded.choice.key, pair, detector.max_length, scored_ms[0], answered_ms))

    def score_batch(self, key: str | None, texts: list[str], progress: Progress | None = None) -> pd.DataFrame:
        """Columns text, p_before, p_after (only with an adapter), truncated; in input order;
        ``attrs["detector"]`` is the key of the detector that scored them.

        Scores only (no answers). The lock is held for the whole batch so that the
        detector cannot change under it; ``progress(done, total)`` is called per chunk.
        """
        if not texts:
            raise EmptyInput("No prompts to score: paste some lines or upload a file with a 'text' column.")
        return self._on_model_thread(lambda: self._scored_batch(key, texts, progress))

    def _scored_batch(self, key: str | None, texts: list[str], progress: Progress | None) -> pd.DataFrame:
        loaded = self._ensure(key)
        detector = loaded.detector
        clipped = [clip_to_model(detector.tokenizer, t, detector.max_length) for t in texts]
        before: list[Scored] = []
        after: list[Scored] = []
        step = detector.batch_size * 4
        for start in range(0, len(clipped), step):
            before_chunk, after_chunk = detector.score_both(clipped[start : start + step])
            before += before_chunk
            after += after_chunk or []
            if progress:
                progress(min(start + step, len(clipped)), len(clipped))
        frame = pd.DataFrame({"text": list(texts), "p_before": [s.p_injection for s in before]})
        if after:
            frame["p_after"] = [s.p_injection for s in after]
        frame["truncated"] = [s.truncated for s in before]
        frame.attrs["detector"] = loaded.choice.key
        return frame

    def example_prompts(self, key: str | None, per_kind: int = 3) -> list[ExamplePrompt]:
        """Test-split prompts to try, picked by scoring a sample: ones the base model gets wrong,
        borderline ones, clear ones. Computed once per loaded detector."""
        return self._on_model_thread(lambda: self._example_prompts(key, per_kind))

    def _example_prompts(self, key: str | None, per_kind: int) -> list[ExamplePrompt]:
        loaded = self._ensure(key)
        if loaded.examples is None:
            config = loaded.choice.config
            sample = sample_of_test_split(config, EXAMPLE_SAMPLE_ROWS)
            scored = self.score_batch(key, sample["text"].tolist())
            scored["label"] = sample["label"].to_numpy()
            loaded.examples = pick_examples(scored, loaded.choice.threshold, per_kind)
        return loaded.examples


def sample_of_test_split(config: TrainConfig, n: int) -> pd.DataFrame:
    """``n`` rows (text, label) drawn with the config's seed from its data's test split."""
    try:
        rows = data.read_split(config.data, config.test_split, max_rows=n, seed=config.seed, **config.columns())
        return rows.reset_index(drop=True)
    except data.DataError as exc:
        raise ServingError(f"No example prompts: {exc}") from None


def pick_examples(scored: pd.DataFrame, threshold: float, per_kind: int) -> list[ExamplePrompt]:
    """From rows (text, label, p_before[, p_after]): up to ``per_kind`` of each kind, no row twice.

    - "base model wrong": the base verdict disagrees with the label; those the
      fine-tuned model gets right first, then the base model's most confident.
    - "borderline": the detector's P (after if there is one) closest to the threshold.
    - "clear": the detector right and most confident.
    """
    p = scored["p_after"] if "p_after" in scored else scored["p_before"]
    base_wrong = (scored["p_before"] >= threshold).astype(int) != scored["label"]
    right = (p >= threshold).astype(int) == scored["label"]
    picked: list[int] = []

    def take(kind_mask: pd.Series, order: pd.Series) -> list[int]:
        candidates = order[kind_mask & ~scored.index.isin(picked)].sort_values(kind="stable")
        chosen = candidates.index[:per_kind].tolist()
        picked.extend(chosen)
        return chosen

    kinds = [
        ("base model wrong", take(base_wrong, -(right.astype(float) + (scored["p_before"] - threshold).abs()))),
        ("borderline", take(pd.Series(True, index=scored.index), (p - threshold).abs())),
        ("clear", take(right, -(p - threshold).abs())),
    ]
    return [ExamplePrompt(kind, int(scored.at[i, "label"]), scored.at[i, "text"]) for kind, rows in kinds for i in rows]

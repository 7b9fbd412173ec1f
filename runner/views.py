"""What the Train tab shows of runs, as plain DataFrames and strings built from their files. No Gradio.

Every text that can come from the data (validation rows, answers) or from a run's output (errors, logs)
stays a cell or a string for a plain-text component; errors and logs go through ``runner.secrets.redact``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from ft.run_dir import TERMINAL, RunDir
from runner.catalog import RunInfo
from runner.secrets import redact

RUN_COLUMNS = ["run", "name", "model", "data", "status", "step", "best val F1", "started", "duration"]
CURVE_COLUMNS = {"loss": "loss", "learning_rate": "learning rate"}
EVALUATION_COLUMNS = ["step", "epoch", "accuracy", "precision", "recall", "f1", "roc_auc", "answer_parse_rate"]
TEST_COLUMNS = [
    "n",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "recall_at_1pct_fpr",
    "answer_parse_rate",
    "answer_accuracy",
]
TEST_SIDES = ("before", "after", "length_baseline")
"""The rows of a test report: the base model, the fine-tuned one, and a rule on text length alone (ft/metrics.py)."""
TEST_SPLIT = "test split"
"""The name eval.json's report goes by beside the evaluations on other data."""
EVAL_METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc", "recall_at_1pct_fpr", "brier", "ece"]
EVALS_COLUMNS = ["eval", "data", "split", "n", "model", *EVAL_METRICS]
EVAL_GROUP_COLUMNS = ["eval", "column", "group", "n", "model", *EVAL_METRICS, "flagged"]
PREDICTION_COLUMNS = ["text", "label", "before answer", "before P(injection)", "after answer", "after P(injection)"]
SOURCE_COLUMN = "source"
"""Shown after ``label`` in the prediction tables when the run's data names each row's source."""


def clock(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def span(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s`` or ``42s``; empty when unknown."""
    if seconds is None or seconds < 0:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def data_name(ref: str) -> str:
    """A snapshot as ``snapshot <id>``, a path by its last part, a Hub id as it is."""
    path = Path(ref)
    if path.parent.name == "snapshots":
        return f"snapshot {path.name}"
    return path.name if path.is_absolute() else ref


def status_text(info: RunInfo) -> str:
    return f"queued (#{info.queue_position})" if info.queue_position else info.status


def best_f1(info: RunInfo) -> str:
    """The best validation F1 over the run's prediction tables, with its step."""
    best = best_validation(info)
    return f"{best['f1']:.3f} @ {best['step']}" if best else ""


def run_name(info: RunInfo) -> str:
    """The run's name; a label audit's says so, with its method once it has started."""
    if info.kind != "audit":
        return info.name
    return f"{info.name} [label audit{', ' + info.state['method'] if info.state.get('method') else ''}]"


def duration(info: RunInfo, now: float | None = None) -> float | None:
    started = info.state.get("started")
    if not started or info.status == "queued":
        return None
    ended = info.state.get("ended") if info.status != "running" else None
    return (ended or now or time.time()) - started


def runs_frame(runs: list[RunInfo], now: float | None = None) -> pd.DataFrame:
    rows = []
    for r in runs:
        step, total = r.state.get("step"), r.state.get("total_steps")
        rows.append(
            [
                r.run_id,
                run_name(r),
                r.model,
                data_name(r.data),
                status_text(r),
                f"{step}/{total}" if total else "" if step is None else str(step),
                best_f1(r),
                clock(r.state.get("started")),
                span(duration(r, now)),
            ]
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS, dtype=str)


def completed_times(runs: list[RunInfo]) -> dict[str, list[tuple[float, RunInfo]]]:
    """The completed training runs' time from start to end (state.json), by model, latest first."""
    times: dict[str, list[tuple[float, RunInfo]]] = {}
    done = [r for r in runs if r.kind == "train" and r.status == "completed" and r.state.get("ended")]
    for info in sorted(done, key=lambda r: r.state["ended"], reverse=True):
        if info.state.get("started"):
            times.setdefault(info.model, []).append((info.state["ended"] - info.state["started"], info))
    return times


def time_note(runs: list[RunInfo], machine: str, cores: int, models: list[str]) -> str:
    """What a run of each of ``models`` (and of any model run here) took on this machine: the last completed
    run's time, with how many there were and its steps; "none completed here yet" where none has. ``machine``
    says what the CPU does with bf16 (ft.machine), so a reader knows what the times hold for."""
    times = completed_times(runs)
    parts = []
    for model in dict.fromkeys([*models, *times]):
        found = times.get(model)
        if not found:
            parts.append(f"{model}: none completed here yet")
            continue
        seconds, last = found[0]
        steps = last.state.get("total_steps") or last.state.get("step")
        parts.append(f"{model}: {span(seconds)} (the last of {len(found)} completed run(s), {steps} steps)")
    return (
        f"Run times on this machine ({cores} core(s); {machine}): {'; '.join(parts)}. "
        "A running run's progress bar shows its ETA, from its own pace."
    )


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    eta_s: float | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0

    @property
    def text(self) -> str:
        eta = f" · ETA {span(self.eta_s)}" if self.eta_s is not None else ""
        return f"step {self.step}/{self.total or '?'} · {self.fraction:.0%}{eta}"


def progress(info: RunInfo, now: float | None = None) -> Progress:
    """Step, total and the time left at the pace since the process (re)started."""
    step, total = int(info.state.get("step") or 0), int(info.state.get("total_steps") or 0)
    eta = None
    started, done = info.state.get("started"), step - int(info.job.get("start_step") or 0)
    if info.status == "running" and started and total and done > 0:
        eta = (total - step) * ((now or time.time()) - started) / done
    return Progress(step, total, eta)


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time (-1, -1 when missing): a file written again may keep its size."""
    try:
        stat = path.stat()
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def part_versions(info: RunInfo) -> dict[str, tuple]:
    """What each part of the run's panel (``PANEL_PARTS``) is drawn from, as file sizes and times: a part is sent
    again only when its version changes, so a refresh redraws nothing whose files did not change."""
    evals = sorted(info.dir.evals.glob("*.json")) if info.dir.evals.is_dir() else []
    return {
        "training": (_stamp(info.dir.metrics),),
        "predictions": tuple(info.dir.prediction_steps()),
        "log": (info.status, _stamp(info.dir.log)),
        "evaluations": (_stamp(info.dir.eval), *((p.name, _stamp(p)) for p in evals)),
    }


PANEL_PARTS = ("training", "predictions", "log", "evaluations")
"""training: the loss and learning-rate curves and the validation table (metrics.jsonl); predictions: the
prediction tables; log: the log tail; evaluations: the test split's and other datasets' tables and charts."""


def changed_parts(shown: dict | None, now: dict[str, tuple]) -> list[str]:
    """The parts whose version differs from the one shown (every part when nothing is shown)."""
    return [part for part in PANEL_PARTS if (shown or {}).get(part) != now[part]]


def evaluation_names(run: RunDir) -> list[str]:
    """The evaluations the charts can show: the test split (once eval.json is written), then every other
    dataset's (evals/<name>.json), by name."""
    names = sorted(p.stem for p in run.evals.glob("*.json")) if run.evals.is_dir() else []
    return ([TEST_SPLIT] if run.eval.exists() else []) + names


def evaluation_named(run: RunDir, name: str | None) -> dict | None:
    """The report of the evaluation ``name`` (``evaluation_names``); None when there is none."""
    if name == TEST_SPLIT:
        return run.read_eval()
    return run.read_evals().get(name) if name else None


def curve_frame(info: RunInfo, key: str) -> pd.DataFrame:
    """``step`` and ``key`` (loss or learning_rate) from every Trainer log of the run, step ascending."""
    points = [(m["step"], m[key]) for m in info.dir.read_metrics() if m.get("kind") == "log" and key in m]
    frame = pd.DataFrame(points, columns=["step", CURVE_COLUMNS[key]])
    return frame.drop_duplicates("step", keep="last").sort_values("step")


def evaluations_frame(info: RunInfo) -> pd.DataFrame:
    """The validation sample's metrics at each prediction table."""
    rows = [
        [_cell(m.get(c)) for c in EVALUATION_COLUMNS] for m in info.dir.read_metrics() if m.get("kind") == "predictions"
    ]
    return pd.DataFrame(rows, columns=EVALUATION_COLUMNS, dtype=str)


def metrics_frame(report: dict) -> pd.DataFrame:
    """An eval.json-shaped report's before, after and length-baseline metrics, one row each (none for an empty
    report)."""
    rows = [[side] + [_cell(report[side].get(c)) for c in TEST_COLUMNS] for side in TEST_SIDES if side in report]
    return pd.DataFrame(rows, columns=["model"] + TEST_COLUMNS, dtype=str)


def test_frame(info: RunInfo) -> pd.DataFrame:
    """eval.json's before, after and length-baseline test metrics, one row each; empty until the run completes."""
    return metrics_frame(info.dir.read_eval() or {})


def evals_frame(run: RunDir) -> pd.DataFrame:
    """The run's evaluations on other datasets (``python -m ft.evaluate``): before, after and length-baseline
    rows each."""
    rows = [
        [name, report.get("data", ""), report.get("split", ""), _cell(report[side].get("n")), side]
        + [_cell(report[side].get(c)) for c in EVAL_METRICS]
        for name, report in run.read_evals().items()
        for side in TEST_SIDES
        if side in report
    ]
    return pd.DataFrame(rows, columns=EVALS_COLUMNS, dtype=str)


def eval_groups_frame(run: RunDir) -> pd.DataFrame:
    """The test split (eval.json) and every other evaluation broken down by their data's ``source``/``category``
    groups: a row per model side (and the length baseline) of each group."""
    reports = {TEST_SPLIT: run.read_eval() or {}, **run.read_evals()}
    rows = [
        [name, column, group, _cell(sides[side].get("n")), side]
        + [_cell(sides[side].get(c)) for c in EVAL_METRICS]
        + [_cell(sides[side].get("flagged"))]
        for name, report in reports.items()
        for column, by_group in report.get("groups", {}).items()
        for group, sides in by_group.items()
        for side in sides
    ]
    return pd.DataFrame(rows, columns=EVAL_GROUP_COLUMNS, dtype=str)


def threshold_text(info: RunInfo) -> str:
    """The decision threshold the run recorded (chosen on its validation split) and how; else the config's."""
    chosen = (info.dir.read_eval() or {}).get("threshold")
    if isinstance(chosen, dict):
        return (
            f"threshold: {chosen['value']:.4g} ({chosen['applied']} on {chosen['validation_rows']} validation rows; "
            f"{chosen['note']})"
        )
    fixed, rule = info.config.get("threshold", 0.5), info.config.get("threshold_rule", "fixed")
    if rule == "fixed" or info.status in TERMINAL:
        return f"threshold: {fixed:g} (the config's)"
    return f"threshold: chosen by {rule} on the validation split when training ends (else {fixed:g})"


def prediction_steps(info: RunInfo) -> tuple[int | None, int | None]:
    """(before, after): step 0's table, and the latest later one (None until an epoch ends)."""
    steps = info.dir.prediction_steps()
    before = 0 if 0 in steps else None
    after = steps[-1] if steps and steps[-1] != before else None
    return before, after


def predictions_frame(info: RunInfo) -> pd.DataFrame:
    """The train-start table beside the latest one, joined on row order (both score the same sample); with each
    row's source after its label when the table has one."""
    before_step, after_step = prediction_steps(info)
    if before_step is None:
        return pd.DataFrame(columns=PREDICTION_COLUMNS, dtype=str)
    before = info.dir.read_predictions(before_step)
    after = info.dir.read_predictions(after_step) if after_step is not None else None
    frame = pd.DataFrame(
        {
            "text": before["text"],
            "label": before["label"],
            "before answer": before["answer"],
            "before P(injection)": before["p_injection"].map(_cell),
            "after answer": after["answer"] if after is not None else "",
            "after P(injection)": after["p_injection"].map(_cell) if after is not None else "",
        }
    )
    if SOURCE_COLUMN in before.columns:
        frame.insert(2, SOURCE_COLUMN, before[SOURCE_COLUMN])
    return frame.astype(str)


def details_text(info: RunInfo, command: str) -> str:
    """Status, decision threshold, error, tracker location and command of a run, secrets redacted."""
    lines = [f"run {info.run_id}: {status_text(info)}", f"command: {command}"]
    if info.kind == "train":
        lines.insert(1, threshold_text(info))
    if info.state.get("wandb"):
        lines.append(f"wandb: {info.state['wandb']}")
    if info.config.get("tracker") == "trackio":
        lines.append(f"trackio: project {info.config.get('project')} (open with `trackio show`)")
    if info.state.get("error"):
        lines.append(f"error: {info.state['error']}")
    return redact("\n".join(lines))


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text for a plain-text table: floats to 4 places, None and NaN empty."""
    return frame.astype(object).where(frame.notna(), None).map(_cell).astype(str)


# --- runs as a script reads them (the app's API) ----------------------------------------------------


def _local_time(timestamp: float | None) -> str | None:
    """ISO 8601 with the machine's UTC offset, to the second; None when unknown."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds") if timestamp else None


def best_validation(info: RunInfo) -> dict | None:
    """The prediction-table record (metrics.jsonl) with the best validation F1; None before the first table."""
    scored = [m for m in info.dir.read_metrics() if m.get("kind") == "predictions" and m.get("f1") is not None]
    return max(scored, key=lambda m: m["f1"], default=None)


def run_summary(info: RunInfo) -> dict:
    """One run as plain values: what the runs table shows, with the test metrics (eval.json) once written."""
    best = best_validation(info)
    finished = info.state.get("ended") if info.status in TERMINAL else None
    return {
        "run_id": info.run_id,
        "name": info.name,
        "kind": info.kind,
        "status": info.status,
        "queue_position": info.queue_position,
        "step": info.state.get("step"),
        "total_steps": info.state.get("total_steps"),
        "model": info.model,
        "data": info.data,
        "started": _local_time(info.state.get("started")),
        "finished": _local_time(finished),
        "best_val_f1": best["f1"] if best else None,
        "best_val_step": best["step"] if best else None,
        "test": info.dir.read_eval(),
    }


def run_report(info: RunInfo) -> dict:
    """One run in full, as plain values: its summary, state.json (the error redacted), every metrics.jsonl
    record, eval.json and the evaluations on other data (evals/<name>.json, by name)."""
    state = {**info.state, "error": redact(info.state["error"])} if info.state.get("error") else info.state
    return {**run_summary(info), "state": state, "metrics": info.dir.read_metrics(), "evals": info.dir.read_evals()}

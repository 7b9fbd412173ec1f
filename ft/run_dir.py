"""The files of one run, ``runs/<run_id>/``: the only channel between a run and the app.

    config.yaml          the resolved TrainConfig
    state.json           written by the run: status (running/completed/cancelled/failed), step, total, error, pid
    job.json             written by the app (runner/queue.py): queued_at, command, process group, cancel request
    log.txt              everything the run printed
    metrics.jsonl        one JSON object per Trainer log and per prediction table
    predictions/         step-<N>.parquet: text, label, answer, p_injection
    checkpoints/         Trainer checkpoints (resume_from_checkpoint reads them); removed once completed
    adapter/             the final LoRA adapter and tokenizer
    eval.json            before/after metrics on the test split, by source, beside the length baseline
                         (ft/metrics.py), test_rows, and "threshold": the decision threshold the run chose on
                         its validation split and how (ft/threshold.py; runs before it have none)
    evals/<name>.json    the same report on other datasets (python -m ft.evaluate), at the run's threshold
    suspects.parquet     a label audit's ranked rows (python -m ft.audit; its other files: ft/audit.py)

The app never holds a pipe to a run: it reads these files, so a run survives
the browser tab, and an app restart finds every run again. This module is the one place the format is
written down (the recipes write it, the runner and curation read it); it imports no torch.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pandas as pd

TERMINAL = ("completed", "cancelled", "failed")
JOB_FILE = "job.json"


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; {} when the file is missing or cut short."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def recorded_threshold(report: dict | None, fallback: float) -> float:
    """The decision threshold an eval.json-shaped ``report`` records (chosen on the run's validation split), or
    ``fallback`` (the config's threshold) for a run that recorded none."""
    section = (report or {}).get("threshold")
    return float(section["value"]) if isinstance(section, dict) and "value" in section else fallback


def write_json(path: Path, values: dict) -> None:
    """Write ``values`` to ``path`` atomically: a temp file of this process and thread, then a rename, so a
    reader sees the old file or the new one, never half of one."""
    tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(values, indent=1))
    tmp.replace(path)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / "config.yaml")
    state_file = property(lambda self: self.path / "state.json")
    log = property(lambda self: self.path / "log.txt")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    predictions = property(lambda self: self.path / "predictions")
    checkpoints = property(lambda self: self.path / "checkpoints")
    adapter = property(lambda self: self.path / "adapter")
    eval = property(lambda self: self.path / "eval.json")
    evals = property(lambda self: self.path / "evals")
    suspects = property(lambda self: self.path / "suspects.parquet")

    def read_state(self) -> dict:
        return read_json(self.state_file)

    def write_state(self, **fields) -> dict:
        """Merge ``fields`` into state.json atomically."""
        state = {**self.read_state(), **fields, "updated": time.time()}
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.state_file, state)
        return state

    def read_job(self) -> dict:
        return read_json(self.path / JOB_FILE)

    def append_metrics(self, record: dict) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        """Every record; a line cut short (a run killed mid-write) is skipped."""
        if not self.metrics.exists():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def prediction_steps(self) -> list[int]:
        """Steps with a saved prediction table, ascending."""
        if not self.predictions.exists():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.predictions.glob("step-*.parquet"))

    def read_predictions(self, step: int) -> pd.DataFrame:
        return pd.read_parquet(self.predictions / f"step-{step}.parquet")

    def read_eval(self) -> dict | None:
        """The test report (eval.json); None until the run has written it."""
        return read_json(self.eval) or None

    def recorded_threshold(self, fallback: float) -> float:
        """The threshold the run chose on its validation split (eval.json), else ``fallback``: the config's."""
        return recorded_threshold(self.read_eval(), fallback)

    def read_evals(self) -> dict[str, dict]:
        """Every ``evals/<name>.json`` (python -m ft.evaluate) by name, sorted; an unreadable file is skipped."""
        reports = {}
        for path in sorted(self.evals.glob("*.json")) if self.evals.is_dir() else []:
            try:
                reports[path.stem] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
        return reports

    def last_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        return found[-1] if found else None

    def remove_checkpoints(self) -> None:
        """Frees a completed run's Trainer checkpoints: the adapter and optimiser state again, hundreds of MB
        when ``modules_to_save`` trains whole embeddings, read by nothing once the run cannot be resumed."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - 64_000))
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")

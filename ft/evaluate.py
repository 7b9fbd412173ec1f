"""Score any labelled dataset with a run's detector, before and after fine-tuning.

    python -m ft.evaluate --run RUN --data REF [--split S] [--text-column C --label-column L] [--name N]

``RUN`` is a run folder or a run id under ``runs/``; ``REF`` a Hub dataset id,
a folder of ``<split>.parquet`` files or one parquet/CSV/JSONL file. Writes
``runs/<id>/evals/<name>.json``: for the base model ("before", cached across
runs like the test split's) and the fine-tuned one ("after"): accuracy,
precision, recall, F1, ROC-AUC, recall at 1% false-positive rate, Brier score,
expected calibration error and the answers' parse rate; what a rule on text
length alone scores on the same rows (``length_baseline``); and all of it
broken down by every ``source`` or ``category`` column the data has
(ft/metrics.py).

The threshold is the one the run chose on its validation split (eval.json),
or its config's for an older run; the length rule's cut is the run's too.
Nothing is tuned on the data evaluated here, so a dataset kept for evaluation
(``../shared/data/foreign-eval``) stays unseen.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ft import data, models
from ft.config import TrainConfig
from ft.detector import load_detector
from ft.metrics import GROUP_COLUMNS, LENGTH_BASELINE, evaluation_report, length_cut
from ft.run_dir import RunDir, write_json
from ft.train import score_before_after, spoken_answers


def read_labelled(ref: str, split: str | None, text_column: str, label_column: str) -> tuple[pd.DataFrame, str]:
    """The split as text, label and any group columns, and the split's name (the only one, or "test")."""
    splits = data.read_splits(ref)
    if split is None:
        split = next(iter(splits)) if len(splits) == 1 else "test"
    if split not in splits:
        raise data.DataError(f"{ref}: no {split!r} split; found {sorted(splits)}")
    raw = splits[split].reset_index(drop=True)
    clean = data.clean_split(raw, f"{ref} [{split}]", text_column, label_column)
    for column in GROUP_COLUMNS:
        if column in raw.columns and column not in (*clean.columns, text_column, label_column):
            clean[column] = raw[column].astype(str).to_numpy()
    return clean, split


def find_run(ref: str, runs_dir: str = "runs") -> RunDir:
    """A run folder given as a path or as a run id under ``runs_dir``."""
    path = Path(ref)
    run = RunDir(path if (path / "config.yaml").is_file() else Path(runs_dir) / ref)
    if not run.config.is_file():
        raise FileNotFoundError(f"{ref}: not a run folder (no config.yaml), nor a run id under {runs_dir}/")
    if not (run.adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"run {run.run_id} has no adapter (it has not completed)")
    return run


def run_length_cut(run: RunDir, config: TrainConfig) -> float | None:
    """The length rule's cut the run chose on its validation split: eval.json's, else chosen again on the
    same validation rows (an older run); None when its data can no longer be read."""
    recorded = ((run.read_eval() or {}).get(LENGTH_BASELINE) or {}).get("cut_chars")
    if recorded is not None:
        return recorded
    try:
        validation = data.load_training_data(config.data, **config.data_options())["validation"]
    except (data.DataError, OSError):
        return None
    return length_cut(validation["label"], validation["text"])


def eval_name(ref: str, split: str) -> str:
    """A file name for an evaluation: the data's last path part (or Hub id) and the split."""
    stem = Path(ref.rstrip("/")).stem or "data"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{split}").strip("-.")


def evaluate_run(
    run: RunDir,
    ref: str,
    *,
    split: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    name: str | None = None,
    max_rows: int | None = None,
    seed: int = 0,
) -> Path:
    """Score the data before and after with ``run``'s detector; returns the evals JSON written."""
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    frame, split = read_labelled(ref, split, text_column, label_column)
    if max_rows is not None and max_rows < len(frame):
        frame = frame.sample(n=max_rows, random_state=seed).reset_index(drop=True)
    config = TrainConfig.from_yaml(run.config)
    detector = load_detector(config, run.adapter)
    identity = models.base_identity(config.model, detector.tokenizer, config.quantisation)
    scored = score_before_after(detector, identity, frame["text"].tolist(), "first_token")
    scores = {side: np.array([s.p_injection for s in rows]) for side, (rows, _, _) in scored.items()}
    answers = {side: spoken_answers(rows, "first_token") for side, (rows, _, _) in scored.items()}
    threshold = run.recorded_threshold(config.threshold)
    report = {
        "run": run.run_id,
        "data": ref,
        "split": split,
        "n": len(frame),
        "threshold": threshold,
        "answers": "first_token",
        "created": time.time(),
        **evaluation_report(frame, scores, answers, threshold, run_length_cut(run, config)),
    }
    for side, (_, seconds, cached) in scored.items():
        report[side].update(seconds=round(seconds, 2), cached=cached)
    out = run.evals / f"{name or eval_name(ref, split)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ft.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder, or run id under --runs-dir")
    parser.add_argument("--data", required=True, help="Hub dataset id, folder of <split>.parquet files, or one file")
    parser.add_argument("--split", help="split to score (default: the only one, else test)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--name", help="evals/<name>.json (default: data name and split)")
    parser.add_argument("--max-rows", type=int, help="score a random sample of this many rows")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args(argv)
    try:
        run = find_run(args.run, args.runs_dir)
        options = {name: getattr(args, name) for name in ("split", "text_column", "label_column", "name", "max_rows")}
        out = evaluate_run(run, args.data, **options)
    except (OSError, data.DataError, ValueError) as exc:  # OSError: no run, or a base not available offline
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    report = json.loads(out.read_text())
    for side in ("before", "after"):
        m = report[side]
        print(
            f"{side:6s} n {m['n']} acc {m['accuracy']:.4f} f1 {m['f1']:.4f} auc {m['roc_auc']} "
            f"recall@1%fpr {m['recall_at_1pct_fpr']} brier {m['brier']:.4f} ece {m['ece']:.4f}"
        )
    length = report[LENGTH_BASELINE]
    print(
        f"length n {length['n']} auc {length['roc_auc']} recall@1%fpr {length['recall_at_1pct_fpr']} "
        f"acc {length.get('accuracy')} at {length['cut_chars']} characters"
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score any labelled dataset with a run's detector, before and after fine-tuning.

    python -m ft.evaluate --run RUN --data REF [--split S] [--text-column C --label-column L] [--name N]

``RUN`` is a run folder or a run id under ``runs/``; ``REF`` a Hub dataset id,
a folder of ``<split>.parquet`` files or one parquet/CSV/JSONL file. Writes
``runs/<id>/evals/<name>.json``: for the base model ("before", cached across
runs like the test split's) and the fine-tuned one ("after"): accuracy,
precision, recall, F1, ROC-AUC, recall at 1% false-positive rate, Brier score,
expected calibration error and the answers' parse rate, and the same broken
down by every ``source`` or ``category`` column the data has.

The threshold is the run's own: nothing is tuned on the data evaluated here,
so a dataset kept for evaluation (``../shared/data/foreign-eval``) stays unseen.
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
from sklearn import metrics as skm

from ft import data, models
from ft.config import TrainConfig
from ft.detector import classification_metrics, load_detector
from ft.run_dir import RunDir, write_json
from ft.train import score_before_after, spoken_answers

GROUP_COLUMNS = ("source", "category")
CALIBRATION_BINS = 10
LOW_FPR = 0.01


def recall_at_fpr(labels, p_injection, max_fpr: float = LOW_FPR) -> float | None:
    """The highest recall any threshold reaches while flagging at most ``max_fpr`` of the benign rows."""
    y, p = np.asarray(labels, dtype=int), np.asarray(p_injection, dtype=float)
    if len(set(y)) < 2:
        return None
    fpr, tpr, _ = skm.roc_curve(y, p)
    return float(tpr[fpr <= max_fpr].max())


def brier_score(labels, p_injection) -> float:
    return float(np.mean((np.asarray(p_injection, dtype=float) - np.asarray(labels, dtype=float)) ** 2))


def expected_calibration_error(labels, p_injection, bins: int = CALIBRATION_BINS) -> float:
    """Mean |share of injections - mean P(injection)| over equal-width P bins, weighted by each bin's rows."""
    y, p = np.asarray(labels, dtype=float), np.asarray(p_injection, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    gaps = [
        abs(y[which == b].mean() - p[which == b].mean()) * np.mean(which == b)
        for b in range(bins)
        if np.any(which == b)
    ]
    return float(np.sum(gaps))


def detection_metrics(labels, p_injection, answers=None, threshold: float = 0.5) -> dict:
    """classification_metrics plus recall at 1% FPR, Brier score, ECE and the share flagged."""
    out = classification_metrics(labels, p_injection, answers, threshold)
    out.update(
        recall_at_1pct_fpr=recall_at_fpr(labels, p_injection),
        brier=brier_score(labels, p_injection),
        ece=expected_calibration_error(labels, p_injection),
        flagged=float(np.mean(np.asarray(p_injection) >= threshold)),
    )
    return out


def group_metrics(
    frame: pd.DataFrame, scores: dict[str, np.ndarray], answers: dict[str, list], threshold: float
) -> dict:
    """{column: {group: {"before": metrics, "after": metrics}}} for every group column present."""
    out = {}
    for column in (c for c in GROUP_COLUMNS if c in frame.columns):
        out[column] = {}
        for group, rows in frame.groupby(frame[column].astype(str), sort=True).groups.items():
            idx = frame.index.get_indexer(rows)
            out[column][group] = {
                side: detection_metrics(
                    frame["label"].to_numpy()[idx], scores[side][idx], [answers[side][i] for i in idx], threshold
                )
                for side in scores
            }
    return out


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
        if column in raw.columns and column not in (text_column, label_column):
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
    report = {
        "run": run.run_id,
        "data": ref,
        "split": split,
        "n": len(frame),
        "threshold": config.threshold,
        "answers": "first_token",
        "created": time.time(),
    }
    for side, (_, seconds, cached) in scored.items():
        report[side] = {
            **detection_metrics(frame["label"], scores[side], answers[side], config.threshold),
            "seconds": round(seconds, 2),
            "cached": cached,
        }
    report["groups"] = group_metrics(frame, scores, answers, config.threshold)
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
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score a file of prompts with a detector from the command line.

    python -m serving.score --detector run:<id>|PATH|HUB_ID --input prompts.{csv,parquet,jsonl} --output scored.csv
                       [--threshold T] [--runs-dir runs]

The detector is a run (``run:<id>`` under ``--runs-dir``, or a run folder), an exported folder
(``python -m ft.export``) or a Hub model repo holding one. The output CSV holds the input's ``text``
(and its ``id`` and ``label`` columns when it has them) with ``p_injection``, ``verdict`` (at the
threshold, by default the detector's own: the one its run chose on its validation split) and
``truncated``. Input is read as the app reads an upload: bounded before it is decoded (intake), UTF-8
only; cells that a spreadsheet would run as a formula are escaped. Rows are scored longest first in
batches, so each batch pads little, with a progress bar on stderr. A file that cannot be used ends
the command with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ft.config import ConfigError, TrainConfig
from ft.detector import Detector, load_detector
from ft.exported import DETECTOR_FILE, ExportedError, download, load_exported, read_description
from ft.run_dir import RunDir
from intake import DATASET_LIMITS, TableError, read_columns
from serving.batch_io import csv_text
from serving.service import RUN_PREFIX, ServingError, check_adapter, clip_to_model, loaded, verdict

MAX_ROW_CHARS = 100_000
KEPT_COLUMNS = {"id": 1_000, "label": 1_000}
"""Input columns copied to the output when the file has them."""
CHUNK_BATCHES = 8
"""Batches scored per progress step."""


class ScoreError(ValueError):
    """The detector or the input cannot be used; one line for the terminal."""


def _run_detector(run: RunDir) -> tuple[Detector, float]:
    try:
        config = TrainConfig.from_yaml(run.config)
    except ConfigError as exc:
        raise ScoreError(str(exc)) from None
    check_adapter(run)
    threshold = run.recorded_threshold(config.threshold)
    return loaded(f"run {run.run_id}", lambda: load_detector(config, run.adapter)), threshold


def _exported_detector(folder: Path) -> tuple[Detector, float]:
    threshold = float(read_description(folder)["threshold"])
    return loaded(str(folder), lambda: load_exported(folder)), threshold


def detector_from(ref: str, runs_dir: str | Path) -> tuple[Detector, float]:
    """The detector ``ref`` names and its own threshold: the one its run chose on its validation split (the
    config's for a run from before thresholds were chosen)."""
    try:
        if ref.startswith(RUN_PREFIX):
            return _run_detector(RunDir(Path(runs_dir) / ref.removeprefix(RUN_PREFIX)))
        path = Path(ref)
        if (path / "config.yaml").is_file():
            return _run_detector(RunDir(path))
        if (path / DETECTOR_FILE).is_file():
            return _exported_detector(path)
        if path.exists():
            raise ScoreError(f"{ref} is neither a run folder nor an exported detector (no {DETECTOR_FILE}).")
        return _exported_detector(download(ref))
    except (ExportedError, ServingError) as exc:
        raise ScoreError(str(exc)) from None


def read_prompts(path: Path) -> pd.DataFrame:
    """The file's ``text`` column (and ``id``/``label`` when present), bounded as intake reads; blank texts kept
    as empty strings so the output has a row for every input row."""
    try:
        frame = read_columns(path, {"text": MAX_ROW_CHARS}, KEPT_COLUMNS, limits=DATASET_LIMITS)
    except TableError as exc:
        lines = str(exc).splitlines()
        more = f" (and {len(lines) - 1} more problem(s))" if len(lines) > 1 else ""
        raise ScoreError(lines[0] + more) from None
    frame["text"] = [v if isinstance(v, str) else "" if v is None or pd.isna(v) else str(v) for v in frame["text"]]
    return frame.reset_index(drop=True)


def score_texts(detector: Detector, texts: list[str], progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(P(injection), truncated) for each text in input order, scored longest first in chunks of batches."""
    clipped = [clip_to_model(detector.tokenizer, t, detector.max_length) for t in texts]
    order = np.argsort([-len(t) for t in clipped], kind="stable")
    p, cut = np.zeros(len(texts)), np.zeros(len(texts), dtype=bool)
    step = detector.batch_size * CHUNK_BATCHES
    with tqdm(total=len(texts), unit="prompt", file=sys.stderr, disable=not progress) as bar:
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            scored = detector.score([clipped[i] for i in idx])
            p[idx] = [s.p_injection for s in scored]
            cut[idx] = [s.truncated for s in scored]
            bar.update(len(idx))
    return p, cut


def scored_frame(prompts: pd.DataFrame, p: np.ndarray, cut: np.ndarray, threshold: float) -> pd.DataFrame:
    out = prompts[["text", *[c for c in prompts.columns if c != "text"]]].copy()
    out["p_injection"] = np.round(p, 6)
    out["verdict"] = [verdict(v, threshold) for v in p]
    out["truncated"] = cut
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.score", description=__doc__.splitlines()[0])
    parser.add_argument("--detector", required=True, help="run:<id>, a run or exported folder, or a Hub repo id")
    parser.add_argument("--input", type=Path, required=True, help="CSV, parquet or JSONL with a 'text' column")
    parser.add_argument("--output", type=Path, required=True, help="the scored CSV")
    parser.add_argument(
        "--threshold", type=float, help="P(injection) at or above it is an injection (default: the detector's)"
    )
    parser.add_argument("--runs-dir", default="runs", help="where run:<id> is looked up (default: runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        parser.error(f"--threshold must be between 0 and 1, got {args.threshold}")
    try:
        prompts = read_prompts(args.input)
        detector, own_threshold = detector_from(args.detector, args.runs_dir)
        p, cut = score_texts(detector, prompts["text"].tolist(), progress=not args.quiet)
        threshold = own_threshold if args.threshold is None else args.threshold
        args.output.write_text(csv_text(scored_frame(prompts, p, cut, threshold)), encoding="utf-8")
    except (ScoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(prompts):,} prompt(s) scored into {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

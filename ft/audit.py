"""Recipe: audit the labels: rank the examples whose given label a detector that never saw them doubts.

    python -m ft.audit --config configs/tiny-cpu.yaml [--folds 2] [--seed 42] [--audit-id ID] [--resume]
    python -m ft.audit --config FILE --in-sample-run runs/<run_id>      # fast, biased

The config is an ordinary ``TrainConfig`` YAML (model, data, hyper-parameters);
the audit's own options are ``AuditOptions`` (command-line flags).

Features
- K-fold cross-fitting (default K=2): the audited split is cut into K folds,
  seeded, stratified by label, and grouped by text so that exact duplicates
  share a fold. Fold k's adapter is an ordinary run (``ft.train.train``) on the
  other folds' rows, written as ``fold-<k>/data/train.parquet``; it then scores
  the rows of fold k (``fold-<k>/data/test.parquet``), so every example gets an
  out-of-sample P(injection) from an adapter that never saw its text.
- Ranking by cleanlab's confident learning on those probabilities:
  ``cleanlab.filter.find_label_issues`` flags the issues and orders them by
  self-confidence; ``cleanlab.rank.get_label_quality_scores`` gives every row
  its label quality. Flagged issues come first, then the rest by quality.
- An in-sample option scores every row with one existing run's adapter: no
  training, minutes faster, and marked ``method: "in-sample (biased)"``.
- Files, in ``runs/<audit_id>/`` next to the training runs:
      config.yaml       the resolved TrainConfig every fold starts from
      audit.json        the AuditOptions and the method
      state.json        status (running/completed/cancelled/failed), step/total_steps
                        in stages (train and score each fold, then rank), phase, issues
      log.txt           the audit's log (each fold's training log is in its own folder)
      folds.json        which rows (positions in the audited split) are in which fold
      suspects.parquet  row, text, label, p_injection, fold, label_quality, is_issue, rank
                        (sorted by rank, 1 = most likely mislabelled)
      fold-<k>/         fold k's run (its config, log, adapter, eval.json on a sample of its
                        held-out fold) plus data/ and held_out.parquet (its scores)
- SIGTERM stops the fold in training with a checkpoint and ends the audit
  "cancelled"; ``--resume`` keeps the folds already scored (or trained, when
  their scoring was cut short) and resumes the one that was cut short in
  training from its checkpoint. ``audit_command`` is the argv a job
  queue launches, and ``AuditDir.read_options`` gives the options back.

Trade-offs
- Each fold's adapter learns from (K-1)/K of the rows: K=2 costs about one
  full-data training in all, with weaker adapters than a run on everything;
  a larger K gives better adapters for K/2 times the cost.
- The in-sample adapter has learnt the very labels it is asked to judge, so
  the wrong labels it memorised look right to it: use it for a quick first
  look, and the cross-fit audit for a list to trust.
- Confident learning thresholds each class at its mean self-confidence, which
  suits the yes/no softmax; an adapter much worse than chance yields a list of
  mostly correct labels.
- Only one split is audited per run (train by default).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ft import cancel, data
from ft.config import AuditOptions, ConfigError, TrainConfig, new_run_id
from ft.detector import load_detector
from ft.run_dir import RunDir
from ft.train import running, train

log = logging.getLogger("ft.audit")

SUSPECT_COLUMNS = ["row", "text", "label", "p_injection", "fold", "label_quality", "is_issue", "rank"]


class AuditDir(RunDir):
    """An audit's folder: a RunDir (config, state, log) plus the audit's own files."""

    options_file = property(lambda self: self.path / "audit.json")
    folds_file = property(lambda self: self.path / "folds.json")

    def fold(self, k: int) -> RunDir:
        return RunDir(self.path / f"fold-{k}")

    def fold_data(self, k: int) -> Path:
        return self.fold(k).path / "data"

    def held_out_scores(self, k: int) -> Path:
        return self.fold(k).path / "held_out.parquet"

    def read_suspects(self) -> pd.DataFrame:
        return pd.read_parquet(self.suspects)

    def read_folds(self) -> dict:
        return json.loads(self.folds_file.read_text())

    def read_options(self) -> AuditOptions:
        saved = json.loads(self.options_file.read_text())
        return AuditOptions(**{f.name: saved[f.name] for f in dataclasses.fields(AuditOptions)})


# --- the pure parts ---------------------------------------------------------------------------


def audited_rows(config: TrainConfig, split: str | None = None) -> pd.DataFrame:
    """The split to audit as columns text, label (sampled to ``max_train_rows`` with the config's seed)."""
    name = split or config.train_split
    rows = data.read_split(config.data, name, max_rows=config.max_train_rows, seed=config.seed, **config.columns())
    if rows["label"].nunique() < 2:
        raise data.DataError(f"{config.data} [{name}]: an audit needs both labels present")
    return rows


def fold_of_rows(texts: pd.Series, labels: pd.Series, folds: int, seed: int) -> np.ndarray:
    """Each row's fold in 0..folds-1: seeded, stratified by label, equal texts in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups, _ = pd.factorize(texts)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.empty(len(texts), dtype=int)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(texts)), labels, groups)):
        fold_of[held_out] = k
    return fold_of


def ranked_suspects(scored: pd.DataFrame) -> pd.DataFrame:
    """``scored`` (text, label, p_injection, fold) with label_quality, is_issue and rank, in rank order.

    cleanlab's label issues come first, ordered by self-confidence, then every other row by its
    label quality (the probability the detector gives its label); ties keep row order.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = scored["label"].to_numpy(dtype=int)
    p = scored["p_injection"].to_numpy(dtype=float).clip(0.0, 1.0)
    pred_probs = np.column_stack([1.0 - p, p])
    issues = find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    is_issue = np.zeros(len(scored), dtype=bool)
    is_issue[issues] = True
    rest = np.flatnonzero(~is_issue)
    order = np.concatenate([issues, rest[np.argsort(quality[rest], kind="stable")]]).astype(int)
    out = scored.assign(label_quality=quality, is_issue=is_issue)
    out["rank"] = 0
    out.loc[out.index[order], "rank"] = np.arange(1, len(out) + 1)
    return out.iloc[order].reset_index(drop=True)


# --- cross-fitting ----------------------------------------------------------------------------


def write_fold_data(rows: pd.DataFrame, fold_of: np.ndarray, k: int, folder: Path) -> None:
    """Fold k's training rows (every other fold) as train.parquet, its own rows as test.parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    rows[fold_of != k][["text", "label"]].to_parquet(folder / "train.parquet", index=False)
    rows[fold_of == k][["text", "label"]].to_parquet(folder / "test.parquet", index=False)


def fold_config(config: TrainConfig, audit: AuditDir, k: int, seed: int, eval_rows: int) -> TrainConfig:
    """The TrainConfig of fold k's run: the audit's config pointed at the fold's data folder."""
    return dataclasses.replace(
        config,
        data=str(audit.fold_data(k)),
        text_column="text",
        label_column="label",
        train_split="train",
        test_split="test",
        validation_split=None,
        max_train_rows=None,
        max_test_rows=eval_rows,
        seed=seed,
        runs_dir=str(audit.path),
        run_name=f"{audit.run_id} fold {k}",
    )


def run_probabilities(config: TrainConfig, adapter_dir: Path, texts: list[str]) -> np.ndarray:
    """P(injection) of each text from the model in ``config`` with the adapter in ``adapter_dir``; a cancel
    stops it within a layer (``ft.cancel``)."""
    detector = load_detector(config, adapter_dir)
    cancel.watch(detector.model)
    return detector.probabilities(texts)


def _stored_scores(path: Path, texts: pd.Series) -> np.ndarray | None:
    """The fold's saved held-out scores, if they were computed for exactly these texts."""
    if not path.exists():
        return None
    saved = pd.read_parquet(path)
    return saved["p_injection"].to_numpy() if saved["text"].tolist() == texts.tolist() else None


class _Progress:
    """state.json's step/total_steps in stages, with the phase in words."""

    def __init__(self, audit: AuditDir, total: int):
        self.audit, self.total, self.step = audit, total, 0

    def start(self, phase: str) -> None:
        log.info("%s", phase)
        self.audit.write_state(phase=phase, step=self.step, total_steps=self.total)

    def done(self) -> None:
        self.step += 1
        self.audit.write_state(step=self.step, total_steps=self.total)


def _fold_probabilities(
    config: TrainConfig,
    audit: AuditDir,
    k: int,
    held_out: pd.DataFrame,
    seed: int,
    options: AuditOptions,
    resume: bool,
    progress: _Progress,
) -> np.ndarray | None:
    """Out-of-sample P(injection) of fold k's rows; None when its training was cancelled."""
    stored = _stored_scores(audit.held_out_scores(k), held_out["text"]) if resume else None
    if stored is not None:
        log.info("fold %d: held-out scores already computed", k)
        progress.done()
        progress.done()
        return stored
    progress.start(f"fold {k + 1}/{options.folds}: training on {options.folds - 1} other fold(s)")
    run = audit.fold(k)
    if resume and run.read_state().get("status") == "completed":
        log.info("fold %d: already trained (cut short while scoring)", k)
    else:
        run = train(fold_config(config, audit, k, seed, options.eval_rows), run_id=run.run_id, resume=resume)
        if run.read_state().get("status") != "completed":
            return None
    progress.done()
    progress.start(f"fold {k + 1}/{options.folds}: scoring its {len(held_out)} held-out rows")
    p = run_probabilities(config, run.adapter, held_out["text"].tolist())
    pd.DataFrame({"row": held_out.index, "text": held_out["text"], "p_injection": p}).to_parquet(
        audit.held_out_scores(k), index=False
    )
    progress.done()
    return p


def cross_fit(
    config: TrainConfig, options: AuditOptions, audit: AuditDir, rows: pd.DataFrame, resume: bool = False
) -> pd.DataFrame | None:
    """``rows`` with out-of-sample p_injection and fold columns; None when a fold was cancelled."""
    seed = config.seed if options.seed is None else options.seed
    fold_of = fold_of_rows(rows["text"], rows["label"], options.folds, seed)
    audit.folds_file.write_text(
        json.dumps(
            {
                "method": options.method,
                "k": options.folds,
                "seed": seed,
                "rows": len(rows),
                "folds": [np.flatnonzero(fold_of == k).tolist() for k in range(options.folds)],
            }
        )
    )
    progress = _Progress(audit, 2 * options.folds + 1)
    p = np.zeros(len(rows))
    for k in range(options.folds):
        write_fold_data(rows, fold_of, k, audit.fold_data(k))
        held_out = rows[fold_of == k]
        scored = _fold_probabilities(config, audit, k, held_out, seed, options, resume, progress)
        if scored is None:
            return None
        p[fold_of == k] = scored
    progress.start("ranking")
    return rows.assign(p_injection=p, fold=fold_of)


def in_sample(options: AuditOptions, audit: AuditDir, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` scored by one existing run's adapter (fold -1): fast and biased."""
    run = RunDir(options.in_sample_run)
    progress = _Progress(audit, 2)
    progress.start(f"scoring {len(rows)} rows with run {run.run_id} (in-sample)")
    audit.folds_file.write_text(
        json.dumps(
            {"method": options.method, "k": 0, "scored_by": str(run.path.resolve()), "rows": len(rows), "folds": []}
        )
    )
    p = run_probabilities(TrainConfig.from_yaml(run.config), run.adapter, rows["text"].tolist())
    progress.done()
    progress.start("ranking")
    return rows.assign(p_injection=p, fold=-1)


# --- the audit run ----------------------------------------------------------------------------


def new_audit_id(config: TrainConfig) -> str:
    return new_run_id(dataclasses.replace(config, run_name=f"audit-{config.run_name or config.model}"))


def _outcome(config: TrainConfig, options: AuditOptions, folder: AuditDir, resume: bool) -> dict:
    """Score, rank and write suspects.parquet; the final state fields (completed with counts, or cancelled)."""
    try:
        rows = audited_rows(config, options.split)
        log.info("auditing %d rows of %s (%s)", len(rows), config.data, options.method)
        scored = (
            in_sample(options, folder, rows)
            if options.in_sample_run
            else cross_fit(config, options, folder, rows, resume)
        )
    except cancel.RunCancelled:
        scored = None
    if scored is None:
        log.info("cancelled")
        return {"status": "cancelled", "ended": time.time()}
    suspects = ranked_suspects(scored.rename_axis("row").reset_index())[SUSPECT_COLUMNS]
    suspects.to_parquet(folder.suspects, index=False)
    issues = int(suspects["is_issue"].sum())
    log.info("%d label issues among %d rows; suspects in %s", issues, len(suspects), folder.suspects)
    return {
        "status": "completed",
        "step": folder.read_state().get("total_steps"),
        "phase": "done",
        "issues": issues,
        "rows": len(suspects),
        "ended": time.time(),
    }


def audit(
    config: TrainConfig, options: AuditOptions | None = None, audit_id: str | None = None, resume: bool = False
) -> AuditDir:
    """Run the label audit into ``runs_dir/audit_id`` (default options: ``AuditOptions()``); returns its folder
    (see the module docstring)."""
    options = options or AuditOptions()
    config.validate()
    options.validate()
    config = config.resolved()
    folder = AuditDir(Path(config.runs_dir) / (audit_id or new_audit_id(config)))
    with running(folder, config, log, kind="audit", method=options.method):
        folder.options_file.write_text(json.dumps({**dataclasses.asdict(options), "method": options.method}, indent=1))
        cancel.on_sigterm()
        folder.write_state(**_outcome(config, options, folder, resume))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ft.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file of TrainConfig fields")
    parser.add_argument("--folds", type=int, default=AuditOptions.folds, help="K of the cross-fitting (default 2)")
    parser.add_argument("--seed", type=int, help="fold assignment and training seed (default: the config's)")
    parser.add_argument("--split", help="split to audit (default: the config's train split)")
    parser.add_argument(
        "--eval-rows",
        type=int,
        default=AuditOptions.eval_rows,
        help="held-out rows each fold's eval.json is computed on",
    )
    parser.add_argument("--in-sample-run", help="score with this run's adapter instead of cross-fitting (biased)")
    parser.add_argument("--audit-id", help="folder name under runs_dir (default: time + audit + model)")
    parser.add_argument("--resume", action="store_true", help="keep the folds already scored; resume the cut one")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.from_yaml(args.config)
        options = AuditOptions(
            folds=args.folds,
            seed=args.seed,
            split=args.split,
            in_sample_run=args.in_sample_run,
            eval_rows=args.eval_rows,
        )
        options.validate()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        folder = audit(config, options, args.audit_id, args.resume)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    print(folder.path)
    return 0 if folder.read_state().get("status") == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())

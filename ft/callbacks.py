"""Trainer callbacks that write a run's files and its tracker tables.

- ``PredictionLogger`` scores a fixed validation sample at train start, at
  every epoch end and every N steps when asked: P(injection) from one forward
  pass and the short greedy answer a person reads. It writes
  ``predictions/step-<N>.parquet``, a metrics line, and the same table to
  wandb (``wandb.Table``) or trackio. It logs in ``on_epoch_end``, which runs
  before trackio closes its run in its own ``on_train_end``.
- ``RunFiles`` appends every Trainer log to ``metrics.jsonl`` and keeps
  ``state.json`` (step, total, epoch, the tracker's run URL) fresh for the app.
- ``StopOnSignal`` turns a SIGTERM between steps into "save a checkpoint and
  stop", so a cancelled run can be resumed (``ft.cancel`` covers the rest).
- ``wandb_test_charts``: the test split's ROC curves, confusion matrices and
  share flagged per source as wandb charts, logged by ``ft.train`` once the
  test split is scored (after training: trackio has closed its run by then).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from ft import cancel
from ft.detector import Detector, classification_metrics
from ft.run_dir import RunDir

log = logging.getLogger("ft.callbacks")


class PredictionLogger(TrainerCallback):
    def __init__(
        self,
        detector: Detector,
        sample: pd.DataFrame,
        run: RunDir,
        tracker: str = "none",
        every_n_steps: int = 0,
        threshold: float = 0.5,
    ):
        self.detector = detector
        self.sample = sample.reset_index(drop=True)
        self.run = run
        self.tracker = tracker
        self.every_n_steps = every_n_steps
        self.threshold = threshold
        self._logged_steps: set[int] = set()

    def predictions(self, step: int) -> pd.DataFrame:
        """The sample's table at ``step``: text, label, (source,) answer, p_injection."""
        scored = self.detector.score(self.sample["text"].tolist(), answers=True)
        table = pd.DataFrame(
            {
                "text": self.sample["text"],
                "label": self.sample["label"],
                "answer": [s.answer for s in scored],
                "p_injection": [s.p_injection for s in scored],
            }
        )
        if "source" in self.sample:
            table.insert(2, "source", self.sample["source"].to_numpy())
        return table

    def _log(self, state) -> None:
        step = state.global_step
        if step in self._logged_steps or not state.is_world_process_zero:
            return
        self._logged_steps.add(step)
        log.info("prediction table at step %d (%d validation rows)", step, len(self.sample))
        table = self.predictions(step)
        self.run.predictions.mkdir(parents=True, exist_ok=True)
        table.to_parquet(self.run.predictions / f"step-{step}.parquet", index=False)
        scores = classification_metrics(table["label"], table["p_injection"], table["answer"], self.threshold)
        self.run.append_metrics(
            {
                "kind": "predictions",
                "step": step,
                "epoch": state.epoch or 0.0,
                "time": time.time(),
                **{k: v for k, v in scores.items() if k != "confusion"},
            }
        )
        self._to_tracker(table, step)

    def _to_tracker(self, table: pd.DataFrame, step: int) -> None:
        if self.tracker == "wandb":
            import wandb

            if wandb.run is not None:
                wandb.log({"validation_predictions": wandb.Table(dataframe=table), "train/global_step": step})
        elif self.tracker == "trackio":
            import trackio

            trackio.log({"validation_predictions": trackio.Table(dataframe=table)}, step=step)

    def on_train_begin(self, args, state, control, **kwargs):
        self._log(state)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._log(state)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self._log(state)


class RunFiles(TrainerCallback):
    """metrics.jsonl for every log, and the progress fields of state.json."""

    def __init__(self, run: RunDir, min_interval_s: float = 1.0, tracker_location=None):
        self.run = run
        self.min_interval_s = min_interval_s
        self.tracker_location = tracker_location
        self._last_write = 0.0

    def _progress(self, state, force: bool = False) -> None:
        if not state.is_world_process_zero:
            return
        now = time.time()
        if force or now - self._last_write >= self.min_interval_s:
            self._last_write = now
            self.run.write_state(step=state.global_step, total_steps=state.max_steps, epoch=state.epoch or 0.0)

    def on_train_begin(self, args, state, control, **kwargs):
        self._progress(state, force=True)
        if self.tracker_location and state.is_world_process_zero:
            self.run.write_state(wandb=self.tracker_location())

    def on_step_end(self, args, state, control, **kwargs):
        self._progress(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.run.append_metrics(
                {"kind": "log", "step": state.global_step, "epoch": state.epoch or 0.0, "time": time.time(), **logs}
            )

    def on_train_end(self, args, state, control, **kwargs):
        self._progress(state, force=True)


class StopOnSignal(TrainerCallback):
    """After SIGTERM (``ft.cancel``), stop at the end of the step in hand with a checkpoint saved.

    A SIGTERM that arrives inside a forward pass is raised there instead (``ft.cancel.watch``)."""

    @property
    def requested(self) -> bool:
        return cancel.requested()

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True


CLASS_NAMES = ["benign", "injection"]


def wandb_test_charts(report) -> dict:
    """The test split's charts as wandb's own chart calls, by the key they are logged under: each side's ROC curve
    (``wandb.plot.roc_curve``) and confusion matrix at the run's threshold (``wandb.plot.confusion_matrix``), from
    the rows' labels and P(injection) an ``ft.metrics.EvaluationReport`` holds, and each side's share flagged per
    source/category (``wandb.plot.bar``) from its groups. No ROC for a side when the rows hold one label only."""
    import wandb

    labels = [int(y) for y in report.labels]
    charts = {}
    for side, scores in report.scores.items():
        p = np.asarray(scores, dtype=float)
        threshold = report[side]["threshold"]
        if len(set(labels)) == 2:
            charts[f"test/roc_{side}"] = wandb.plot.roc_curve(
                labels,
                np.stack([1 - p, p], axis=1),
                labels=CLASS_NAMES,
                classes_to_plot=[1],
                title=f"ROC, test split, {side} (ROC-AUC {report[side]['roc_auc']:.3f})",
            )
        charts[f"test/confusion_{side}"] = wandb.plot.confusion_matrix(
            y_true=labels,
            preds=(p >= threshold).astype(int).tolist(),
            class_names=CLASS_NAMES,
            title=f"Confusion, test split, {side}, threshold {threshold:.4g}",
        )
    bars = [
        [f"{column} {group} ({side})", sides[side]["flagged"]]
        for column, by_group in report.get("groups", {}).items()
        for group, sides in by_group.items()
        for side in report.scores
        if side in sides
    ]
    if bars:
        charts["test/flagged_by_group"] = wandb.plot.bar(
            wandb.Table(columns=["group", "share flagged"], data=bars),
            "group",
            "share flagged",
            title="Share flagged per source/category, test split",
        )
    return charts

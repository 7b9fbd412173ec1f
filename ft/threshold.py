"""The decision threshold a run records: chosen on its validation split, never on a test split or on data kept
for evaluation (``../shared/data/foreign-eval``).

Rules (``TrainConfig.threshold_rule``):
- ``fixed``: the config's ``threshold``.
- ``best_f1`` (the default): the best F1 on validation, but the fixed threshold stays unless another one beats
  its F1 by more than ``F1_TOLERANCE``; among the thresholds that close to the best, the one nearest the fixed
  threshold wins. At ~200 validation rows one row moves F1 by about 0.01, so a threshold is not moved to win
  back one row, which would not hold on the next data.
- ``max_fpr``: the lowest threshold that flags at most ``target_fpr`` of the benign validation rows. At 1% it
  is set by the one or two highest-scoring benign rows of a ~200-row split: meant for large validation splits.

Every threshold chosen here lies midway between two neighbouring distinct validation scores, so no validation
row sits on it and rows with equal scores are never split. A rule the validation rows cannot measure (too few
rows of a class) falls back to the fixed threshold, and the choice says why.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ft.config import THRESHOLD_RULES as RULES

F1_TOLERANCE = 0.01
MIN_ROWS_PER_CLASS = 10
"""best_f1 needs this many injections and benign rows in the validation split."""


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold and how it was chosen: eval.json's "threshold" section."""

    value: float
    rule: str
    """The rule asked for."""
    applied: str
    """The rule that set ``value``: ``rule``, or "fixed" when the validation rows could not measure it."""
    validation_rows: int
    note: str
    validation: dict
    """Precision, recall, F1 and false-positive rate on the validation rows at ``value`` (None where undefined)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def midpoints(values) -> np.ndarray:
    """The points halfway between neighbouring distinct values, ascending: every cut that splits them differently."""
    distinct = np.unique(np.asarray(values, dtype=float))
    return (distinct[:-1] + distinct[1:]) / 2


def rates_at(labels, p_injection, threshold: float) -> dict:
    """Precision, recall, F1 and false-positive rate when P >= ``threshold`` is an injection (None where undefined)."""
    y, flagged = np.asarray(labels, dtype=int), np.asarray(p_injection, dtype=float) >= threshold
    tp, fp = int(np.sum(flagged & (y == 1))), int(np.sum(flagged & (y == 0)))
    positives, negatives = int(np.sum(y == 1)), int(np.sum(y == 0))
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / positives if positives else None,
        "f1": 2 * tp / (tp + fp + positives) if positives else None,
        "fpr": fp / negatives if negatives else None,
    }


def _f1s(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    flagged = p[None, :] >= thresholds[:, None]
    tp = (flagged & (y == 1)).sum(axis=1)
    return 2 * tp / (flagged.sum(axis=1) + (y == 1).sum())


def _best_f1(y: np.ndarray, p: np.ndarray, fixed: float) -> tuple[float, str]:
    candidates = np.append(midpoints(p), fixed)
    f1 = _f1s(y, p, candidates)
    close = np.flatnonzero(f1 >= f1.max() - F1_TOLERANCE)
    chosen = close[np.argmin(np.abs(candidates[close] - fixed))]
    if candidates[chosen] == fixed:
        return fixed, f"kept the fixed {fixed:g}: its F1 {f1[chosen]:.3f} is within {F1_TOLERANCE} of the best"
    return float(candidates[chosen]), f"best F1 {f1.max():.3f} (the fixed {fixed:g} scores {f1[-1]:.3f})"


def _max_fpr(y: np.ndarray, p: np.ndarray, target_fpr: float) -> tuple[float | None, str]:
    benign = np.sort(p[y == 0])[::-1]
    allowed = math.floor(target_fpr * len(benign) + 1e-9)
    highest_unflagged = benign[allowed]
    above = np.unique(p[p > highest_unflagged])
    value = (highest_unflagged + (above[0] if len(above) else 1.0)) / 2
    if value >= 1.0:
        return None, f"the benign validation rows score 1.0: no threshold flags at most {target_fpr:g} of them"
    return float(value), f"flags at most {allowed} of {len(benign)} benign validation rows"


def _unmeasurable(y: np.ndarray, rule: str, target_fpr: float) -> str | None:
    """Why the validation rows cannot measure ``rule``, or None when they can."""
    injections, benign = int(np.sum(y == 1)), int(np.sum(y == 0))
    if rule == "best_f1" and min(injections, benign) < MIN_ROWS_PER_CLASS:
        return (
            f"best_f1 needs {MIN_ROWS_PER_CLASS} rows of each label; "
            f"validation has {injections} injection(s), {benign} benign"
        )
    needed = math.ceil(1 / target_fpr - 1e-9)
    if rule == "max_fpr" and benign < needed:
        return f"a false-positive rate of {target_fpr:g} needs {needed} benign validation rows; there are {benign}"
    return None


def _ruled(y: np.ndarray, p: np.ndarray, rule: str, fixed: float, target_fpr: float) -> tuple[float | None, str]:
    """The threshold ``rule`` (best_f1 or max_fpr) gives and how; None and why when it gives none."""
    reason = _unmeasurable(y, rule, target_fpr)
    if reason:
        return None, reason
    return _best_f1(y, p, fixed) if rule == "best_f1" else _max_fpr(y, p, target_fpr)


def choose_threshold(
    labels, p_injection, rule: str, *, fixed: float = 0.5, target_fpr: float = 0.01
) -> ThresholdChoice:
    """The threshold ``rule`` picks on validation ``labels`` and P(injection) scores; ``fixed`` is the config's
    threshold (the ``fixed`` rule's value and every other rule's fallback)."""
    if rule not in RULES:
        raise ValueError(f"threshold rule must be one of {', '.join(RULES)}, got {rule!r}")
    y, p = np.asarray(labels, dtype=int), np.asarray(p_injection, dtype=float)
    value, applied, note = fixed, "fixed", "the config's threshold"
    if rule != "fixed":
        found, note = _ruled(y, p, rule, fixed, target_fpr)
        if found is None:
            note = f"fixed {fixed:g}: {note}"
        else:
            value, applied = found, rule
    return ThresholdChoice(value, rule, applied, len(y), note, rates_at(y, p, value))

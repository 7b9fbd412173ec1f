"""Label values, the reading of raw dataset labels, and the rule that gives an example its label now."""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

BENIGN = 0
INJECTION = 1
UNSURE = -1
"""A reviewer's "I cannot tell": recorded and shown, never counted towards the majority."""

LABEL_NAMES = {BENIGN: "benign", INJECTION: "injection", UNSURE: "unsure"}

LABEL_RULE = (
    "Current label = the latest adjudication vote; else the majority of the reviewers' votes "
    "(each reviewer's latest vote counts once, 'unsure' does not count, a tie keeps the original); "
    "else the original label."
)

_RAW_WORDS = {
    BENIGN: {"0", "false", "benign", "safe", "no", "negative", "clean", "legit", "legitimate", "normal"},
    INJECTION: {
        "1",
        "true",
        "injection",
        "prompt injection",
        "prompt_injection",
        "jailbreak",
        "unsafe",
        "yes",
        "positive",
        "malicious",
        "attack",
        "harmful",
    },
}


def label_name(label: int | None) -> str:
    """'benign', 'injection', 'unsure', or '' for no label."""
    return LABEL_NAMES.get(label, "") if label is not None else ""


def guess_label(value: object) -> int | None:
    """BENIGN or INJECTION for a raw dataset label such as 0, True, "benign" or "jailbreak"; None if unknown."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        if isinstance(value, numbers.Real) and math.isnan(value):
            return None
        return int(value) if value in (0, 1) else None
    word = str(value).strip().lower()
    for label, words in _RAW_WORDS.items():
        if word in words:
            return label
    return None


@dataclass(frozen=True)
class Vote:
    """One counted (not retracted) vote; ``order`` grows with time (the vote's row id)."""

    reviewer: str
    label: int
    adjudication: bool
    order: int


@dataclass(frozen=True)
class LabelState:
    """What the votes on one example add up to; the store keeps it next to the example for filtering."""

    current: int | None
    n_votes: int
    n_reviewers: int
    disagree: bool
    adjudicated: bool


def latest_per_reviewer(votes: Sequence[Vote]) -> dict[str, int]:
    """Each reviewer's latest vote label (a reviewer who changes their mind counts once)."""
    latest: dict[str, int] = {}
    for vote in sorted(votes, key=lambda v: v.order):
        latest[vote.reviewer] = vote.label
    return latest


def label_state(original: int | None, votes: Sequence[Vote]) -> LabelState:
    """Apply LABEL_RULE to an example's counted votes."""
    decisive = [label for label in latest_per_reviewer(votes).values() if label != UNSURE]
    adjudications = sorted((v for v in votes if v.adjudication), key=lambda v: v.order)
    if adjudications:
        current = adjudications[-1].label
    else:
        injection, benign = decisive.count(INJECTION), decisive.count(BENIGN)
        current = original if injection == benign else (INJECTION if injection > benign else BENIGN)
    return LabelState(
        current=current,
        n_votes=len(votes),
        n_reviewers=len({v.reviewer for v in votes}),
        disagree=len(set(decisive)) > 1,
        adjudicated=bool(adjudications),
    )


def text_hash(text: str) -> str:
    """The identity of an example: SHA-256 of its exact text, so exact duplicates collide and nothing else."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

"""A snapshot's mix: which labelled rows go to which split, how often, chosen by ``MixOptions``.

The rules, in the order they apply (the defaults change nothing: every row once, in the split it was imported in):

1. ``unseen_sources``: every row of these sources (a name picks the sources under it too, curation.filters) goes
   to the ``unseen`` split, whatever split it was imported in: sources the model never trains or tunes on.
2. ``test_share``: a train row goes to ``test`` when its text hash says so (below). Sources that were imported
   with rows in another split (safe-guard brings its own test split) keep their splits as imported.
3. ``weights``: {source name: weight}; the most specific name that picks a row's source gives its weight
   (default 1). A train row is kept ``int(weight)`` times, plus once more when its text hash says so for the
   fraction left (weight 0.5 keeps about half a source's train rows, 2.5 repeats them about 2.5 times).
4. ``cap_per_source``: at most this many train rows (copies included) from each top-level source (the part of
   its name before the first ``/``), first copies first, then in text-hash order.
5. ``balance_labels``: train rows of the more frequent label are dropped, in the same order, until both labels
   have as many.

Only train rows are weighted, capped or balanced: test, validation and unseen rows are each kept once, so the
evaluations of two mixes of one store compare. Every choice is made by a text's hash (SHA-256 of its exact
text, curation.labels.text_hash), never at random: the same store gives the same snapshot, and a text keeps
its split and its number of copies as the store grows. Three independent parts of the hash serve the three
choices (test carve, weight fraction, cap and balance order), so that one does not decide the others.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

from curation.filters import picks_source

TRAIN, TEST, UNSEEN = "train", "test", "unseen"
MAX_TEST_SHARE = 0.9
MAX_WEIGHT = 100.0
_HASH_PARTS = {"test": slice(0, 13), "weight": slice(13, 26), "order": slice(26, 39)}
"""Which hex digits of the text hash each choice reads: 13 hex digits = 52 bits, exact in a float."""


class MixRow(Protocol):
    """What the mix reads of a row (curation.snapshots.SnapshotRow is one)."""

    split: str
    text_hash: str
    label: int
    source: str


Row = TypeVar("Row", bound=MixRow)


def hash_fraction(text_hash: str, choice: str) -> float:
    """A number in [0, 1) read from the text hash's part for ``choice`` (test, weight or order)."""
    digits = text_hash[_HASH_PARTS[choice]]
    return int(digits, 16) / 16 ** len(digits)


def top_source(source: str) -> str:
    """The top-level source: ``xquad/question/de`` -> ``xquad``."""
    return source.split("/", 1)[0]


@dataclass(frozen=True)
class MixOptions:
    """How a snapshot is built from the store's labelled rows (the module docstring has the rules)."""

    test_share: float = 0.0
    cap_per_source: int | None = None
    weights: Mapping[str, float] = field(default_factory=dict)
    balance_labels: bool = False
    unseen_sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # One spelling for one choice: held-out names sorted and once, so equal options compare equal.
        object.__setattr__(self, "unseen_sources", tuple(sorted(set(self.unseen_sources))))
        if not 0 <= self.test_share <= MAX_TEST_SHARE:
            raise ValueError(f"test_share is between 0 and {MAX_TEST_SHARE}, not {self.test_share}")
        if self.cap_per_source is not None and self.cap_per_source < 1:
            raise ValueError(f"cap_per_source is at least 1 (or none), not {self.cap_per_source}")
        for name, weight in self.weights.items():
            if not name or not 0 <= weight <= MAX_WEIGHT:
                raise ValueError(f"a weight is a source name and a number from 0 to {MAX_WEIGHT:g}: {name!r}={weight}")
        if not all(self.unseen_sources):
            raise ValueError("an unseen source needs a name")

    @classmethod
    def from_dict(cls, values: Mapping[str, object] | None) -> MixOptions:
        """Options from JSON-like values (an API call, a manifest): missing keys take their defaults, unknown
        ones are refused."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown mix option(s) {unknown}")
        cap, unseen = values.get("cap_per_source"), values.get("unseen_sources") or ()
        return cls(
            test_share=float(values.get("test_share") or 0.0),
            cap_per_source=int(cap) if cap else None,
            weights={str(k): float(v) for k, v in dict(values.get("weights") or {}).items()},
            balance_labels=bool(values.get("balance_labels")),
            unseen_sources=(unseen,) if isinstance(unseen, str) else tuple(map(str, unseen)),
        )

    def as_dict(self) -> dict:
        """The options as the manifest records them."""
        return {
            "test_share": self.test_share,
            "cap_per_source": self.cap_per_source,
            "weights": dict(sorted(self.weights.items())),
            "balance_labels": self.balance_labels,
            "unseen_sources": list(self.unseen_sources),
        }

    def describe(self) -> str:
        """The options in a few words ("as imported" for the defaults), for tables and run pages."""
        parts = [
            f"test {self.test_share:.0%} by text hash" if self.test_share else "",
            f"cap {self.cap_per_source:,} per source" if self.cap_per_source else "",
            "weights " + ", ".join(f"{k} x{v:g}" for k, v in sorted(self.weights.items())) if self.weights else "",
            "labels balanced" if self.balance_labels else "",
            "unseen " + ", ".join(self.unseen_sources) if self.unseen_sources else "",
        ]
        return "; ".join(p for p in parts if p) or "as imported"

    def unknown_names(self, sources: Iterable[str]) -> list[str]:
        """The weighted or unseen names that pick none of ``sources`` (a typo, or a source not imported)."""
        sources = list(sources)
        named = {*self.weights, *self.unseen_sources}
        return sorted(n for n in named if not any(picks_source(n, s) for s in sources))

    def weight(self, source: str) -> float:
        """The weight of the most specific name that picks ``source``; 1 when none does."""
        picked = [name for name in self.weights if picks_source(name, source)]
        return self.weights[max(picked, key=len)] if picked else 1.0


@dataclass(frozen=True)
class Mixed:
    """The mix's rows (train rows repeated as weighted) and what it did to the train rows."""

    rows: list
    left_out: int
    """Train rows not kept at all (weight below 1, cap, balance)."""
    repeated: int
    """Extra copies of train rows (weight above 1)."""


class _Copy(NamedTuple):
    """One copy of a train row: its copy number (0 = first) and the row's place in the rows given."""

    copy: int
    index: int
    row: MixRow

    @property
    def order(self) -> tuple[int, float]:
        """Caps and balance keep first copies first, then in text-hash order."""
        return self.copy, hash_fraction(self.row.text_hash, "order")


def _copies(row: MixRow, weight: float) -> int:
    whole = math.floor(weight)
    return whole + (hash_fraction(row.text_hash, "weight") < weight - whole)


def _placed(row: Row, options: MixOptions, own_splits: set[str]) -> Row:
    """The row in its split: unseen, carved into test, or as imported."""
    if any(picks_source(name, row.source) for name in options.unseen_sources):
        return dataclasses.replace(row, split=UNSEEN)
    carve = options.test_share and row.split == TRAIN and row.source not in own_splits
    if carve and hash_fraction(row.text_hash, "test") < options.test_share:
        return dataclasses.replace(row, split=TEST)
    return row


def _first(copies: list[_Copy], group, keep: int) -> list[_Copy]:
    """The first ``keep`` copies (in _Copy.order) of each group that ``group(copy)`` names."""
    groups: dict[object, list[_Copy]] = {}
    for item in copies:
        groups.setdefault(group(item), []).append(item)
    return [item for items in groups.values() for item in sorted(items, key=lambda c: c.order)[:keep]]


def _balanced(copies: list[_Copy]) -> list[_Copy]:
    counts = Counter(c.row.label for c in copies)
    return _first(copies, lambda c: c.row.label, min(counts.values())) if len(counts) == 2 else copies


def mix(rows: Sequence[Row], options: MixOptions) -> Mixed:
    """The rows of a snapshot built with ``options``, in the order given (a train row's copies together)."""
    own_splits = {r.source for r in rows if r.split != TRAIN}
    placed = [_placed(r, options, own_splits) for r in rows]
    copies = [
        _Copy(copy, i, r)
        for i, r in enumerate(placed)
        if r.split == TRAIN
        for copy in range(_copies(r, options.weight(r.source)))
    ]
    if options.cap_per_source is not None:
        copies = _first(copies, lambda c: top_source(c.row.source), options.cap_per_source)
    if options.balance_labels:
        copies = _balanced(copies)
    kept = Counter(c.index for c in copies)
    out = [r for i, r in enumerate(placed) for _ in range(kept[i] if r.split == TRAIN else 1)]
    left_out = sum(r.split == TRAIN for r in placed) - len(kept)
    return Mixed(out, left_out, len(copies) - len(kept))


def parse_weights(text: str) -> dict[str, float]:
    """``name = weight`` pairs, one a line or separated by commas (the page's box); ValueError naming a bad one."""
    weights = {}
    for item in text.replace(",", "\n").splitlines():
        if not item.strip():
            continue
        name, equals, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            equals = ""
        if not equals or not name.strip():
            raise ValueError(f"a weight is written name = number, not {item.strip()!r}")
    return weights

"""Agreement between reviewers on the items two or more of them labelled.

Definitions (what the Reviewers panel shows):

- Only each reviewer's latest decisive vote (injection or benign) on an item
  counts; "unsure" votes and retracted votes are left out.
- Percent agreement: among items with decisive votes from two or more
  reviewers, the share on which all of them gave the same label.
- Pairwise Cohen's kappa, for reviewers A and B over the n items both labelled:
  p_o = share of those items where A and B agree;
  p_e = pA * pB + (1 - pA) * (1 - pB), where pA and pB are the shares of those
  n items that A and B labelled injection;
  kappa = (p_o - p_e) / (1 - p_e). It is undefined (None) when p_e = 1, i.e.
  both gave one and the same label to every shared item.
- Overall kappa: the mean of the defined pairwise kappas, each weighted by the
  number of items the pair shares.

``Reviewers`` is the store's part that reads the votes for these figures and for the votes per reviewer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from curation.database import Database
from curation.labels import BENIGN, INJECTION, UNSURE, Vote, latest_per_reviewer


@dataclass(frozen=True)
class PairAgreement:
    reviewer_a: str
    reviewer_b: str
    n_items: int
    agreement: float
    kappa: float | None


@dataclass(frozen=True)
class AgreementSummary:
    n_items: int
    percent_agreement: float | None
    kappa: float | None
    pairs: list[PairAgreement]


def cohen_kappa(pairs: Sequence[tuple[int, int]]) -> float | None:
    """Cohen's kappa for two raters' 0/1 labels on the same items (see the module docstring)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    share_a = sum(a for a, _ in pairs) / n
    share_b = sum(b for _, b in pairs) / n
    expected = share_a * share_b + (1 - share_a) * (1 - share_b)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def _pair_agreement(a: str, b: str, labels_by_item: Mapping[object, Mapping[str, int]]) -> PairAgreement | None:
    pairs = [(labels[a], labels[b]) for labels in labels_by_item.values() if a in labels and b in labels]
    if not pairs:
        return None
    return PairAgreement(a, b, len(pairs), sum(x == y for x, y in pairs) / len(pairs), cohen_kappa(pairs))


def agreement_summary(labels_by_item: Mapping[object, Mapping[str, int]]) -> AgreementSummary:
    """Agreement figures from {item: {reviewer: decisive label}}; items with one reviewer are ignored."""
    shared = {item: labels for item, labels in labels_by_item.items() if len(labels) >= 2}
    reviewers = sorted({reviewer for labels in shared.values() for reviewer in labels})
    pairs = [p for a, b in combinations(reviewers, 2) if (p := _pair_agreement(a, b, shared)) is not None]
    defined = [p for p in pairs if p.kappa is not None]
    weight = sum(p.n_items for p in defined)
    return AgreementSummary(
        n_items=len(shared),
        percent_agreement=(
            sum(len(set(labels.values())) == 1 for labels in shared.values()) / len(shared) if shared else None
        ),
        kappa=sum(p.kappa * p.n_items for p in defined) / weight if weight else None,
        pairs=pairs,
    )


@dataclass(frozen=True)
class ReviewerCount:
    reviewer: str
    votes: int
    injection: int
    benign: int
    unsure: int
    adjudications: int
    items: int


class Reviewers(Database):
    """The votes as the Reviewers panel reads them: per reviewer, and between reviewers."""

    def reviewer_counts(self) -> list[ReviewerCount]:
        """Standing (not retracted) votes per reviewer, most active first."""
        return [
            ReviewerCount(*r)
            for r in self._connection().execute(
                f"SELECT reviewer, count(*), sum(label = {INJECTION}), sum(label = {BENIGN}), sum(label = {UNSURE}), "
                "sum(is_adjudication), count(DISTINCT example_id) FROM votes WHERE retracted_at IS NULL "
                "GROUP BY reviewer ORDER BY count(*) DESC, reviewer"
            )
        ]

    def reviewer_labels(self) -> dict[int, dict[str, int]]:
        """{example: {reviewer: latest decisive label}} for examples two or more reviewers voted on."""
        by_example: dict[int, list[Vote]] = {}
        for example_id, reviewer, label, order in self._connection().execute(
            "SELECT v.example_id, v.reviewer, v.label, v.id FROM votes v JOIN examples e ON e.id = v.example_id "
            "WHERE e.n_reviewers >= 2 AND v.retracted_at IS NULL"
        ):
            by_example.setdefault(example_id, []).append(Vote(reviewer, label, False, order))
        return {
            example_id: {r: label for r, label in latest_per_reviewer(votes).items() if label != UNSURE}
            for example_id, votes in by_example.items()
        }

    def agreement(self) -> AgreementSummary:
        """Percent agreement and Cohen's kappa (definitions above)."""
        return agreement_summary(self.reviewer_labels())

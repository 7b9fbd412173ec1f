"""Agreement figures against a hand-computed example."""

import pytest

from curation.agreement import agreement_summary, cohen_kappa


def test_cohen_kappa_by_hand():
    # A and B on 10 items: both injection on 4, both benign on 4, A-only on 1, B-only on 1.
    # p_o = 8/10 = 0.8; pA = pB = 5/10; p_e = 0.5*0.5 + 0.5*0.5 = 0.5; kappa = (0.8-0.5)/(1-0.5) = 0.6
    pairs = [(1, 1)] * 4 + [(0, 0)] * 4 + [(1, 0), (0, 1)]
    assert cohen_kappa(pairs) == pytest.approx(0.6)


def test_kappa_undefined_when_both_always_give_one_label():
    assert cohen_kappa([(1, 1), (1, 1)]) is None
    assert cohen_kappa([]) is None


def test_summary_by_hand():
    labels = {i: {"a": a, "b": b} for i, (a, b) in enumerate([(1, 1)] * 4 + [(0, 0)] * 4 + [(1, 0), (0, 1)])}
    # c shares items 0..3 with a and b: c agrees on 0, 1 (label 1) and disagrees on 2, 3 (says 0).
    for item, label in zip(range(4), (1, 1, 0, 0)):
        labels[item]["c"] = label
    labels[99] = {"a": 1}  # one reviewer only: ignored
    summary = agreement_summary(labels)
    assert summary.n_items == 10
    # all reviewers agree on items 0, 1 (with c) and 4..7 (a and b only): 6 of 10
    assert summary.percent_agreement == pytest.approx(0.6)
    pairs = {(p.reviewer_a, p.reviewer_b): p for p in summary.pairs}
    assert pairs["a", "b"].n_items == 10 and pairs["a", "b"].kappa == pytest.approx(0.6)
    # a vs c on items 0..3: a = 1,1,1,1; c = 1,1,0,0 -> p_o = 0.5, pA = 1, p_e = 1*0.5 + 0 = 0.5, kappa = 0
    assert pairs["a", "c"].agreement == pytest.approx(0.5) and pairs["a", "c"].kappa == pytest.approx(0.0)
    assert pairs["b", "c"].kappa == pytest.approx(0.0)
    # weighted mean: (0.6*10 + 0*4 + 0*4) / 18
    assert summary.kappa == pytest.approx(6 / 18)


def test_empty_summary():
    summary = agreement_summary({1: {"a": 1}})
    assert (summary.n_items, summary.percent_agreement, summary.kappa, summary.pairs) == (0, None, None, [])

"""The raw-label guesses and the current-label rule."""

import math

import numpy as np
import pytest

from curation.labels import BENIGN, INJECTION, UNSURE, Vote, guess_label, label_state


@pytest.mark.parametrize(
    "raw, expected",
    [
        (0, BENIGN),
        (1, INJECTION),
        (1.0, INJECTION),
        (np.int64(0), BENIGN),
        (True, INJECTION),
        (False, BENIGN),
        ("benign", BENIGN),
        (" Injection ", INJECTION),
        ("jailbreak", INJECTION),
        ("SAFE", BENIGN),
        ("unsafe", INJECTION),
        ("true", INJECTION),
        ("0", BENIGN),
        (2, None),
        (math.nan, None),
        ("maybe", None),
        ("", None),
    ],
)
def test_guess_label(raw, expected):
    assert guess_label(raw) == expected


def votes(*specs):
    """Vote(reviewer, label, adjudication) in the order given."""
    return [Vote(r, label, adj, order) for order, (r, label, adj) in enumerate(specs, 1)]


def test_no_votes_keeps_the_original():
    assert label_state(INJECTION, []).current == INJECTION
    assert label_state(None, []).current is None


def test_majority_of_latest_vote_per_reviewer():
    state = label_state(INJECTION, votes(("a", BENIGN, False), ("b", BENIGN, False), ("c", INJECTION, False)))
    assert (state.current, state.n_votes, state.n_reviewers, state.disagree) == (BENIGN, 3, 3, True)
    # a changes their mind: only a's latest vote counts, so injection leads 2-1
    changed = votes(("a", BENIGN, False), ("b", BENIGN, False), ("c", INJECTION, False), ("a", INJECTION, False))
    assert label_state(BENIGN, changed).current == INJECTION


def test_tie_keeps_the_original_and_unsure_does_not_count():
    tie = votes(("a", BENIGN, False), ("b", INJECTION, False))
    assert label_state(INJECTION, tie).current == INJECTION
    assert label_state(BENIGN, tie).current == BENIGN
    unsure = votes(("a", BENIGN, False), ("b", UNSURE, False), ("c", UNSURE, False))
    state = label_state(INJECTION, unsure)
    assert (state.current, state.disagree, state.n_reviewers) == (BENIGN, False, 3)


def test_latest_adjudication_wins_over_majority():
    specs = (("a", BENIGN, False), ("b", BENIGN, False), ("lead", INJECTION, True), ("c", BENIGN, False))
    state = label_state(BENIGN, votes(*specs))
    assert (state.current, state.adjudicated) == (INJECTION, True)
    later = votes(*specs, ("lead2", BENIGN, True))
    assert label_state(BENIGN, later).current == BENIGN

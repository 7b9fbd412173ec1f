"""The suspects queue over the label store: rank order, matching by text, leaving the queue once voted."""

import json
import time

import pandas as pd
import pytest

from curation.filters import Queue
from curation.labels import BENIGN, INJECTION, UNSURE
from curation.store import ReviewQueue
from curation.suspects import (
    QUEUE_COLUMNS,
    audit_to_review,
    list_audits,
    next_suspect,
    read_audit,
    record_audit_scores,
    suspects_queue,
)


def write_audit(folder, texts, labels, started, *, status="completed", method="cross-fit K=2"):
    """An audit folder as ft.audit leaves it; rank follows the order of ``texts``."""
    folder.mkdir(parents=True)
    n = len(texts)
    pd.DataFrame(
        {
            "row": range(n),
            "text": texts,
            "label": labels,
            "p_injection": [0.9 - 0.8 * (lab == 1) for lab in labels],
            "fold": [i % 2 for i in range(n)],
            "label_quality": [0.1 + 0.01 * i for i in range(n)],
            "is_issue": [i < 3 for i in range(n)],
            "rank": range(1, n + 1),
        }
    ).to_parquet(folder / "suspects.parquet", index=False)
    (folder / "state.json").write_text(
        json.dumps({"status": status, "kind": "audit", "method": method, "started": started, "ended": started + 1})
    )
    return folder


@pytest.fixture
def audited_store(demo_store, tmp_path):
    """The demo store and an audit ranking six of its examples in reverse id order, plus one unknown text."""
    examples = [demo_store.example(i) for i in (6, 5, 4, 3, 2, 1)]
    texts = [e.text for e in examples] + ["a text the store has never seen"]
    labels = [e.current_label for e in examples] + [1]
    folder = write_audit(tmp_path / "runs" / "audit-1", texts, labels, started=time.time() - 5)
    return demo_store, read_audit(folder)


def test_queue_is_in_rank_order_with_scores_and_labels_side_by_side(audited_store):
    store, audit = audited_store
    queue = suspects_queue(store, audit)
    assert list(queue.columns) == QUEUE_COLUMNS
    assert queue["example_id"].tolist() == [6, 5, 4, 3, 2, 1]
    assert queue["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert queue["audited_label"].tolist() == queue["current_label"].tolist()
    assert queue["p_injection"].tolist() == audit.suspects["p_injection"].head(6).tolist()
    assert queue["is_issue"].tolist() == [True, True, True, False, False, False]
    assert suspects_queue(store, audit, issues_only=True)["example_id"].tolist() == [6, 5, 4]
    assert suspects_queue(store, audit, limit=2)["example_id"].tolist() == [6, 5]


def test_an_item_leaves_the_queue_once_voted_and_comes_back_on_undo(audited_store):
    store, audit = audited_store
    assert next_suspect(store, audit) == 6
    old = store.example(6).current_label
    store.cast_vote(6, "ana", 1 - old)
    queue = suspects_queue(store, audit)
    assert queue["example_id"].tolist() == [5, 4, 3, 2, 1]
    assert next_suspect(store, audit) == 5
    kept = suspects_queue(store, audit, exclude_reviewed=False)
    assert kept["example_id"].iloc[0] == 6
    assert kept["current_label"].iloc[0] == 1 - old != kept["audited_label"].iloc[0]
    store.undo_last_vote("ana")
    assert next_suspect(store, audit) == 6


def test_an_unsure_vote_counts_as_reviewed(audited_store):
    store, audit = audited_store
    store.cast_vote(6, "ana", UNSURE)
    assert next_suspect(store, audit) == 5


def test_votes_cast_before_the_audit_do_not_hide_an_item(demo_store, tmp_path):
    demo_store.cast_vote(2, "ana", INJECTION)
    example = demo_store.example(2)
    audit = read_audit(write_audit(tmp_path / "a", [example.text], [example.current_label], started=time.time() + 1))
    assert next_suspect(demo_store, audit) == 2


def test_an_empty_queue_has_no_next_item(audited_store):
    store, audit = audited_store
    for example_id in (6, 5, 4, 3, 2, 1):
        store.cast_vote(example_id, "ana", INJECTION)
    assert suspects_queue(store, audit).empty
    assert next_suspect(store, audit) is None


def test_audit_scores_are_recorded_once_under_the_audit_id(audited_store):
    store, audit = audited_store
    assert record_audit_scores(store, audit) == 7
    assert record_audit_scores(store, audit) == 0
    score = store.latest_score(6)
    assert score.run_id == "audit-1" and score.p_injection == pytest.approx(audit.suspects["p_injection"].iloc[0])


def test_a_text_audited_twice_is_queued_once(demo_store, tmp_path):
    text = demo_store.example(3).text
    audit = read_audit(
        write_audit(tmp_path / "a", [text, demo_store.example(1).text, text], [0, 0, 1], started=time.time())
    )
    assert suspects_queue(demo_store, audit)["example_id"].tolist() == [3, 1]


def test_only_completed_audits_are_read_and_listed(tmp_path):
    runs = tmp_path / "runs"
    write_audit(runs / "old", ["x"], [0], started=100.0)
    write_audit(runs / "new", ["x"], [0], started=200.0, method="in-sample (biased)")
    write_audit(runs / "busy", ["x"], [0], started=300.0, status="running")
    (runs / "a-training-run").mkdir()
    (runs / "a-training-run" / "state.json").write_text(json.dumps({"status": "completed"}))
    assert [p.name for p in list_audits(runs)] == ["new", "old"]
    assert read_audit(runs / "new").biased and not read_audit(runs / "old").biased
    with pytest.raises(ValueError, match="not a completed label audit"):
        read_audit(runs / "busy")
    assert list_audits(tmp_path / "nowhere") == []


def test_a_skipped_suspect_moves_on_and_a_voted_one_gives_the_head(audited_store):
    store, audit = audited_store
    assert next_suspect(store, audit, after_id=6) == 5, "skip: the next in rank order"
    assert next_suspect(store, audit, after_id=1) == 6, "past the last: back to the head"
    store.cast_vote(6, "ana", 1)
    assert next_suspect(store, audit, after_id=6) == 5, "the voted item left: the head"
    assert next_suspect(store, audit, issues_only=True, after_id=4) == 5


def test_scores_of_an_audit_whose_top_text_is_not_stored_are_recorded_once(demo_store, tmp_path):
    texts = ["a text the store has never seen", demo_store.example(1).text]
    audit = read_audit(write_audit(tmp_path / "runs" / "audit-x", texts, [1, 0], started=time.time()))
    assert record_audit_scores(demo_store, audit) == 2
    demo_store.record_scores("some-run", [(texts[0], 0.5)])
    assert record_audit_scores(demo_store, audit) == 0


def test_an_audit_file_without_its_columns_is_refused_by_name(tmp_path):
    folder = write_audit(tmp_path / "runs" / "audit-y", ["x"], [1], started=time.time())
    pd.DataFrame({"text": ["x"]}).to_parquet(folder / "suspects.parquet")
    with pytest.raises(ValueError, match=r"suspects.parquet lacks column\(s\) \['is_issue', 'label'"):
        read_audit(folder)
    (folder / "suspects.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="cannot read suspects.parquet"):
        read_audit(folder)


def test_an_audit_is_read_once_then_reviewed_from_the_store(audited_store):
    store, audit = audited_store
    runs = audit.path.parent
    recorded = audit_to_review(store, runs, str(audit.path))
    assert (recorded.id, recorded.method, recorded.biased) == ("audit-1", "cross-fit K=2", False)
    (audit.path / "suspects.parquet").write_text("no longer parquet")  # the queue no longer reads the file
    assert audit_to_review(store, runs, str(audit.path)) == recorded
    assert suspects_queue(store, recorded)["example_id"].tolist() == [6, 5, 4, 3, 2, 1]
    assert audit_to_review(store, runs, None) is None


def test_an_audit_outside_the_runs_or_not_completed_is_refused(audited_store, tmp_path):
    store, audit = audited_store
    with pytest.raises(ValueError, match="^Pick one of the label audits listed.$"):
        audit_to_review(store, audit.path.parent, str(tmp_path / "elsewhere" / "audit-1"))
    busy = write_audit(audit.path.parent / "audit-2", ["x"], [1], started=time.time(), status="running")
    with pytest.raises(ValueError, match="^Cannot read the audit: audit-2 is not a completed label audit"):
        audit_to_review(store, audit.path.parent, str(busy))
    with pytest.raises(ValueError, match="^Cannot read the audit: "):
        audit_to_review(store, audit.path.parent, str(audit.path.parent / "deleted"))


def test_a_vote_in_the_suspects_queue_gives_the_next_suspect(audited_store):
    store, audit = audited_store
    queue = ReviewQueue(Queue.SUSPECTS, "ann", audit_id=audit_to_review(store, audit.path.parent, audit.path).id)
    assert store.next_item(queue) == 6
    assert store.cast_vote_and_next(6, BENIGN, "", False, queue) == 5
    assert store.next_item(queue, after_id=5) == 4, "skip: the next in rank order"
    assert store.next_item(ReviewQueue(Queue.SUSPECTS, "ann")) is None, "no audit chosen: nothing to show"


def test_the_suspects_view_counts_the_queue_and_finds_the_shown_item(audited_store):
    store, audit = audited_store
    record_audit_scores(store, audit)
    view = store.suspects_view(audit.id, 4, top=2)
    assert view.left == 6 and [s.example_id for s in view.top] == [6, 5]
    assert (view.shown.example_id, view.shown.rank, view.shown.text) == (4, 3, store.example(4).text)
    store.cast_vote(4, "ann", INJECTION)
    view = store.suspects_view(audit.id, 4, top=2)
    assert view.left == 5 and view.shown is None, "a reviewed item has left the queue"

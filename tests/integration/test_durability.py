"""Concurrent writers lose nothing; a writer killed mid-session leaves every committed vote and a sound file."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from curation.labels import text_hash
from curation.sources import Prepared
from curation.store import LabelStore

WRITER = Path(__file__).with_name("vote_writer.py")


def store_with_examples(data_dir: Path, n: int) -> LabelStore:
    store = LabelStore(data_dir)
    texts = [f"example number {i}" for i in range(n)]
    store.import_examples(Prepared("test", [("train", t, text_hash(t), 0) for t in texts], 0, 0))
    return store


def test_eight_processes_cast_200_votes_each(tmp_path):
    store = store_with_examples(tmp_path, 200)
    start = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), str(tmp_path), f"reviewer-{k}", "200", "--start-file", str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(8)
    ]
    assert [w.stdout.readline().strip() for w in writers] == ["ready"] * 8
    start.touch()
    assert [w.wait(timeout=120) for w in writers] == [0] * 8
    con = store._connection()
    assert con.execute("SELECT count(*) FROM votes").fetchone()[0] == 1600
    assert con.execute("SELECT count(*) FROM (SELECT DISTINCT example_id, reviewer FROM votes)").fetchone()[0] == 1600
    assert con.execute("SELECT count(*) FROM events WHERE action = 'vote'").fetchone()[0] == 1600
    assert {c.reviewer: c.votes for c in store.reviewer_counts()} == {f"reviewer-{k}": 200 for k in range(8)}
    # the derived label state saw every vote: 8 reviewers on each example
    assert con.execute("SELECT min(n_votes), max(n_votes), min(n_reviewers) FROM examples").fetchone() == (8, 8, 8)
    assert store.integrity_check() == "ok"
    store.close()


def test_sigkill_keeps_every_committed_vote(tmp_path):
    store_with_examples(tmp_path, 50).close()
    log = tmp_path / "committed.txt"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(tmp_path), "victim", "1000000", "--log", str(log)])
    deadline = time.monotonic() + 60
    while (not log.exists() or len(log.read_text().split()) < 200) and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=10) == -signal.SIGKILL
    committed = {int(v) for v in log.read_text().split()}
    assert len(committed) >= 200
    reopened = LabelStore(tmp_path)
    assert reopened.integrity_check() == "ok"
    stored = {v for (v,) in reopened._connection().execute("SELECT id FROM votes")}
    assert committed <= stored
    # the derived state agrees with the votes that survived
    for example_id in (1, 2, 50):
        assert reopened.example(example_id).n_votes == len(reopened.votes(example_id))
    reopened.close()

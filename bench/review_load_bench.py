"""The review loop under a team: N reviewers voting at once through the HTTP API, as figures.

    python bench/review_load_bench.py [--reviewers 8] [--votes 40] [--examples 2000] [--queue suspects]
    python bench/review_load_bench.py --reviewers 1          # the one-reviewer baseline

Starts ``app.py`` in a subprocess on a free port with a fresh temporary data directory, seeded through the
store with ``--examples`` rows of ../shared/data/safe-guard (the demo data when that is missing) and a
completed label audit ranking them all (so the ``suspects`` queue has work). Then N reviewers, each a
``gradio_client.Client`` in its own thread with its own session and name, open the queue's first item
(``/review_first_item``) and do ``--votes`` round trips each: a vote on the shown example
(``/vote_injection`` or ``/vote_benign``), whose answer is the next item shown. With ``--sign-in`` each
reviewer signs in with a password account of its own (a users file), else the names are typed. The app is
plain HTTP on loopback, so the clients skip TLS set-up (``ssl_verify=False``): gradio_client would otherwise
load the CA bundle for every call, CPU that a reviewer's browser spends on its own machine, not the server's.

Prints reviewers, votes sent, votes recorded (standing votes in the store afterwards), votes lost (sent -
recorded), votes per second over the whole run, p50 / p95 round-trip latency in milliseconds (the target
for 8 reviewers on a 2-core machine is p95 < 250 ms), and the CPU time per vote of the app and of the
clients, which share the machine (as does anything else running: the load average is printed too).
Everything lives in a temporary directory (the app's data, Gradio's and Hugging Face's caches); nothing is
written under $HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import pandas as pd
from helpers import DATA_DIR, RunningApp, app_environment, free_port, wait_until_up

from curation import sources
from curation.demo import DEMO_PATH
from curation.store import DB_NAME, LabelStore

SAFE_GUARD = DATA_DIR / "train.parquet"
AUDIT_ID = "audit-bench"
START_TIMEOUT_S = 120
"""How long the reviewers may take to open their clients and first items."""
TARGET_P95_MS = 250
PASSWORD = "bench-password"


def seed(data_dir: Path, examples: int, scratch: Path) -> int:
    """Import ``examples`` rows into a fresh store and write a completed audit ranking them; rows stored."""
    if SAFE_GUARD.is_file():
        rows = pd.read_parquet(SAFE_GUARD).head(examples)
        source = scratch / "slice.parquet"
        rows.to_parquet(source, index=False)
        prepared = sources.load(source, name="safe-guard-slice")
    else:
        prepared = sources.load(DEMO_PATH, name="demo")
    store = LabelStore(data_dir)
    store.import_examples(prepared, actor="bench")
    texts = [row[1] for row in prepared.rows]
    labels = [row[3] for row in prepared.rows]
    store.close()
    write_audit(data_dir / "runs" / AUDIT_ID, texts, labels)
    return len(texts)


def write_audit(folder: Path, texts: list[str], labels: list[int]) -> None:
    """An audit folder as ``python -m ft.audit`` leaves it, its ranks random, started a minute ago."""
    rng = random.Random(0)
    order = list(range(len(texts)))
    rng.shuffle(order)
    folder.mkdir(parents=True)
    p = [rng.random() for _ in texts]
    pd.DataFrame(
        {
            "row": order,
            "text": [texts[i] for i in order],
            "label": [labels[i] for i in order],
            "p_injection": p,
            "fold": [i % 2 for i in order],
            "label_quality": [1 - x for x in p],
            "is_issue": [x > 0.5 for x in p],
            "rank": range(1, len(texts) + 1),
        }
    ).to_parquet(folder / "suspects.parquet", index=False)
    started = time.time() - 60
    (folder / "state.json").write_text(
        json.dumps(
            {
                "kind": "audit",
                "status": "completed",
                "method": "cross-fit K=2",
                "started": started,
                "ended": started + 1,
            }
        )
    )


def users_file(folder: Path, names: list[str]) -> Path:
    from access.users import hash_password

    path = folder / "users.txt"
    path.write_text("".join(f"{name}:{hash_password(PASSWORD)}:reviewer\n" for name in names), encoding="utf-8")
    return path


def start_app(app: RunningApp, flags: list[str]) -> subprocess.Popen:
    """``python app.py`` on the app's data dir and port, every cache in its home, its output in its log."""
    home = app.home
    env = app_environment(home)
    with app.log.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "app.py", "--data-dir", str(app.data_dir), "--port", str(app.port), *flags],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


class Reviewer(threading.Thread):
    """One reviewer: its own client and session; opens the queue, then votes ``votes`` times."""

    def __init__(
        self, url: str, name: str, votes: int, queue: str, audit: str | None, sign_in: bool, start: threading.Barrier
    ):
        super().__init__(daemon=True)
        self.url, self.name, self.votes, self.queue, self.audit = url, name, votes, queue, audit
        self.sign_in, self.start_together = sign_in, start
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.finished = 0.0
        """When its last vote was answered (perf_counter)."""

    def run(self) -> None:
        from gradio_client import Client

        client = Client(
            self.url,
            verbose=False,
            download_files=False,
            analytics_enabled=False,
            ssl_verify=False,
            auth=(self.name, PASSWORD) if self.sign_in else None,
        )
        if self.queue == "suspects":
            list_audits_in_session(client)
        client.predict(self.name, self.queue, self.audit, api_name="/review_first_item")
        rng = random.Random(self.name)
        self.start_together.wait()
        for _ in range(self.votes):
            endpoint = rng.choice(["/vote_injection", "/vote_benign"])
            started = time.perf_counter()
            try:
                client.predict("", False, self.queue, self.name, self.audit, api_name=endpoint)
            except Exception as error:  # noqa: BLE001 -- any failed vote is counted as lost, and shown
                self.errors.append(f"{type(error).__name__}: {error}")
                continue
            self.latencies.append(time.perf_counter() - started)
        self.finished = time.perf_counter()
        client.close()


def list_audits_in_session(client) -> None:
    """What the page does on choosing the suspects queue: list the completed audits in this session's audit
    picker, so that a vote may name one. That endpoint serves the page only and gradio_client will not call
    it by name, so it is called by number, as the page calls it."""
    fn_index = next(d["id"] for d in client.config["dependencies"] if d.get("api_name") == "review_queue_chosen")
    client.endpoints[fn_index].is_valid = True
    client.predict("suspects", fn_index=fn_index)


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user and system, its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def recorded_votes(data_dir: Path, names: list[str]) -> int:
    with sqlite3.connect(f"file:{data_dir / DB_NAME}?mode=ro", uri=True) as db:
        marks = ",".join("?" * len(names))
        return db.execute(
            f"SELECT count(*) FROM votes WHERE retracted_at IS NULL AND reviewer IN ({marks})", names
        ).fetchone()[0]


def percentile(ms: list[float], fraction: float) -> float:
    ms = sorted(ms)
    return ms[min(len(ms) - 1, round(fraction * (len(ms) - 1)))] if ms else float("nan")


def run(args: argparse.Namespace, scratch: Path) -> None:
    data_dir = scratch / "data"
    stored = seed(data_dir, args.examples, scratch)
    names = [f"bench-{k + 1}" for k in range(args.reviewers)]
    flags = ["--auth", str(users_file(scratch, names))] if args.sign_in else []
    app = RunningApp(free_port(), data_dir, scratch / "app.log", scratch)
    url = app.url
    process = start_app(app, flags)
    try:
        wait_until_up(app, process)  # the browser tests' own wait: a 401 sign-in page counts as up
        audit = str(data_dir / "runs" / AUDIT_ID) if args.queue == "suspects" else None
        barrier = threading.Barrier(args.reviewers + 1)
        team = [Reviewer(url, name, args.votes, args.queue, audit, args.sign_in, barrier) for name in names]
        for reviewer in team:
            reviewer.start()
        barrier.wait(timeout=START_TIMEOUT_S)
        started, app_cpu, bench_cpu = time.perf_counter(), cpu_seconds(process.pid), time.process_time()
        for reviewer in team:
            reviewer.join()
        app_cpu, bench_cpu = cpu_seconds(process.pid) - app_cpu, time.process_time() - bench_cpu
        elapsed = max(r.finished for r in team) - started
    finally:
        process.terminate()
        process.wait(timeout=30)
    sent = args.reviewers * args.votes
    recorded = recorded_votes(data_dir, names)
    ms = [s * 1000 for r in team for s in r.latencies]
    p95 = percentile(ms, 0.95)
    print(
        f"store: {stored} examples · queue: {args.queue} · sign-in: {'yes' if args.sign_in else 'no'} "
        f"· {os.cpu_count()} CPUs"
    )
    print(
        f"reviewers {args.reviewers} · votes sent {sent} · recorded {recorded} · lost {sent - recorded} · "
        f"{len(ms) / elapsed:.1f} votes/s"
    )
    print(
        f"round trip (vote, next item shown): p50 {statistics.median(ms) if ms else float('nan'):.0f} ms · "
        f"p95 {p95:.0f} ms · target p95 < {TARGET_P95_MS} ms: {'ok' if p95 < TARGET_P95_MS else 'OVER'}"
    )
    print(
        f"CPU per vote: app {1000 * app_cpu / max(len(ms), 1):.0f} ms · clients "
        f"{1000 * bench_cpu / max(len(ms), 1):.0f} ms · load average {os.getloadavg()[0]:.1f}"
    )
    for reviewer in team:
        for error in reviewer.errors[:3]:
            print(f"  {reviewer.name}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", type=int, default=8, help="concurrent reviewers (clients)")
    parser.add_argument("--votes", type=int, default=40, help="vote round trips per reviewer")
    parser.add_argument("--examples", type=int, default=2000, help="rows of safe-guard in the store")
    parser.add_argument("--queue", choices=["suspects", "unreviewed", "disagreements"], default="suspects")
    parser.add_argument("--sign-in", action="store_true", help="each reviewer signs in with its own account")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="review-bench-") as scratch:
        run(args, Path(scratch))


if __name__ == "__main__":
    main()

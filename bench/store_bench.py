"""LabelStore at scale: import the train-pool folder (16 sources) into a store holding safe-guard, import 100,000
synthetic examples, then time filtered pages, searches and votes.

    python bench/store_bench.py [--rows 100000] [--samples 200] [--pool ../shared/data/train-pool]

Prints the import times and p50/p95 in milliseconds; targets on a 2-core machine: the pool import (read,
validate, dedupe, write, index: one action, one transaction) < 60 s, synthetic import < 20 s, page p95 < 50 ms,
search p95 < 100 ms, vote p95 < 20 ms. Everything lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation import sources  # noqa: E402
from curation.filters import ExampleFilter  # noqa: E402
from curation.labels import BENIGN, INJECTION, UNSURE  # noqa: E402
from curation.store import LabelStore  # noqa: E402
from ft.paths import SHARED  # noqa: E402

TARGETS_MS = {"page": 50, "search": 100, "vote": 20}
POOL_TARGET_S = 60
SAFE_GUARD = SHARED / "data" / "safe-guard"


def synthetic_frame(rows: int, rng: random.Random) -> pd.DataFrame:
    vocabulary = [
        f"{a}{b}"
        for a in ("ig", "pro", "sys", "re", "act", "tell", "st", "ove", "lan", "da")
        for b in ("nore", "mpt", "tem", "veal", "ion", "me", "ory", "rride", "guage", "ta", "x", "ly")
    ]
    vocabulary += ["ignore", "previous", "instructions", "password", "poem", "recipe", "translate", "summarise"]
    texts = [f"{i} " + " ".join(rng.choices(vocabulary, k=rng.randint(8, 60))) for i in range(rows)]
    return pd.DataFrame(
        {
            "text": texts,
            "label": [rng.random() < 0.3 for _ in range(rows)],
            "split": rng.choices(["train", "test"], weights=[4, 1], k=rows),
        }
    )


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def pool_import(data_dir: Path, pool: Path) -> None:
    """Time the import of a folder of sources into a store that already holds safe-guard, as one action."""
    store = LabelStore(data_dir)
    store.import_examples(sources.load(SAFE_GUARD))
    start = time.perf_counter()
    result = store.import_examples(sources.load(pool))
    seconds = time.perf_counter() - start
    tops = len({s.split("/")[0] for s in result.added_by_source})
    print(
        f"pool import: {result.added:,} examples, {len(result.added_by_source)} sources ({tops} top-level), into a "
        f"store of {store.totals().examples - result.added:,}, in {seconds:.1f} s "
        f"(target {POOL_TARGET_S} s: {'ok' if seconds < POOL_TARGET_S else 'OVER'})"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--pool", type=Path, default=SHARED / "data" / "train-pool")
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.pool.is_dir() and SAFE_GUARD.is_dir():
            pool_import(Path(tmp) / "pool-store", args.pool)
        source = Path(tmp) / "synthetic.parquet"
        synthetic_frame(args.rows, rng).to_parquet(source)
        store = LabelStore(Path(tmp) / "data")

        start = time.perf_counter()
        result = store.import_examples(sources.load(source))
        import_s = time.perf_counter() - start
        print(f"import: {result.added:,} examples in {import_s:.1f} s (read, validate, dedupe, write, index)")

        reviewers = [f"reviewer-{k}" for k in range(6)]
        for _ in range(2_000):  # some history, so that reviewed/changed/disagree filters have rows
            store.cast_vote(rng.randint(1, args.rows), rng.choice(reviewers), rng.choice([BENIGN, INJECTION]))

        filters = [
            ExampleFilter(split="train", current_label=INJECTION),
            ExampleFilter(reviewed=False),
            ExampleFilter(original_label=BENIGN, split="test"),
            ExampleFilter(disagree=True),
            ExampleFilter(changed=True),
            ExampleFilter(reviewed=True, current_label=BENIGN),
            ExampleFilter(),
        ]
        pages = [timed(lambda: store.page(rng.choice(filters), rng.randint(0, 20))) for _ in range(args.samples)]
        words = ["ignore", "password", "prompt", "systemx", "poem recipe", "reveal", "ignore previous instructions"]
        searches = [
            timed(lambda: store.page(ExampleFilter(search=rng.choice(words)), rng.randint(0, 3)))
            for _ in range(args.samples)
        ]
        votes = [
            timed(
                lambda: store.cast_vote(
                    rng.randint(1, args.rows), rng.choice(reviewers), rng.choice([BENIGN, INJECTION, UNSURE])
                )
            )
            for _ in range(args.samples)
        ]

        print(f"{'':8}{'p50 ms':>9}{'p95 ms':>9}{'target p95':>12}")
        for name, samples in (("page", pages), ("search", searches), ("vote", votes)):
            p50, p95 = percentiles(samples)
            verdict = "ok" if p95 < TARGETS_MS[name] else "OVER"
            print(f"{name:8}{p50:9.1f}{p95:9.1f}{TARGETS_MS[name]:>9} ms  {verdict}")
        print(f"import target 20 s: {'ok' if import_s < 20 else 'OVER'}")
        store.close()


if __name__ == "__main__":
    main()

"""A separate process that casts votes, for the concurrency and crash tests.

python tests/integration/vote_writer.py DATA_DIR REVIEWER N_VOTES [--log FILE] [--start-file FILE]
Votes on examples 1..N_VOTES (cycling through the store's examples); after each commit,
appends the vote id to --log so a test knows what was committed before a kill. With
--start-file it prints "ready" once the store is open, then waits for that file to exist.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from curation.store import LabelStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("reviewer")
    parser.add_argument("n_votes", type=int)
    parser.add_argument("--log")
    parser.add_argument("--start-file")
    args = parser.parse_args()
    store = LabelStore(args.data_dir)
    n_examples = store.totals().examples
    log = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if args.log else None
    if args.start_file:
        print("ready", flush=True)
    while args.start_file and not Path(args.start_file).exists():
        time.sleep(0.005)
    for i in range(args.n_votes):
        vote = store.cast_vote(i % n_examples + 1, args.reviewer, i % 2, note=f"vote {i}")
        if log is not None:
            os.write(log, f"{vote.id}\n".encode())
    store.close()


if __name__ == "__main__":
    main()

"""The small demo dataset written for this project, so a fresh offline machine has something to curate."""

from __future__ import annotations

from pathlib import Path

from curation.sources import load
from curation.store import LabelStore

DEMO_PATH = Path(__file__).with_name("demo_data.jsonl")
DEMO_SOURCE = "demo"


def load_demo_if_empty(store: LabelStore) -> bool:
    """Import the demo dataset into an empty store; True if it did."""
    if store.source_counts():
        return False
    store.import_examples(load(DEMO_PATH, name=DEMO_SOURCE), actor="app")
    return True


def demo_only(store: LabelStore) -> bool:
    """True while the demo dataset is all the store holds (what the page warns about)."""
    return set(store.source_counts()) == {DEMO_SOURCE}

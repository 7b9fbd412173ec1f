"""Shared test fixtures, offline caches inside the run, and each test's marker from its folder
(tests/unit, tests/integration, tests/browser). Helpers the tests import are in tests/helpers.py."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CACHE_VARS = (
    "HF_HOME",
    "WANDB_DIR",
    "WANDB_CACHE_DIR",
    "WANDB_CONFIG_DIR",
    "WANDB_DATA_DIR",
    "GRADIO_TEMP_DIR",
    "TRACKIO_DIR",
    "MPLCONFIGDIR",
    "XDG_CACHE_HOME",
)
if unset := [var for var in CACHE_VARS if var not in os.environ]:  # pytest run directly, not by scripts/test
    _cache = Path(tempfile.mkdtemp(prefix="studio-test-cache-"))
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    for var in unset:
        os.environ[var] = str(_cache / var.lower())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402
from helpers import DATA_DIR, TOKENIZER_DIR, FakeHubApi  # noqa: E402

MARKERS = ("unit", "integration", "browser")
MIN_FREE_GB = float(os.environ.get("TESTS_MIN_FREE_GB", "3"))
"""Free space the suite wants in the temp folder: the whole suite peaks at ~2 GB there (runs, apps' caches,
the dequantised SmolLM2). ``TESTS_MIN_FREE_GB=0`` lifts the check, e.g. for ``-m unit`` on a small disk."""


def pytest_sessionstart(session):
    """Stop before the first test when the temp disk is nearly full. Out of space, tests fail one by one after
    waiting on runs and apps that cannot write: a CI run once spent its 90 minutes that way."""
    free_gb = shutil.disk_usage(tempfile.gettempdir()).free / 2**30
    if free_gb < MIN_FREE_GB:
        pytest.exit(
            f"only {free_gb:.1f} GB free in {tempfile.gettempdir()}; the tests want {MIN_FREE_GB:g} GB "
            "(TESTS_MIN_FREE_GB sets it)",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def pytest_collection_modifyitems(items):
    """Mark each test by its folder, so ``-m unit`` (or integration, browser) picks a kind."""
    for item in items:
        kind = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        if kind in MARKERS:
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def tokenizer():
    from ft.models import load_tokenizer

    return load_tokenizer(str(TOKENIZER_DIR))


@pytest.fixture(scope="session")
def safe_guard_train():
    import pandas as pd

    return pd.read_parquet(DATA_DIR / "train.parquet")


@pytest.fixture
def store(tmp_path):
    """An empty LabelStore in a temporary data directory."""
    from curation.store import LabelStore

    opened = LabelStore(tmp_path / "data")
    yield opened
    opened.close()


@pytest.fixture
def demo_store(store):
    """The store holding the project's demo dataset (48 rows, train and test)."""
    from curation.demo import load_demo_if_empty

    load_demo_if_empty(store)
    return store


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHubApi)
    monkeypatch.setattr(FakeHubApi, "calls", [])
    return FakeHubApi.calls

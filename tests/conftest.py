"""Shared test fixtures: offline caches inside the run, paths to ../shared, the tiny model."""
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA_DIR = SHARED / "data" / "safe-guard"
TOKENIZER_DIR = SHARED / "tokenizers" / "qwen2.5"

_CACHE = Path(tempfile.mkdtemp(prefix="studio-test-cache-"))
for var in ("HF_HOME", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR",
            "GRADIO_TEMP_DIR", "TRACKIO_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
    os.environ.setdefault(var, str(_CACHE / var.lower()))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer():
    from ft.models import load_tokenizer

    return load_tokenizer(str(TOKENIZER_DIR))


@pytest.fixture(scope="session")
def safe_guard_train():
    import pandas as pd

    return pd.read_parquet(DATA_DIR / "train.parquet")


def tiny_config(tmp_path, **overrides):
    """A TrainConfig for a seconds-long run of the tiny preset on a slice of the real data."""
    from ft.config import TrainConfig

    values = dict(model="tiny", tokenizer=str(TOKENIZER_DIR), data=str(DATA_DIR), quantisation="none",
                  modules_to_save=["embed_tokens", "lm_head"], gradient_checkpointing=False, max_length=128,
                  max_train_rows=96, max_test_rows=32, validation_size=16, prediction_samples=8, batch_size=8,
                  gradient_accumulation=1, learning_rate=3e-3, warmup_steps=0, logging_steps=2, save_steps=4,
                  eval_batch_size=16, tracker="none", runs_dir=str(tmp_path / "runs"))
    values.update(overrides)
    return TrainConfig.from_dict(values)


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


class FakeHubApi:
    """HfApi at its boundary: a repo already holding ``files``; every call is recorded in ``calls``."""

    files = ["README.md", "train.parquet", "validation.parquet", "other.parquet", "data/foreign.parquet"]
    calls = []

    def __init__(self, token):
        self.calls.append(("token", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def list_repo_files(self, repo_id, **kwargs):
        return list(self.files)

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(("commit", repo_id, [(type(op).__name__, op.path_in_repo) for op in operations]))

    def __getattr__(self, name):
        """Any other call (delete_file, delete_folder, upload_folder with delete_patterns ...) is recorded too."""
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHubApi)
    monkeypatch.setattr(FakeHubApi, "calls", [])
    return FakeHubApi.calls


def pushed_once_a_token_is_set(push, monkeypatch, hub_calls: list) -> str:
    """``push()`` refused without HF_TOKEN before any Hub call, then run with a token: what it returned."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PermissionError, match="HF_TOKEN"):
        push()
    assert hub_calls == []
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    return push()

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

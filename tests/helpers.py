"""Helpers the tests share: paths to the project and ../shared, a tiny run's config."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA_DIR = SHARED / "data" / "safe-guard"
TOKENIZER_DIR = SHARED / "tokenizers" / "qwen2.5"

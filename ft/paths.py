"""Where the project is: its root (the working directory of every run) and ``../shared`` beside it, the
offline data and tokenizer of build and CI machines."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

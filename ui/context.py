"""What every tab is given: the data directory and the open label store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curation.store import LabelStore


@dataclass
class Studio:
    data_dir: Path
    store: LabelStore
    demo: bool = False
    """True when the app started on the bundled demo dataset (no data of its own yet)."""
    runs_dir: Path | None = None
    """Training runs; data_dir/runs unless given."""

    def __post_init__(self) -> None:
        if self.runs_dir is None:
            self.runs_dir = self.data_dir / "runs"

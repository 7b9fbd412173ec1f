"""Paths a user types (a dataset, a model, a run, a snapshot) must stay inside the allowed roots.

The roots are the data directory and the folders named with ``--allow-path``.
A path is resolved with symlinks followed before the check, so ``../`` and a
symlink pointing out of a root are refused alike. A reference that is not a
path on disk and looks like a Hub id (``owner/name``) passes as a Hub id.
"""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


class PathError(ValueError):
    """A typed path points outside the allowed roots."""


def resolve_inside(path: str | Path, roots: list[Path]) -> Path:
    """``path`` resolved (symlinks followed), or PathError when it is outside every root."""
    resolved = Path(path).expanduser().resolve()
    for root in roots:
        if resolved == root.resolve() or resolved.is_relative_to(root.resolve()):
            return resolved
    shown = ", ".join(str(r) for r in roots) or "none configured"
    raise PathError(f"{path}: outside the allowed folders ({shown}); start the app with --allow-path to add one")


DATA_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json", ".yaml", ".yml")


def looks_like_path(ref: str) -> bool:
    """Whether ``ref`` is meant as a path, decided from its spelling alone: asking the disk first would tell
    a caller whether a path outside the allowed folders exists."""
    return (
        ref.startswith(("/", ".", "~"))
        or "\\" in ref
        or ".." in ref
        or ref.count("/") > 1
        or Path(ref).suffix.lower() in DATA_SUFFIXES
    )


def checked_reference(ref: str, roots: list[Path]) -> str:
    """A path inside the roots (made absolute), a Hub id unchanged, or PathError."""
    ref = ref.strip()
    if not ref:
        raise PathError("no path or Hub id given")
    if looks_like_path(ref):
        return str(resolve_inside(ref, roots))
    if not _HUB_ID.match(ref):
        raise PathError(f"{ref!r} is neither an allowed path nor a Hub id (owner/name)")
    return ref

"""Frozen label sets: the files a training run reads, and their push to the Hub.

CONTRACT (the trainer reads it): a snapshot is a directory
``<data_dir>/snapshots/<snapshot_id>/`` holding one ``<split>.parquet`` per
split with exactly the columns ``text`` (string) and ``label`` (int64, 0
benign, 1 injection), plus ``manifest.json``. A snapshot never changes once
written: it is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.labels import BENIGN, INJECTION, LABEL_RULE, label_name
from hub import commit_files, hub_token

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SnapshotRow:
    """One example as frozen: its current label and what it started as."""

    id: int
    split: str
    text: str
    text_hash: str
    label: int
    original_label: int | None


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    path: Path
    manifest: dict

    @property
    def files(self) -> list[Path]:
        """The split parquet files and the manifest, for download."""
        return [self.path / f"{split}.parquet" for split in self.manifest["splits"]] + [self.path / MANIFEST]


def content_hash(rows: Sequence[SnapshotRow]) -> str:
    """A hash of (split, text, label) for every row: equal label sets give equal hashes, whatever the file bytes."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: (r.split, r.text_hash)):
        digest.update(f"{row.split}\t{row.text_hash}\t{row.label}\n".encode())
    return digest.hexdigest()


def _manifest(
    snapshot_id: str, rows: Sequence[SnapshotRow], excluded: int, reviewers: dict[str, int], actor: str, digest: str
) -> dict:
    splits: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = splits.setdefault(row.split, {"rows": 0, label_name(BENIGN): 0, label_name(INJECTION): 0})
        counts["rows"] += 1
        counts[label_name(row.label)] += 1
    changes = [
        {"id": r.id, "split": r.split, "text_hash": r.text_hash, "original_label": r.original_label, "label": r.label}
        for r in rows
        if r.original_label is not None and r.label != r.original_label
    ]
    added = [
        {"id": r.id, "split": r.split, "text_hash": r.text_hash, "label": r.label}
        for r in rows
        if r.original_label is None
    ]
    return {
        "id": snapshot_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "created_by": actor,
        "label_rule": LABEL_RULE,
        "columns": {"text": "string", "label": "int64: 0 benign, 1 injection"},
        "splits": dict(sorted(splits.items())),
        "content_hash": f"sha256:{digest}",
        "n_changes": len(changes),
        "changes": changes,
        "n_added": len(added),
        "added": added,
        "excluded_without_label": excluded,
        "reviewers": [{"reviewer": name, "votes": n} for name, n in sorted(reviewers.items())],
    }


def write_snapshot(
    snapshots_dir: Path, rows: Sequence[SnapshotRow], *, excluded: int, reviewers: dict[str, int], actor: str
) -> SnapshotInfo:
    """Write the snapshot directory; the same labels written twice in one second give the same snapshot."""
    digest = content_hash(rows)
    snapshot_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}"
    final = snapshots_dir / snapshot_id
    if final.is_dir():
        return read_snapshot(final)
    manifest = _manifest(snapshot_id, rows, excluded, reviewers, actor, digest)
    staging = snapshots_dir / f".tmp-{snapshot_id}-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        for split in manifest["splits"]:
            chosen = [r for r in rows if r.split == split]
            table = pa.table(
                {
                    "text": pa.array([r.text for r in chosen], pa.string()),
                    "label": pa.array([r.label for r in chosen], pa.int64()),
                }
            )
            pq.write_table(table, staging / f"{split}.parquet")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SnapshotInfo(snapshot_id, final, manifest)


def read_snapshot(path: Path) -> SnapshotInfo:
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    return SnapshotInfo(path.name, path, manifest)


def list_snapshots(snapshots_dir: Path) -> list[SnapshotInfo]:
    """Every complete snapshot, newest first (staging directories, stray files and unreadable manifests are
    skipped, so one damaged folder does not hide the others)."""
    if not snapshots_dir.is_dir():
        return []
    found = []
    for path in snapshots_dir.iterdir():
        if path.is_dir() and not path.name.startswith(".") and (path / MANIFEST).is_file():
            try:
                found.append(read_snapshot(path))
            except (OSError, ValueError):
                continue
    return sorted(found, key=lambda s: s.id, reverse=True)


def delete_snapshot(snapshots_dir: Path, snapshot_id: str) -> SnapshotInfo:
    """Remove one snapshot; it leaves the list at once (renamed aside first), then its files go."""
    found = next((s for s in list_snapshots(snapshots_dir) if s.id == snapshot_id), None)
    if found is None:
        raise KeyError(f"no snapshot {snapshot_id!r}")
    doomed = snapshots_dir / f".deleting-{snapshot_id}-{os.getpid()}"
    try:
        found.path.rename(doomed)
    except FileNotFoundError:
        raise KeyError(f"no snapshot {snapshot_id!r} (deleted meanwhile)") from None
    shutil.rmtree(doomed, ignore_errors=True)
    return found


def _dataset_card(snapshot: SnapshotInfo) -> str:
    files = "\n".join(f"      - split: {split}\n        path: {split}.parquet" for split in snapshot.manifest["splits"])
    counts = "\n".join(
        f"- {split}: {c['rows']} rows ({c['benign']} benign, {c['injection']} injection)"
        for split, c in snapshot.manifest["splits"].items()
    )
    return (
        f"---\nconfigs:\n  - config_name: default\n    data_files:\n{files}\n---\n\n"
        f"# Prompt-injection labels, snapshot {snapshot.id}\n\n"
        f"Exported by Injection Studio. Columns `text` and `label` (0 benign, 1 injection).\n\n{counts}\n\n"
        f"Labels changed against the original: {snapshot.manifest['n_changes']}. "
        f"Content hash: `{snapshot.manifest['content_hash']}`. See `manifest.json`.\n"
    )


def push_to_hub(snapshot: SnapshotInfo, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Upload the snapshot as a Hub dataset in one commit; its URL.

    The commit only adds (or replaces) this snapshot's files and the dataset card: it deletes nothing, since the
    repo may hold files this studio did not write. Split files of an older snapshot that this one lacks stay,
    but the card's ``data_files`` names only this snapshot's splits, so loaders read only those.
    Refuses to run without a token (argument or HF_TOKEN), so nothing is attempted offline by accident.
    """
    token = hub_token(token, "push snapshots to the Hub")
    files = {**{p.name: p for p in snapshot.files}, "README.md": _dataset_card(snapshot).encode()}
    return commit_files(repo_id, "dataset", files, f"Snapshot {snapshot.id}", token, private)

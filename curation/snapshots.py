"""Snapshots: the current labels frozen as files a training run reads (create, with a mix; list; delete; push).

CONTRACT (the trainer, ft.data and ft.evaluate read it): a snapshot is a directory
``<data_dir>/snapshots/<snapshot_id>/`` holding one ``<split>.parquet`` per split and ``manifest.json``.

- Splits: those the examples were imported in (``train``, ``test``, ...), changed only by the mix
  (curation.mix): rows carved from train into ``test``, and ``unseen.parquet`` for the rows of held-out
  sources, never trained on (``python -m ft.evaluate --data <snapshot> --split unseen`` scores them).
- Columns, in this order: ``text`` (string), ``label`` (int64, 0 benign, 1 injection), ``source`` (string,
  never null: the row's source in the store, ``<file>[/<subset>...]``). A weighted train row appears as many
  times as it is repeated. Snapshots written before sources were kept have ``text`` and ``label`` only.
- ``manifest.json``: ``id``, ``created_at``, ``created_by``, ``label_rule``, ``columns``, ``splits``
  ({split: {rows, benign, injection}}), ``sources`` ({source: {split: {rows, benign, injection}}}), ``mix``
  (the MixOptions as chosen, ``MixOptions.as_dict``), ``mix_effect`` ({train_rows_left_out,
  train_rows_repeated}), ``content_hash`` (sha256 over split, text hash and label of every row),
  ``n_changes``/``changes`` (labels changed against the original), ``n_added``/``added`` (texts with no original
  label), ``excluded_without_label``, ``reviewers``. Older manifests lack ``sources``, ``mix`` and ``mix_effect``:
  read them with ``.get``.

A snapshot never changes once written: it is written under a temporary name and renamed into place; deleting
renames it aside first, so a listing never shows half a snapshot.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.database import Database
from curation.labels import BENIGN, INJECTION, LABEL_RULE, label_name
from curation.mix import MixOptions, mix
from hub import commit_files, hub_token

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SnapshotRow:
    """One example as frozen: its current label, what it started as, and where it came from."""

    id: int
    split: str
    text: str
    text_hash: str
    label: int
    original_label: int | None
    source: str


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


def _label_counts() -> dict[str, int]:
    return {"rows": 0, label_name(BENIGN): 0, label_name(INJECTION): 0}


def _counted(counts: dict[str, int], label: int) -> None:
    counts["rows"] += 1
    counts[label_name(label)] += 1


def split_counts(rows: Sequence[SnapshotRow]) -> dict[str, dict[str, int]]:
    """{split: {rows, benign, injection}}, splits in name order."""
    splits: dict[str, dict[str, int]] = {}
    for row in rows:
        _counted(splits.setdefault(row.split, _label_counts()), row.label)
    return dict(sorted(splits.items()))


def source_counts(rows: Sequence[SnapshotRow]) -> dict[str, dict[str, dict[str, int]]]:
    """{source: {split: {rows, benign, injection}}}, sources and splits in name order."""
    sources: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        _counted(sources.setdefault(row.source, {}).setdefault(row.split, _label_counts()), row.label)
    return {source: dict(sorted(splits.items())) for source, splits in sorted(sources.items())}


@dataclass(frozen=True)
class Provenance:
    """What a manifest records besides the rows: who made it from what, and how it was mixed."""

    actor: str
    excluded: int
    """Examples left out for having no current label."""
    reviewers: dict[str, int]
    options: MixOptions
    left_out: int
    repeated: int


def _manifest(snapshot_id: str, rows: Sequence[SnapshotRow], made: Provenance, digest: str) -> dict:
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
        "created_by": made.actor,
        "label_rule": LABEL_RULE,
        "columns": {"text": "string", "label": "int64: 0 benign, 1 injection", "source": "string"},
        "splits": split_counts(rows),
        "sources": source_counts(rows),
        "mix": made.options.as_dict(),
        "mix_effect": {"train_rows_left_out": made.left_out, "train_rows_repeated": made.repeated},
        "content_hash": f"sha256:{digest}",
        "n_changes": len(changes),
        "changes": changes,
        "n_added": len(added),
        "added": added,
        "excluded_without_label": made.excluded,
        "reviewers": [{"reviewer": name, "votes": n} for name, n in sorted(made.reviewers.items())],
    }


def _split_table(rows: Sequence[SnapshotRow]) -> pa.Table:
    return pa.table(
        {
            "text": pa.array([r.text for r in rows], pa.string()),
            "label": pa.array([r.label for r in rows], pa.int64()),
            "source": pa.array([r.source for r in rows], pa.string()),
        }
    )


def write_snapshot(snapshots_dir: Path, rows: Sequence[SnapshotRow], made: Provenance) -> SnapshotInfo:
    """Write the snapshot directory; the same labels written twice in one second give the same snapshot."""
    digest = content_hash(rows)
    snapshot_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}"
    final = snapshots_dir / snapshot_id
    if final.is_dir():
        return read_snapshot(final)
    manifest = _manifest(snapshot_id, rows, made, digest)
    staging = snapshots_dir / f".tmp-{snapshot_id}-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        for split in manifest["splits"]:
            pq.write_table(_split_table([r for r in rows if r.split == split]), staging / f"{split}.parquet")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SnapshotInfo(snapshot_id, final, manifest)


def read_snapshot(path: Path) -> SnapshotInfo:
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    return SnapshotInfo(path.name, path, manifest)


@functools.lru_cache(maxsize=64)
def data_description(ref: str) -> str | None:
    """What a run's data is when it is a snapshot: its id, mix, rows per split and number of sources, in one line
    (a snapshot never changes, so each is read once); None for other data."""
    try:
        snapshot = read_snapshot(Path(ref))
    except (OSError, ValueError):
        return None
    manifest = snapshot.manifest
    splits = ", ".join(f"{name} {split['rows']:,}" for name, split in manifest["splits"].items())
    mix = MixOptions.from_dict(manifest.get("mix")).describe()
    sources = f"; {len(manifest['sources'])} sources" if manifest.get("sources") else ""
    return f"data: snapshot {snapshot.id} (mix: {mix}; {splits}{sources})"


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


def _columns_line(manifest: dict) -> str:
    """The snapshot's columns as the dataset card names them (a snapshot from before sources has two)."""
    sources = ", `source` (where the row came from)" if "source" in manifest.get("columns", {}) else ""
    return f"`text`, `label` (0 benign, 1 injection){sources}"


def _dataset_card(snapshot: SnapshotInfo) -> str:
    files = "\n".join(f"      - split: {split}\n        path: {split}.parquet" for split in snapshot.manifest["splits"])
    counts = "\n".join(
        f"- {split}: {c['rows']} rows ({c['benign']} benign, {c['injection']} injection)"
        for split, c in snapshot.manifest["splits"].items()
    )
    return (
        f"---\nconfigs:\n  - config_name: default\n    data_files:\n{files}\n---\n\n"
        f"# Prompt-injection labels, snapshot {snapshot.id}\n\n"
        f"Exported by Injection Studio. Columns {_columns_line(snapshot.manifest)}.\n\n{counts}\n\n"
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


DataUsers = Callable[[Path], AbstractContextManager[list[str]]]
"""Given a snapshot's folder, a context that holds the runs' data lock and gives the ids of the runs and audits
whose data it is. The runner has both (runner.catalog.data_lock, runs_using); curation sits beside the runner,
not above it, so the caller (ui/) passes them in."""


class SnapshotInUse(ValueError):
    """A snapshot that a run or audit names as its data: deleting it would take that run's labels away."""


class Snapshots(Database):
    """The store's snapshots: ``<data_dir>/snapshots/``, each creation and deletion in the audit log."""

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    def _labelled_rows(self) -> tuple[list[SnapshotRow], int, dict[str, int]]:
        """Every example with a current label, in id order; how many have none; standing votes per reviewer."""
        with self._read() as con:
            rows = [
                SnapshotRow(*row)
                for row in con.execute(
                    "SELECT e.id, e.split, t.text, t.text_hash, e.current_label, e.original_label, e.source "
                    "FROM examples e JOIN texts t ON t.id = e.id WHERE e.current_label IS NOT NULL ORDER BY e.id"
                )
            ]
            excluded = con.execute("SELECT count(*) FROM examples WHERE current_label IS NULL").fetchone()[0]
            reviewers = dict(
                con.execute("SELECT reviewer, count(*) FROM votes WHERE retracted_at IS NULL GROUP BY reviewer")
            )
        return rows, excluded, reviewers

    def create_snapshot(self, actor: str, options: MixOptions | None = None) -> SnapshotInfo:
        """Freeze the current labels into ``snapshots/<id>/``, mixed as ``options`` say (see the CONTRACT above;
        no options: every labelled example once, in the split it was imported in).

        Examples without a current label (sent from Detect with a tie or no vote) are left out and counted.
        ValueError when an option names a source the store does not hold, or the mix leaves no train rows.
        """
        options = options or MixOptions()
        rows, excluded, reviewers = self._labelled_rows()
        unknown = options.unknown_names({r.source for r in rows})
        if unknown:
            raise ValueError(f"no source named {', '.join(map(repr, unknown))} in the store")
        mixed = mix(rows, options)
        if not any(r.split == "train" for r in mixed.rows):
            raise ValueError("this mix leaves no train rows")
        made = Provenance(actor, excluded, reviewers, options, mixed.left_out, mixed.repeated)
        snapshot = write_snapshot(self.snapshots_dir, mixed.rows, made)
        with self._write() as con:
            self._log(con, actor, "snapshot", snapshot_id=snapshot.id, content_hash=snapshot.manifest["content_hash"])
        return snapshot

    def delete_snapshot(self, snapshot_id: str, actor: str, users: DataUsers | None = None) -> None:
        """Remove a snapshot's folder and note who did it in the audit trail (KeyError if there is none).

        With ``users``: refused (SnapshotInUse) while a run or audit names the snapshot as its data, so every run
        keeps the labels it was trained on; the check and the removal happen inside ``users``' lock, so no run
        can start on the snapshot in between.
        """
        chosen = next((s for s in self.list_snapshots() if s.id == snapshot_id), None)
        if users is None or chosen is None:
            return self._delete_snapshot(snapshot_id, actor)
        with users(chosen.path) as using:
            if using:
                raise SnapshotInUse(f"{snapshot_id} is the data of {', '.join(using)}: delete those runs first.")
            self._delete_snapshot(snapshot_id, actor)

    def _delete_snapshot(self, snapshot_id: str, actor: str) -> None:
        gone = delete_snapshot(self.snapshots_dir, snapshot_id)
        with self._write() as con:
            self._log(con, actor, "delete_snapshot", snapshot_id=gone.id, content_hash=gone.manifest["content_hash"])

    def list_snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot of this data directory, newest first."""
        return list_snapshots(self.snapshots_dir)

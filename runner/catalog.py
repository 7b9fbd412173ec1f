"""The runs on disk, read: one ``RunInfo`` per run folder (state.json, job.json, config.yaml), the runs
that use a dataset, whether a run's processes live, its log tail. Reading never writes: a dead run's state is
settled by the scheduler (``runner.queue``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ft.paths import ROOT
from ft.run_dir import RunDir
from runner.secrets import redact

DATA_LOCK_NAME = "data.lock"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when present: the run list re-reads every run's config.yaml on each refresh."""
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class RunInfo:
    """One run as read from its folder: state.json, job.json and config.yaml."""

    dir: RunDir
    state: dict
    job: dict
    config: dict
    queue_position: int | None = None
    """1 for the next queued run to start; None when not queued."""

    run_id = property(lambda self: self.dir.run_id)
    status = property(lambda self: self.state.get("status", "unknown"))
    name = property(lambda self: self.config.get("run_name") or self.dir.run_id)
    model = property(lambda self: str(self.config.get("model", "")))
    data = property(lambda self: str(self.config.get("data", "")))
    kind = property(lambda self: self.job.get("kind") or self.state.get("kind") or "train")
    """"train", or "audit" for a label audit (queued from the app, or started from the shell)."""

    @property
    def created(self) -> float:
        """When the run was submitted (or, for a run started from the shell, started); 0 when unknown."""
        times = (self.job.get("submitted"), self.state.get("queued_at"), self.state.get("started"))
        return next((t for t in times if t), 0.0)

    @property
    def queue_key(self) -> tuple:
        return self.state.get("queued_at") or self.created, self.run_id


def _read_config(run: RunDir) -> dict:
    try:
        values = yaml.load(run.config.read_text(), Loader=YAML_LOADER)
    except (OSError, yaml.YAMLError):
        return {}
    return values if isinstance(values, dict) else {}


def read_run(run: RunDir) -> RunInfo:
    return RunInfo(run, run.read_state(), run.read_job(), _read_config(run))


def _run_dirs(runs_dir: Path) -> list[RunDir]:
    if not runs_dir.is_dir():
        return []
    return [
        RunDir(p)
        for p in runs_dir.iterdir()
        if p.is_dir() and ((p / "state.json").exists() or (p / "config.yaml").exists())
    ]


def _queue_positions(runs: list[RunInfo]) -> dict[str, int]:
    """Each queued run's place in the queue (1 = next), by id."""
    queued = sorted((r for r in runs if r.status == "queued"), key=lambda r: r.queue_key)
    return {r.run_id: i for i, r in enumerate(queued, 1)}


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run folder under ``runs_dir``, newest first, queued ones with their position. Reads only."""
    runs = [read_run(run) for run in _run_dirs(Path(runs_dir))]
    position = _queue_positions(runs)
    runs = [dataclasses.replace(r, queue_position=position.get(r.run_id)) for r in runs]
    return sorted(runs, key=lambda r: r.created, reverse=True)


def queue_position(runs_dir: str | Path, run_id: str) -> int | None:
    """A queued run's place in the queue as ``list_runs`` gives it, from every run's state and job files alone
    (no config.yaml is parsed): what polling one queued run costs."""
    runs = [RunInfo(run, run.read_state(), run.read_job(), {}) for run in _run_dirs(Path(runs_dir))]
    return _queue_positions(runs).get(run_id)


@contextlib.contextmanager
def data_lock(runs_dir: str | Path):
    """Held (across processes) while a new run's data is checked and its config written, and while data is
    deleted: so a snapshot cannot vanish between a run's check and its config naming it."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / DATA_LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def completed_training_runs(runs: list[RunInfo]) -> list[RunInfo]:
    """The completed training runs (not audits) that left an adapter, in the order given: the ones a detector
    can be loaded from, compared or audited with."""
    return [r for r in runs if r.kind == "train" and r.status == "completed" and r.dir.adapter.is_dir()]


def runs_using(runs_dir: str | Path, data: str | Path) -> list[str]:
    """The ids of runs (and audits) whose data is ``data`` or a file inside it (relative paths from ROOT,
    where runs start)."""
    target = Path(data).resolve()

    def uses(info: RunInfo) -> bool:
        named = (ROOT / info.data).resolve() if info.data else None
        return named is not None and (named == target or named.is_relative_to(target))

    return [info.run_id for info in list_runs(runs_dir) if uses(info)]


def _proc_says_dead(pid: int) -> bool:
    """True when /proc shows ``pid`` a zombie or another program (its pid reused); False when it cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return False
    zombie = stat.rpartition(")")[2].split()[:1] == ["Z"]
    return zombie or not any(program in cmdline for program in ("ft.train", "ft.audit", "accelerate"))


def process_alive(info: RunInfo) -> bool:
    """Whether the run's processes are still there: its process group when the app launched it, else its pid."""
    pgid, pid = info.job.get("pgid"), info.state.get("pid")
    target = pgid or pid
    if not target:
        return False
    try:
        (os.killpg if pgid else os.kill)(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _proc_says_dead(target)


def log_tail(info: RunInfo, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the run's log, secrets redacted: the only way the page shows a log."""
    return redact(info.dir.log_tail(lines))

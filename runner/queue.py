"""Background training runs: a queue on disk, one child process per run, state read back from files.

Features
- ``JobManager.submit`` refuses an unusable config with the reason (``TrainConfig.validate``, missing
  local paths, a secret typed into a field) and otherwise only writes ``runs/<id>/config.yaml`` and
  ``state.json`` ``{"status": "queued", "queued_at": ...}``: nothing starts in the caller.
- A scheduler thread (``start``) launches the oldest queued run whenever no run is active; it needs no
  browser. Only the holder of ``flock(runs/scheduler.lock)`` launches, so two apps on one data directory
  never run a job twice; the other one reads, and takes over the lock if the holder goes away.
- A run's command comes from ``runner.commands``; it runs in its own session, stdout and stderr appended to
  ``log.txt``: a file, never a pipe the app must drain, so runs outlive the browser tab and the app itself.
- ``job.json`` holds what only the app writes (process group, command, cancel request, step at launch).
  It is kept apart from ``state.json`` because the child rewrites that file every second, and two
  writers of one file lose each other's fields.
- Reads never write. The scheduler's step settles dead runs, once: a run whose process is gone while its
  state says "running" becomes "cancelled" if a cancel was asked, else "failed" with the last lines of its log.
- Cancel sends SIGTERM to the run's process group (the run saves a checkpoint and ends "cancelled");
  asking again after ``FORCE_AFTER_S`` sends SIGKILL. Resume re-queues a cancelled or failed run under
  its own id with ``--resume``. Delete removes a run's folder, never a live one.
- A label audit (``ft.audit``) is queued the same way (``submit_audit``): ``job.json`` says
  ``kind: "audit"`` with its ``AuditOptions``; cancel, resume, delete and the runs table treat it like any run.

Trade-offs
- One run at a time on the machine: a run takes every visible GPU, so a second one would only compete.
- The queue advances while some app instance is up; runs already started go on without it.
- Liveness is ``kill(pgid, 0)`` plus, on Linux, a look at ``/proc`` (zombie, or a pid reused by another
  program); elsewhere a reused pid could keep a dead run "running" until the app is restarted.
- State is polled from files (about once a second), not pushed; a dead run shows "running" until the
  scheduler's next step (``poll_s``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ft.config import AuditOptions, TrainConfig, cuda_device_count, new_run_id
from ft.paths import ROOT
from ft.run_dir import JOB_FILE, TERMINAL, RunDir, read_json, write_json
from runner.catalog import RunInfo, data_lock, list_runs, log_tail, process_alive, queue_position, read_run
from runner.commands import audit_command, child_environment, train_command
from runner.forms import check_config

LOCK_NAME = "scheduler.lock"
AUDIT = "audit"
FORCE_AFTER_S = 30.0
FAILED_TAIL_LINES = 12
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class JobError(RuntimeError):
    """An action the run's state does not allow (cancel a finished run, delete a live one...)."""


def _settled(info: RunInfo) -> RunInfo:
    """The run with its true status, written down: a "running" run whose processes are gone is cancelled
    (if a cancel was asked) or failed (with its log's last lines). Only the scheduler calls this."""
    if info.status != "running" or process_alive(info):
        return info
    state = info.dir.read_state()  # re-read: the child writes its final status just before it exits
    if state.get("status") != "running":
        return dataclasses.replace(info, state=state)
    ended = time.time()
    if info.job.get("cancel_requested"):
        state = info.dir.write_state(status="cancelled", ended=ended)
    else:
        tail = log_tail(info, FAILED_TAIL_LINES).strip() or "(the log is empty)"
        error = f"the run's process died; last lines of its log:\n{tail}"
        state = info.dir.write_state(status="failed", ended=ended, error=error)
    return dataclasses.replace(info, state=state)


class JobManager:
    """The queue and the processes of one runs directory. No Gradio; safe to call from several threads."""

    def __init__(self, runs_dir: str | Path, *, gpus: int | None = None, poll_s: float = 1.0):
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.gpus = cuda_device_count() if gpus is None else gpus
        self.poll_s = poll_s
        self._mutex = threading.RLock()
        self._children: dict[str, subprocess.Popen] = {}
        self._lock_file = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading

    def run_dir(self, run_id: str) -> RunDir:
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
            raise JobError(f"not a run id: {run_id!r}")
        return RunDir(self.runs_dir / run_id)

    def runs(self) -> list[RunInfo]:
        """Every run as its files say, newest first. Reads only."""
        return list_runs(self.runs_dir)

    def get(self, run_id: str) -> RunInfo:
        """One run as its files say, as runs() gives it. Reads only that run's folder, unless it is queued (its
        position in the queue depends on the other queued runs)."""
        run = self.run_dir(run_id)
        if not run.path.is_dir():
            raise JobError(f"no run {run_id!r} in {self.runs_dir}")
        info = read_run(run)
        if info.status != "queued":
            return info
        return dataclasses.replace(info, queue_position=queue_position(self.runs_dir, run_id))

    def command(self, run_id: str, resume: bool = False) -> list[str]:
        """The argv the run is (or will be) launched with: ``ft.train``, or ``ft.audit`` for an audit job."""
        run = self.run_dir(run_id)
        job = run.read_job()
        if job.get("kind") == AUDIT:
            return audit_command(run.config, run_id, AuditOptions(**job.get("audit", {})), resume=resume)
        return train_command(run.config, run_id, resume=resume, gpus=self.gpus)

    def wait(self, run_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 600.0) -> RunInfo:
        """Block until the run's status is one of ``statuses`` (TimeoutError after ``timeout`` seconds).

        Without a scheduler thread in this manager, it steps the scheduler itself, as a script driving the
        queue would: a run that died is settled only by a scheduler step."""
        deadline = time.monotonic() + timeout
        while True:
            if self._thread is None:
                self.tick()
            info = self.get(run_id)
            if info.status in statuses:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {info.status} after {timeout:.0f}s")
            time.sleep(0.2)

    # -- actions

    def new_run_id(self, config: TrainConfig) -> str:
        """A run id free in this runs directory (the time and the run's name, suffixed if taken)."""
        base = new_run_id(config)
        candidate, n = base, 1
        while (self.runs_dir / candidate).exists():
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def submit(self, config: TrainConfig, run_id: str | None = None) -> str:
        """Queue a run of ``config``; returns its id. ConfigError, with the reason, if the config is unusable.

        ``run_id`` (as shown by "Show command") is used when still free, else a new one is made.
        """
        return self._queue(config, run_id, {})

    def submit_audit(self, config: TrainConfig, options: AuditOptions, run_id: str | None = None) -> str:
        """Queue a label audit of ``config``'s data (``python -m ft.audit``); returns its id.

        ConfigError, with the reason, if the config or the options are unusable. An in-sample run is given
        by its id in this runs directory or by its folder.
        """
        if options.in_sample_run and RUN_ID_PATTERN.fullmatch(options.in_sample_run):
            options = dataclasses.replace(options, in_sample_run=str(self.runs_dir / options.in_sample_run))
        options.validate()
        named = dataclasses.replace(config, run_name=f"audit-{config.run_name or config.model}")
        return self._queue(
            config, run_id or self.new_run_id(named), {"kind": AUDIT, "audit": dataclasses.asdict(options)}
        )

    def _queue(self, config: TrainConfig, run_id: str | None, job: dict) -> str:
        config = dataclasses.replace(config, runs_dir=str(self.runs_dir))
        with data_lock(self.runs_dir), self._mutex:
            check_config(config)
            config = config.resolved()
            if not run_id or not RUN_ID_PATTERN.fullmatch(run_id) or (self.runs_dir / run_id).exists():
                run_id = self.new_run_id(config)
            run = self.run_dir(run_id)
            run.path.mkdir(parents=True)
            run.config.write_text(config.to_yaml())
            now = time.time()
            write_json(run.path / JOB_FILE, {"submitted": now, "resume": False, **job})
            run.write_state(status="queued", queued_at=now, **({"kind": job["kind"]} if "kind" in job else {}))
        self._wake.set()
        return run_id

    def cancel(self, run_id: str) -> str:
        """Stop a run: a queued one at once, a running one by SIGTERM (SIGKILL when asked again later)."""
        with self._mutex:
            info = self.get(run_id)
            if info.status == "queued":
                info.dir.write_state(status="cancelled", ended=time.time())
                return f"{run_id}: removed from the queue"
            if info.status != "running":
                raise JobError(f"{run_id} is {info.status}: nothing to cancel")
            asked = info.job.get("cancel_requested")
            force = bool(asked) and time.time() - asked >= FORCE_AFTER_S
            if not asked:
                self._update_job(info, cancel_requested=time.time())
            self._signal(info, signal.SIGKILL if force else signal.SIGTERM)
            if force:
                return f"{run_id}: killed"
            return f"{run_id}: cancelling (it saves a checkpoint after the current step)"

    def resume(self, run_id: str) -> str:
        """Queue a cancelled or failed run again under its id; it continues from its last checkpoint."""
        with self._mutex:
            info = self.get(run_id)
            if info.status not in ("cancelled", "failed"):
                raise JobError(f"{run_id} is {info.status}: only a cancelled or failed run can be resumed")
            if not info.dir.config.exists():
                raise JobError(f"{run_id} has no config.yaml to resume from")
            now = time.time()
            kept = {k: info.job[k] for k in ("kind", "audit") if k in info.job}
            write_json(info.dir.path / JOB_FILE, {"submitted": info.job.get("submitted", now), "resume": True, **kept})
            info.dir.write_state(status="queued", queued_at=now, error=None, ended=None)
        self._wake.set()
        return f"{run_id}: queued to resume from {info.dir.last_checkpoint() or 'the start (no checkpoint)'}"

    def delete(self, run_id: str) -> str:
        """Remove the run's folder; a live run must be cancelled first."""
        with self._mutex:
            info = self.get(run_id)
            if info.status == "running":
                raise JobError(f"{run_id} is running: cancel it first")
            shutil.rmtree(info.dir.path)
            return f"{run_id}: deleted"

    # -- the scheduler

    @property
    def is_scheduler(self) -> bool:
        """Whether this manager holds the runs directory's lock, and so is the one that launches runs."""
        return self._lock_file is not None

    def _acquire_lock(self) -> bool:
        if self._lock_file is None:
            handle = open(self.runs_dir / LOCK_NAME, "a")  # noqa: SIM115 (held open: the lock lives with the file)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
            self._lock_file = handle
        return True

    def tick(self) -> str | None:
        """One scheduler step: reap the children, settle dead runs, launch the next queued run if none is active.

        Returns the id of the run launched, if any. Only the lock holder settles and launches.
        """
        with self._mutex:
            if not self._acquire_lock():
                return None
            self._reap()
            runs = [_settled(r) for r in self.runs()]
            if any(r.status == "running" or (r.status == "queued" and process_alive(r)) for r in runs):
                return None
            queued = sorted((r for r in runs if r.status == "queued"), key=lambda r: r.queue_key)
            if not queued:
                return None
            self._launch(queued[0])
            return queued[0].run_id

    def start(self) -> None:
        """Run the scheduler in a daemon thread; it launches only while it holds the lock."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"jobs:{self.runs_dir}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the scheduler thread and release the lock; runs already started go on."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # the scheduler must outlive one bad run folder
                print(f"runner.queue: scheduler step failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def training_here(self) -> bool:
        """Whether a run this process started is still running (its cores are taken)."""
        return any(child.poll() is None for child in list(self._children.values()))

    def _launch(self, info: RunInfo) -> None:
        """Start the run's process; a run that cannot start is marked failed, so it never blocks the queue."""
        resume = bool(info.job.get("resume"))
        start_step = info.state.get("step", 0) if resume else 0
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            argv = self.command(info.run_id, resume=resume)
            with info.dir.log.open("ab") as log:
                log.write(f"=== {stamp} {'resume' if resume else 'start'}: {shlex.join(argv)}\n".encode())
                log.flush()
                child = subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env=child_environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except Exception as exc:  # an unreadable job.json or config as much as a missing executable
            info.dir.write_state(
                status="failed", ended=time.time(), error=f"could not start: {type(exc).__name__}: {exc}"
            )
            return
        self._children[info.run_id] = child
        self._update_job(
            info, pgid=child.pid, launched=time.time(), command=argv, start_step=start_step, cancel_requested=None
        )
        info.dir.write_state(status="running")

    def _reap(self) -> None:
        """Collect the exit of children that ended, so they stop looking alive (a zombie still has a pid)."""
        for run_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[run_id]

    def _update_job(self, info: RunInfo, **fields) -> None:
        path = info.dir.path / JOB_FILE
        write_json(path, {**read_json(path), **fields})

    def _signal(self, info: RunInfo, signum: int) -> None:
        pgid, pid = info.job.get("pgid"), info.state.get("pid")
        try:
            if pgid:
                os.killpg(pgid, signum)
            elif pid:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass

"""Background training runs: a queue on disk, one child process per run, state read back from files.

Features
- ``JobManager.submit`` refuses an unusable config with the reason (``TrainConfig.validate``, missing
  local paths, a secret typed into a field) and otherwise only writes ``runs/<id>/config.yaml`` and
  ``state.json`` ``{"status": "queued", "queued_at": ...}``: nothing starts in the caller.
- A scheduler thread (``start``) launches the oldest queued run whenever no run is active; it needs no
  browser. Only the holder of ``flock(runs/scheduler.lock)`` launches, so two apps on one data directory
  never run a job twice; the other one reads, and takes over the lock if the holder goes away.
- A run is ``python -m ft.train --config runs/<id>/config.yaml --run-id <id> [--resume]`` (under
  ``accelerate launch --multi_gpu --num_processes N`` where N > 1 GPUs are visible), in its own session,
  stdout and stderr appended to ``log.txt``: a file, never a pipe the app must drain, so runs outlive the
  browser tab and the app itself.
- ``job.json`` holds what only the app writes (process group, command, cancel request, step at launch).
  It is kept apart from ``state.json`` because the child rewrites that file every second, and two
  writers of one file lose each other's fields.
- Reading the runs reconciles them: a run whose process is gone while its state says "running" becomes
  "cancelled" if a cancel was asked, else "failed" with the last lines of its log.
- Cancel sends SIGTERM to the run's process group (the run saves a checkpoint and ends "cancelled");
  asking again after ``FORCE_AFTER_S`` sends SIGKILL. Resume re-queues a cancelled or failed run under
  its own id with ``--resume``. Delete removes a run's folder, never a live one.
- Secrets (WANDB_API_KEY, HF_TOKEN, ...) reach the child only through its environment; any text the
  page shows from a run goes through ``redact``.
- A label audit (``ft.audit``) is queued the same way (``submit_audit``): ``job.json`` says
  ``kind: "audit"`` with its ``AuditOptions``, and the run's command is ``audit_command`` (``--resume`` on
  resume); cancel, resume, delete and the runs table treat it like any run.
- ``form_fields`` derives the page's form from ``dataclasses.fields(TrainConfig)``, with each field's
  one-line help in ``FIELD_HELP``; ``config_from_form`` turns the form's values into a config and
  ``form_values`` a saved config back into the form's values.

Trade-offs
- One run at a time on the machine: a run takes every visible GPU, so a second one would only compete.
- The queue advances while some app instance is up; runs already started go on without it.
- Liveness is ``kill(pgid, 0)`` plus, on Linux, a look at ``/proc`` (zombie, or a pid reused by another
  program); elsewhere a reused pid could keep a dead run "running" until the app is restarted.
- State is polled from files (about once a second), not pushed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import netrc
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import yaml

from ft.audit import AuditOptions, audit_command
from ft.run_dir import TERMINAL, RunDir
from ft.train import PRECISIONS, QUANTISATIONS, TEST_ANSWERS, TRACKERS, ConfigError, TrainConfig, new_run_id

ROOT = Path(__file__).resolve().parents[1]
"""The project root: the child's working directory, so ``-m ft.train`` imports this checkout."""

LOCK_NAME = "scheduler.lock"
DATA_LOCK_NAME = "data.lock"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when present: the run list re-reads every run's config.yaml on each refresh."""
JOB_FILE = "job.json"
AUDIT = "audit"
FORCE_AFTER_S = 30.0
LOG_TAIL_LINES = 40
FAILED_TAIL_LINES = 12
SECRET_NAMES = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN")
SECRET_NAME_PATTERN = re.compile(r"(TOKEN|API_KEY|SECRET|SECRET_KEY|ACCESS_KEY|PASSWORD)$")
MIN_SECRET_LENGTH = 8
REDACTED = "[redacted]"
APP_ONLY_VARIABLES = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL",
                      "STUDIO_USERS", "STUDIO_HF_USERS")
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_CONFIG_CHARS = 100_000
"""The longest config text a script may send (the project's configs are a few thousand characters)."""


class JobError(RuntimeError):
    """An action the run's state does not allow (cancel a finished run, delete a live one...)."""


# --- the form ------------------------------------------------------------------------------------

FIELD_HELP: dict[str, dict[str, str]] = {
    "Run": {
        "model": "Preset (smollm2-135m, qwen2.5-1.5b, tiny), Hub model id or local folder",
        "data": "Curation snapshot or dataset: folder of <split>.parquet files, one file, or a Hub id",
        "tracker": "Where the curves and prediction tables also go: wandb, trackio, or none",
        "run_name": "Name shown in the runs table and the tracker; part of the run id",
    },
    "Model": {
        "tokenizer": "Tokenizer id or folder; empty = the model's own (tiny borrows Qwen2.5's)",
        "quantisation": "auto = 4-bit NF4 on CUDA, none on CPU",
        "lora_r": "LoRA rank",
        "lora_alpha": "LoRA scaling numerator (scale = alpha / r)",
        "lora_dropout": "Dropout on the LoRA input, in [0, 1)",
        "modules_to_save": "Modules trained in full beside LoRA, comma-separated (tiny: embed_tokens, lm_head)",
        "gradient_checkpointing": "Recompute activations in the backward pass: less memory, slower",
        "lora_layers": "LoRA on the top N decoder layers only (empty = all): backward stops below them, faster",
        "precision": "auto = bf16 on a GPU that has it, else fp32; bf16 = bf16 autocast on CPU too (fast with AVX512-BF16/AMX)",
    },
    "Data": {
        "text_column": "Column holding the text",
        "label_column": "Column holding the label (0 benign, 1 injection)",
        "train_split": "Split trained on",
        "test_split": "Split of the before/after test metrics (eval.json)",
        "validation_split": "Split of the prediction tables; empty = carve validation_size rows from train",
        "validation_size": "Rows carved from train when there is no validation split",
        "max_train_rows": "Use at most this many training rows (empty = all)",
        "max_test_rows": "Use at most this many test rows (empty = all)",
        "max_length": "Token limit per example; the text is truncated, never the answer",
    },
    "Optimisation": {
        "epochs": "Passes over the training rows",
        "max_steps": "Stop after this many optimiser steps (-1 = run the epochs)",
        "batch_size": "Examples per device per step",
        "gradient_accumulation": "Batches summed into one optimiser step",
        "learning_rate": "Peak learning rate",
        "weight_decay": "AdamW weight decay",
        "warmup_steps": "Steps of linear warm-up from 0 to the peak learning rate",
        "lr_scheduler": "Learning-rate schedule after warm-up",
        "max_grad_norm": "Gradient clipping norm",
        "optim": "Optimiser; auto = paged 8-bit AdamW when quantised, else AdamW",
        "group_by_length": "Batch examples of similar length together (less padding)",
        "answer_only_logits": "Project only the answer positions through the LM head (same loss, less memory)",
        "seed": "Seed of the data order, the validation carve and the weights' init",
    },
    "Logging": {
        "project": "Tracker project name",
        "logging_steps": "Log loss and learning rate every this many steps",
        "save_steps": "Save a checkpoint every this many steps (resume starts from the last one)",
        "save_total_limit": "Checkpoints kept on disk",
        "prediction_samples": "Validation rows in the before/after prediction tables",
        "predictions_every_steps": "Also write a prediction table every this many steps (0 = epoch ends only)",
        "eval_batch_size": "Batch size when scoring",
        "test_answers": "Test answer text: generate = a greedy generation per row; first_token = the top next token of the scoring pass (free)",
        "threshold": "P(injection) at or above which a text counts as an injection",
    },
}
"""One-line help for every TrainConfig field the form shows, by section. ``runs_dir`` is the app's."""

APP_OWNED_FIELDS = ("runs_dir",)


@dataclass(frozen=True)
class FormField:
    """One TrainConfig field as the form shows it."""

    name: str
    section: str
    help: str
    kind: str
    """bool, int, float, str or list (of str, typed comma-separated)."""
    optional: bool
    default: object
    choices: tuple[str, ...] = ()
    open_choices: bool = True
    """Whether a value outside ``choices`` is allowed (a Hub id beside the presets)."""


def _field_choices() -> dict[str, tuple[tuple[str, ...], bool]]:
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    from ft.models import PRESETS

    return {
        "model": (tuple(PRESETS), True),
        "quantisation": (QUANTISATIONS, False),
        "precision": (PRECISIONS, False),
        "test_answers": (TEST_ANSWERS, False),
        "tracker": (TRACKERS, False),
        "lr_scheduler": (tuple(s.value for s in SchedulerType), False),
        "optim": (("auto", *(o.value for o in OptimizerNames)), False),
    }


RECIPES = {"smollm2-135m": "smollm2-cpu.yaml", "qwen2.5-1.5b": "qwen2.5-1.5b-qlora.yaml"}
"""The configs/ recipe for each default model (``ft.models.default_preset``)."""


def machine_recipe() -> Path:
    """The project's recipe for this machine's default model: the SmolLM2 CPU run, or Qwen2.5 QLoRA on CUDA."""
    from ft.models import default_preset

    return ROOT / "configs" / RECIPES[default_preset()]


@lru_cache(maxsize=1)
def form_fields() -> tuple[FormField, ...]:
    """Every TrainConfig field but the app-owned ones, in declaration order, with section, help and choices."""
    help_of = {name: (section, text) for section, fields in FIELD_HELP.items() for name, text in fields.items()}
    choices = _field_choices()
    found = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in APP_OWNED_FIELDS:
            continue
        section, text = help_of[f.name]
        base = str(f.type).replace(" | None", "")
        kind = "list" if base.startswith("list") else base
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        options, open_choices = choices.get(f.name, ((), True))
        found.append(FormField(f.name, section, text, kind, "None" in str(f.type), default, options, open_choices))
    return tuple(found)


def _coerce(field: FormField, value):
    """The form's value as the field's type, or a ConfigError naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if field.optional:
            return None
        if field.kind in ("str", "list"):
            return "" if field.kind == "str" else []
        raise ConfigError(f"{field.name} is required")
    if field.kind == "bool":
        return bool(value)
    if field.kind == "list":
        items = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value))
        return [str(item).strip() for item in items if str(item).strip()]
    if field.kind == "str":
        return str(value).strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field.name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{field.name} must be a finite number, got {value!r}")
    if field.kind == "int":
        if not number.is_integer():
            raise ConfigError(f"{field.name} must be a whole number, got {value!r}")
        return int(number)
    return number


def form_values(config: TrainConfig) -> dict[str, object]:
    """The form's values for ``config`` by field name: the inverse of ``config_from_form``."""
    values = {f.name: getattr(config, f.name) for f in form_fields()}
    return {name: ", ".join(v) if isinstance(v, list) else v for name, v in values.items()}


def config_from_form(values: dict[str, object], runs_dir: str | Path) -> TrainConfig:
    """A checked TrainConfig from the form's values by field name; ConfigError with the reason if unusable."""
    parsed = {f.name: _coerce(f, values[f.name]) for f in form_fields() if f.name in values}
    return config_from_fields(parsed, runs_dir)


def config_from_fields(values: dict[str, object], runs_dir: str | Path) -> TrainConfig:
    """A checked TrainConfig from typed field values, in ``runs_dir`` whatever they say: the form's closed
    choices, TrainConfig's own checks and ``check_config``; ConfigError with the reason if unusable."""
    for f in form_fields():
        if f.choices and not f.open_choices and values.get(f.name) not in (None, *f.choices):
            raise ConfigError(f"{f.name} must be one of {', '.join(f.choices)}, got {values[f.name]!r}")
    config = TrainConfig.from_dict({**values, "runs_dir": str(runs_dir)})
    check_config(config)
    return config


def config_values(config: str | dict) -> dict[str, object]:
    """A script's config as field values: YAML text (a config file's content) or a dict of TrainConfig fields.
    ConfigError, in one line, when it is neither."""
    if isinstance(config, str):
        if len(config) > MAX_CONFIG_CHARS:
            raise ConfigError(f"a config has at most {MAX_CONFIG_CHARS:,} characters, got {len(config):,}")
        try:
            config = yaml.load(config, Loader=YAML_LOADER)
        except yaml.YAMLError as error:
            raise ConfigError(f"the config is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise ConfigError("a config is a mapping of TrainConfig field names to values, got "
                          + (type(config).__name__ if not isinstance(config, dict) else "a key that is not a name"))
    return config


def _looks_local(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).suffix.lower() in (".parquet", ".csv", ".jsonl")


def check_config(config: TrainConfig) -> None:
    """Refuse, before anything starts, what TrainConfig.validate cannot see: missing paths, typed-in secrets."""
    config.validate()
    for name in ("data", "tokenizer", "model"):
        ref = getattr(config, name)
        if ref and _looks_local(ref) and not Path(ref).expanduser().exists():
            raise ConfigError(f"{name} {ref}: no such file or folder")
    secrets = secret_values()
    for name, value in dataclasses.asdict(config).items():
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and secret in t for t in texts for secret in secrets):
            raise ConfigError(f"{name} holds a secret's value; secrets belong in the environment, never a config")


# --- secrets --------------------------------------------------------------------------------------


def _is_secret_name(name: str) -> bool:
    return name in SECRET_NAMES or bool(SECRET_NAME_PATTERN.search(name))


def _stored_secrets() -> list[str]:
    """The wandb key in ~/.netrc and the Hugging Face token file: a login without an environment variable."""
    found = []
    try:
        entry = netrc.netrc().authenticators("api.wandb.ai")
        if entry and entry[2]:
            found.append(entry[2])
    except (OSError, netrc.NetrcParseError):
        pass
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    try:
        found.append((hf_home / "token").read_text().strip())
    except OSError:
        pass
    return found


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """The values to hide: secret-named environment variables and stored logins, longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if _is_secret_name(k)} | set(_stored_secrets())
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every known secret value replaced by ``[redacted]``."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return text


# --- commands -------------------------------------------------------------------------------------


def visible_gpus() -> int:
    """How many CUDA devices this process sees (0 on a CPU-only machine)."""
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # a broken CUDA install counts as no GPU, as the Trainer would see it
        return 0


def train_command(config_path: str | Path, run_id: str, *, resume: bool = False, gpus: int = 1) -> list[str]:
    """The argv of one run: ``python -m ft.train ...``, under ``accelerate launch`` when gpus > 1.

    The run's config file carries every setting and no secret; secrets come from the environment.
    """
    args = ["-m", "ft.train", "--config", str(config_path), "--run-id", run_id] + (["--resume"] if resume else [])
    if gpus > 1:
        launcher = Path(sys.executable).with_name("accelerate")
        prefix = [str(launcher) if launcher.exists() else "accelerate", "launch", "--multi_gpu",
                  "--num_processes", str(gpus)]
        return prefix + args
    return [sys.executable] + args


def shell_command(argv: list[str]) -> str:
    """The argv as one line to paste into a shell, from the project root."""
    return f"cd {shlex.quote(str(ROOT))} && {shlex.join(argv)}"


def child_environment() -> dict[str, str]:
    """The app's environment (HF and wandb tokens, HF_HOME and all) less its sign-in settings, which a run
    never needs (the OAuth client secret signs session cookies), plus unbuffered output so log.txt is live."""
    kept = {name: value for name, value in os.environ.items() if name not in APP_ONLY_VARIABLES}
    return {**kept, "PYTHONUNBUFFERED": "1"}


# --- runs on disk ---------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_json(path: Path, values: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(values, indent=1))
    tmp.replace(path)


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
    return RunInfo(run, run.read_state(), _read_json(run.path / JOB_FILE), _read_config(run))


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run folder under ``runs_dir``, newest first, queued ones with their position. Reads only."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = [read_run(RunDir(p)) for p in runs_dir.iterdir()
            if p.is_dir() and ((p / "state.json").exists() or (p / "config.yaml").exists())]
    queued = sorted((r for r in runs if r.status == "queued"), key=lambda r: r.queue_key)
    position = {r.run_id: i for i, r in enumerate(queued, 1)}
    runs = [dataclasses.replace(r, queue_position=position.get(r.run_id)) for r in runs]
    return sorted(runs, key=lambda r: r.created, reverse=True)


@contextlib.contextmanager
def data_lock(runs_dir: str | Path):
    """Held (across processes) while a new run's data is checked and its config written, and while data is
    deleted: so a snapshot cannot vanish between a run's check and its config naming it."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / DATA_LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


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


def _reconciled(info: RunInfo) -> RunInfo:
    """The run with its true status: a "running" run whose processes are gone is cancelled or failed."""
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


# --- runs as a script reads them (the app's API) ----------------------------------------------------


def _local_time(timestamp: float | None) -> str | None:
    """ISO 8601 with the machine's UTC offset, to the second; None when unknown."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds") if timestamp else None


def best_validation(info: RunInfo) -> dict | None:
    """The prediction-table record (metrics.jsonl) with the best validation F1; None before the first table."""
    scored = [m for m in info.dir.read_metrics() if m.get("kind") == "predictions" and m.get("f1") is not None]
    return max(scored, key=lambda m: m["f1"], default=None)


def run_summary(info: RunInfo) -> dict:
    """One run as plain values: what the runs table shows, with the test metrics (eval.json) once written."""
    best = best_validation(info)
    finished = info.state.get("ended") if info.status in TERMINAL else None
    return {"run_id": info.run_id, "name": info.name, "kind": info.kind, "status": info.status,
            "queue_position": info.queue_position, "step": info.state.get("step"),
            "total_steps": info.state.get("total_steps"), "model": info.model, "data": info.data,
            "started": _local_time(info.state.get("started")), "finished": _local_time(finished),
            "best_val_f1": best["f1"] if best else None, "best_val_step": best["step"] if best else None,
            "test": info.dir.read_eval()}


def run_report(info: RunInfo) -> dict:
    """One run in full, as plain values: its summary, state.json (the error redacted), every metrics.jsonl
    record, eval.json and the evaluations on other data (evals/<name>.json, by name)."""
    state = {**info.state, "error": redact(info.state["error"])} if info.state.get("error") else info.state
    return {**run_summary(info), "state": state, "metrics": info.dir.read_metrics(), "evals": info.dir.read_evals()}


# --- the manager ----------------------------------------------------------------------------------


class JobManager:
    """The queue and the processes of one runs directory. No Gradio; safe to call from several threads."""

    def __init__(self, runs_dir: str | Path, *, gpus: int | None = None, poll_s: float = 1.0):
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.gpus = visible_gpus() if gpus is None else gpus
        self.poll_s = poll_s
        self._mutex = threading.RLock()
        self._children: dict[str, subprocess.Popen] = {}
        self._lock_file = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading

    def run_dir(self, run_id: str) -> RunDir:
        if not RUN_ID_PATTERN.fullmatch(run_id or ""):
            raise JobError(f"not a run id: {run_id!r}")
        return RunDir(self.runs_dir / run_id)

    def runs(self) -> list[RunInfo]:
        """Every run with its true state, newest first."""
        with self._mutex:
            self._reap()
            runs = list_runs(self.runs_dir)
            if any(r.status == "running" for r in runs):
                runs = [_reconciled(r) for r in runs]
            return runs

    def get(self, run_id: str) -> RunInfo:
        self.run_dir(run_id)
        found = next((r for r in self.runs() if r.run_id == run_id), None)
        if found is None:
            raise JobError(f"no run {run_id!r} in {self.runs_dir}")
        return found

    def command(self, run_id: str, resume: bool = False) -> list[str]:
        """The argv the run is (or will be) launched with: ``ft.train``, or ``ft.audit`` for an audit job."""
        run = self.run_dir(run_id)
        job = _read_json(run.path / JOB_FILE)
        if job.get("kind") == AUDIT:
            return audit_command(run.config, run_id, AuditOptions(**job.get("audit", {})), resume=resume)
        return train_command(run.config, run_id, resume=resume, gpus=self.gpus)

    def wait(self, run_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 600.0) -> RunInfo:
        """Block until the run's status is one of ``statuses`` (TimeoutError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
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
        return self._queue(config, run_id or self.new_run_id(named),
                           {"kind": AUDIT, "audit": dataclasses.asdict(options)})

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
            _write_json(run.path / JOB_FILE, {"submitted": now, "resume": False, **job})
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
            _write_json(info.dir.path / JOB_FILE, {"submitted": info.job.get("submitted", now), "resume": True, **kept})
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
            handle = open(self.runs_dir / LOCK_NAME, "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
            self._lock_file = handle
        return True

    def tick(self) -> str | None:
        """One scheduler step: reap, reconcile, and launch the next queued run if none is active.

        Returns the id of the run launched, if any. Only the lock holder launches.
        """
        with self._mutex:
            runs = self.runs()
            if not self._acquire_lock():
                return None
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
                print(f"ft.jobs: scheduler step failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self._wake.wait(self.poll_s)
            self._wake.clear()

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
                child = subprocess.Popen(argv, cwd=ROOT, env=child_environment(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except Exception as exc:  # an unreadable job.json or config as much as a missing executable
            info.dir.write_state(status="failed", ended=time.time(),
                                 error=f"could not start: {type(exc).__name__}: {exc}")
            return
        self._children[info.run_id] = child
        self._update_job(info, pgid=child.pid, launched=time.time(), command=argv, start_step=start_step,
                         cancel_requested=None)
        info.dir.write_state(status="running")

    def _reap(self) -> None:
        """Collect the exit of children that ended, so they stop looking alive (a zombie still has a pid)."""
        for run_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[run_id]

    def _update_job(self, info: RunInfo, **fields) -> None:
        path = info.dir.path / JOB_FILE
        _write_json(path, {**_read_json(path), **fields})

    def _signal(self, info: RunInfo, signum: int) -> None:
        pgid, pid = info.job.get("pgid"), info.state.get("pid")
        try:
            if pgid:
                os.killpg(pgid, signum)
            elif pid:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass

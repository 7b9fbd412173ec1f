"""The command lines of runs: what the queue launches and what "Show command" prints.

A run is ``python -m ft.train --config runs/<id>/config.yaml --run-id <id> [--resume]`` (under
``accelerate launch --multi_gpu --num_processes N`` where N > 1 GPUs are visible), an audit
``python -m ft.audit ...``; both from the project root, with the app's environment less its sign-in settings.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from ft.config import AuditOptions
from ft.machine import thread_environment
from ft.paths import ROOT

APP_ONLY_VARIABLES = (
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "OAUTH_SCOPES",
    "OPENID_PROVIDER_URL",
    "STUDIO_USERS",
    "STUDIO_HF_USERS",
)


def train_command(config_path: str | Path, run_id: str, *, resume: bool = False, gpus: int = 1) -> list[str]:
    """The argv of one run: ``python -m ft.train ...``, under ``accelerate launch`` when gpus > 1.

    The run's config file carries every setting and no secret; secrets come from the environment.
    """
    args = ["-m", "ft.train", "--config", str(config_path), "--run-id", run_id] + (["--resume"] if resume else [])
    if gpus > 1:
        launcher = Path(sys.executable).with_name("accelerate")
        prefix = [
            str(launcher) if launcher.exists() else "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            str(gpus),
        ]
        return prefix + args
    return [sys.executable] + args


def shell_command(argv: list[str]) -> str:
    """The argv as one line to paste into a shell, from the project root."""
    return f"cd {shlex.quote(str(ROOT))} && {shlex.join(argv)}"


def child_environment() -> dict[str, str]:
    """The app's environment (HF and wandb tokens, HF_HOME and all) less its sign-in settings, which a run
    never needs (the OAuth client secret signs session cookies), plus unbuffered output so log.txt is live and
    the thread settings under which a run and the app share the cores (``ft.machine``)."""
    kept = {name: value for name, value in os.environ.items() if name not in APP_ONLY_VARIABLES}
    return {**thread_environment(kept), "PYTHONUNBUFFERED": "1"}


def audit_command(config_path: str | Path, audit_id: str, options: AuditOptions, resume: bool = False) -> list[str]:
    """The argv of an audit run for a job queue: ``python -m ft.audit --config ... --audit-id ...``."""
    flags = {
        "--folds": options.folds,
        "--seed": options.seed,
        "--split": options.split,
        "--eval-rows": options.eval_rows,
        "--in-sample-run": options.in_sample_run,
    }
    args = [str(a) for flag, value in flags.items() if value is not None for a in (flag, value)]
    return [sys.executable, "-m", "ft.audit", "--config", str(config_path), "--audit-id", audit_id, *args] + (
        ["--resume"] if resume else []
    )

"""How long a cancel takes: SIGTERM to a SmolLM2 run's process group, to the process gone, in each phase.

    python bench/cancel_bench.py [--avx2]

Phases, each a fresh ``python -m ft.train`` (or ``ft.audit``) process on the recipe's settings, signalled 2 s
after its log says the phase began (as the app's Cancel does: SIGTERM to the process group):
1. the prediction table at step 0 (200 validation rows, answers generated);
2. a training step (after step 3);
3. the test split's scoring (600 rows, before and after);
4. an audit's scoring (in-sample, 600 rows scored with a finished run's adapter).
Each line: seconds from SIGTERM to exit, and the status the run recorded. Target (issue 19): <= 10 s.
``--avx2`` runs the processes as on an AVX2-only CPU (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2``: slower batches, the longest waits).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from ft.machine import measured  # noqa: E402
from ft.paths import SHARED  # noqa: E402

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
RECIPE = {
    **yaml.safe_load((ROOT / "configs" / "smollm2-cpu.yaml").read_text()),
    "data": str(SHARED / "data" / "safe-guard"),
    "warmup_steps": 0,
    "logging_steps": 1,
    "save_steps": 1000,
    "prediction_samples": 200,
    "max_test_rows": 600,
    "threshold_rule": "fixed",
    "tracker": "none",
}
"""configs/smollm2-cpu.yaml with phases long enough to be cancelled in."""
SIGNAL_AFTER_S = 2.0
PHASE_TIMEOUT_S = 900


def write_config(folder: Path, name: str, **overrides) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps({**RECIPE, "runs_dir": str(folder / "runs"), **overrides}))
    return path


def launch(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def phase_began(run: Path, started_by: str) -> bool:
    """Whether the run's log holds ``started_by``, or (``step N``) its state.json has reached step N."""
    if started_by.startswith("step "):
        state = run / "state.json"
        return state.exists() and json.loads(state.read_text()).get("step", 0) >= int(started_by.split()[1])
    log = run / "log.txt"
    return log.exists() and started_by in log.read_text(errors="replace")


def wait_for_phase(run: Path, started_by: str, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if phase_began(run, started_by):
                return True
        except ValueError:  # state.json caught mid-write
            pass
        time.sleep(0.2)
    return False


def cancel_latency(process: subprocess.Popen, run: Path, phase: str, started_by: str) -> None:
    """Signal ``process`` 2 s after its phase began (a log line, or ``step N``); print the seconds to exit and the
    status the run recorded."""
    if not wait_for_phase(run, started_by, process):
        print(f"  {phase:44s} never reached (the process ended first or timed out)")
        process.kill()
        return
    time.sleep(SIGNAL_AFTER_S)
    sent = time.perf_counter()
    os.killpg(process.pid, signal.SIGTERM)
    process.wait()
    seconds = time.perf_counter() - sent
    status = json.loads((run / "state.json").read_text()).get("status")
    print(f"  {phase:44s} {seconds:6.1f} s   status {status}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avx2", action="store_true", help="run as on an AVX2-only CPU")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(AVX2 if args.avx2 else {})}
    print(f"machine: {measured().describe()}{'; processes capped at AVX2' if args.avx2 else ''}")
    with tempfile.TemporaryDirectory(prefix="cancel-bench-") as tmp:
        folder = Path(tmp)
        runs = folder / "runs"
        train = ["-m", "ft.train", "--config"]
        phases = [
            ("prediction table at step 0 (200 rows)", "table", {"max_steps": 50}, "prediction table at step 0"),
            ("training step", "step", {"max_steps": 50, "prediction_samples": 1}, "step 3"),
            ("test split scoring (600 rows)", "test", {"max_steps": 2, "prediction_samples": 1}, "scoring the test"),
        ]
        for phase, run_id, overrides, started_by in phases:
            config = write_config(folder, run_id, **overrides)
            process = launch([*train, str(config), "--run-id", run_id], env)
            cancel_latency(process, runs / run_id, phase, started_by)
        finished = write_config(folder, "finished", max_steps=2, prediction_samples=1, max_test_rows=8)
        subprocess.run([sys.executable, *train, str(finished), "--run-id", "finished"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        audit = write_config(folder, "audit", max_train_rows=600)
        process = launch(
            [
                "-m",
                "ft.audit",
                "--config",
                str(audit),
                "--audit-id",
                "audit",
                "--in-sample-run",
                str(runs / "finished"),
            ],
            env,
        )
        cancel_latency(process, runs / "audit", "audit scoring (in-sample, 600 rows)", "in-sample")


if __name__ == "__main__":
    main()

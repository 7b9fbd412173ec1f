"""Background runs: the queue, cancel and resume, restarts, crashes, secrets, the lock and the commands."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from helpers import DATA_DIR, TOKENIZER_DIR, tiny_config

from ft.config import ConfigError, TrainConfig
from ft.run_dir import JOB_FILE, RunDir
from runner import catalog, commands, forms, queue
from runner import views as run_views
from runner.commands import train_command
from runner.forms import config_from_form, form_fields
from runner.queue import JobError, JobManager
from runner.secrets import redact

FAKE_WANDB_KEY = "fakewandbkey0123456789abcdef0123456789abcd"
FAKE_HF_TOKEN = "hf_FakeTokenForTheSecretTest0123456789"
BAD_MODEL = "no-such-org/no-such-model"


def quick_config(tmp_path, **overrides):
    """A tiny run of a few steps: most of its time is Python importing torch."""
    values = dict(max_train_rows=24, max_test_rows=8, validation_size=8, prediction_samples=2)
    return tiny_config(tmp_path, **{**values, **overrides})


def sleeper(runs_dir: Path, run_id: str) -> subprocess.Popen:
    """A live stand-in for a run's process: a sleeping child whose command line names ft.train."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "ft.train"], start_new_session=True)
    run = RunDir(runs_dir / run_id)
    run.write_state(status="running", started=time.time(), step=3, total_steps=10)
    (run.path / JOB_FILE).write_text(f'{{"pgid": {child.pid}}}')
    return child


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def queue_of_three(tmp_path_factory):
    """Three runs queued at once, fake secrets in the environment: a good one, a crashing one, a good one."""
    tmp = tmp_path_factory.mktemp("queue")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_API_KEY", FAKE_WANDB_KEY)
        env.setenv("HF_TOKEN", FAKE_HF_TOKEN)
        manager = JobManager(tmp / "runs", gpus=0, poll_s=0.2)
        ids = [
            manager.submit(quick_config(tmp, run_name="first", tracker="wandb")),
            manager.submit(quick_config(tmp, run_name="crashes", model=BAD_MODEL)),
            manager.submit(quick_config(tmp, run_name="third")),
        ]
        positions_before = {r.run_id: r.queue_position for r in manager.runs()}
        launched = manager.tick()
        positions_after = {r.run_id: (r.status, r.queue_position) for r in manager.runs()}
        started = time.monotonic()
        manager.start()
        try:
            finals = {run_id: manager.wait(run_id, timeout=600) for run_id in ids}
        finally:
            manager.stop()
        yield SimpleNamespace(
            manager=manager,
            ids=ids,
            positions_before=positions_before,
            launched=launched,
            positions_after=positions_after,
            finals=finals,
            seconds=time.monotonic() - started,
        )


def test_queue_runs_one_at_a_time_in_submission_order(queue_of_three):
    q = queue_of_three
    first, second, third = q.ids
    assert q.positions_before == {first: 1, second: 2, third: 3}
    assert q.launched == first
    assert q.positions_after == {first: ("running", None), second: ("queued", 1), third: ("queued", 2)}
    states = [q.finals[run_id].state for run_id in q.ids]
    for earlier, later in zip(states, states[1:]):
        assert earlier["ended"] <= later["started"], "two runs overlapped"


def test_a_crashing_run_fails_with_its_error_and_the_queue_goes_on(queue_of_three):
    first, crashed, third = (queue_of_three.finals[run_id] for run_id in queue_of_three.ids)
    assert crashed.status == "failed"
    assert crashed.state["error"].startswith("OSError")
    assert first.status == third.status == "completed"
    assert (third.dir.path / "eval.json").exists()


def test_no_secret_in_any_file_under_runs(queue_of_three):
    runs_dir = queue_of_three.manager.runs_dir
    files = [p for p in runs_dir.rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        content = path.read_bytes()
        assert FAKE_WANDB_KEY.encode() not in content, path
        assert FAKE_HF_TOKEN.encode() not in content, path


def test_restart_lists_every_run_with_its_state(queue_of_three):
    restarted = JobManager(queue_of_three.manager.runs_dir, gpus=0)
    assert {r.run_id: r.status for r in restarted.runs()} == {
        run_id: info.status for run_id, info in queue_of_three.finals.items()
    }
    assert restarted.get(queue_of_three.ids[0]).name == "first"


def test_the_scheduler_settles_dead_runs_failed_with_their_log_tail_or_cancelled_if_asked(tmp_path):
    runs_dir = tmp_path / "runs"
    crashed, cancelled = RunDir(runs_dir / "crashed"), RunDir(runs_dir / "cancelled")
    for run in (crashed, cancelled):
        run.write_state(status="running", pid=dead_pid(), started=time.time())
    crashed.log.write_text("loading\nCUDA out of memory, then killed\n")
    (cancelled.path / JOB_FILE).write_text(f'{{"cancel_requested": {time.time()}}}')
    manager = JobManager(runs_dir, gpus=0)
    assert {r.status for r in manager.runs()} == {"running"}, "reading the runs settles nothing"
    assert RunDir(runs_dir / "crashed").read_state()["status"] == "running", "and writes nothing"
    manager.tick()
    states = {r.run_id: r.state for r in manager.runs()}
    assert states["crashed"]["status"] == "failed"
    assert "CUDA out of memory, then killed" in states["crashed"]["error"]
    assert states["cancelled"]["status"] == "cancelled"
    assert RunDir(runs_dir / "crashed").read_state()["status"] == "failed", "the verdict is written to disk"


def test_cancel_and_resume_continue_from_the_checkpoint(tmp_path):
    manager = JobManager(tmp_path / "runs", gpus=0, poll_s=0.2)
    config = tiny_config(
        tmp_path, max_train_rows=600, max_steps=30, logging_steps=1, save_steps=1000, prediction_samples=4
    )
    run_id = manager.submit(config)
    manager.start()
    try:
        deadline = time.monotonic() + 300
        while manager.get(run_id).state.get("step", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert manager.training_here(), "Detect takes one thread while this is true"
        manager.cancel(run_id)
        cancelled = manager.wait(run_id, timeout=60)
        assert cancelled.status == "cancelled"
        deadline = time.monotonic() + 30
        while manager.training_here() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not manager.training_here()
        stopped_at = cancelled.state["step"]
        assert 2 <= stopped_at < 30, "the run ended before the cancel landed"
        assert cancelled.dir.last_checkpoint().name == f"checkpoint-{stopped_at}"

        resumed_at = time.time()
        manager.resume(run_id)
        done = manager.wait(run_id, timeout=300)
    finally:
        manager.stop()
    assert done.status == "completed" and done.state["step"] == 30
    resumed_steps = [m["step"] for m in done.dir.read_metrics() if m["kind"] == "log" and m["time"] > resumed_at]
    assert min(resumed_steps) == stopped_at + 1
    assert "--resume" in done.job["command"]
    assert TrainConfig.from_yaml(done.dir.config).max_train_rows == 600, "the resumed run kept its config"
    log = done.dir.log.read_text()
    assert "start:" in log and "resume:" in log


def test_one_scheduler_per_runs_dir_and_a_cancelled_start_is_cancelled(tmp_path):
    runs_dir = tmp_path / "runs"
    first, second = JobManager(runs_dir, gpus=0), JobManager(runs_dir, gpus=0)
    assert first.tick() is None and first.is_scheduler
    run_id = second.submit(quick_config(tmp_path))
    assert second.tick() is None and not second.is_scheduler
    assert second.get(run_id).status == "queued"
    first.stop()
    assert second.tick() == run_id and second.is_scheduler
    second.cancel(run_id)
    try:
        assert second.wait(run_id, timeout=120).status == "cancelled"
    finally:
        second.stop()


def test_cancel_delete_and_resume_follow_the_state(tmp_path):
    runs_dir = tmp_path / "runs"
    manager = JobManager(runs_dir, gpus=0)
    queued = manager.submit(quick_config(tmp_path))
    with pytest.raises(JobError, match="only a cancelled or failed run"):
        manager.resume(queued)
    assert "removed from the queue" in manager.cancel(queued)
    assert manager.get(queued).status == "cancelled"
    with pytest.raises(JobError, match="nothing to cancel"):
        manager.cancel(queued)

    child = sleeper(runs_dir, "live")
    with pytest.raises(JobError, match="cancel it first"):
        manager.delete("live")
    manager.cancel("live")
    child.wait(timeout=10)
    manager.tick()
    assert manager.get("live").status == "cancelled", "killed before it could save: still cancelled"
    manager.delete("live")
    assert not (runs_dir / "live").exists()
    with pytest.raises(JobError, match="not a run id"):
        manager.delete("../outside")


def test_a_second_cancel_after_a_while_kills(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print('ignoring', flush=True); time.sleep(120)",
            "ft.train",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    run = RunDir(runs_dir / "stubborn")
    run.write_state(status="running", started=time.time())
    (run.path / JOB_FILE).write_text(f'{{"pgid": {child.pid}}}')
    manager = JobManager(runs_dir, gpus=0)
    assert child.stdout.readline().strip() == "ignoring"
    assert "cancelling" in manager.cancel("stubborn")
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=1)
    monkeypatch.setattr(queue, "FORCE_AFTER_S", 0.0)
    assert "killed" in manager.cancel("stubborn")
    assert child.wait(timeout=10) == -signal.SIGKILL
    manager.tick()
    assert manager.get("stubborn").status == "cancelled"


def test_the_command_for_two_gpus_uses_accelerate(tmp_path):
    config_path = tmp_path / "runs" / "r1" / "config.yaml"
    argv = train_command(config_path, "r1", gpus=2)
    assert Path(argv[0]).name == "accelerate"
    run = ["-m", "ft.train", "--config", str(config_path), "--run-id", "r1"]
    assert argv[1:] == ["launch", "--multi_gpu", "--num_processes", "2", *run]
    assert train_command(config_path, "r1", gpus=1) == [sys.executable, *run]
    assert train_command(config_path, "r1", gpus=0, resume=True)[-1] == "--resume"
    manager = JobManager(tmp_path / "runs", gpus=4)
    assert manager.command("r1")[1:5] == ["launch", "--multi_gpu", "--num_processes", "4"]
    assert "accelerate launch --multi_gpu --num_processes 4 -m ft.train" in commands.shell_command(
        manager.command("r1")
    )


def test_the_form_covers_every_field_and_refuses_bad_values(tmp_path, monkeypatch):
    names = [f.name for f in form_fields()]
    assert names == [f for f in TrainConfig.__dataclass_fields__ if f != "runs_dir"]
    assert all(f.help for f in form_fields())

    good = {
        "model": "tiny",
        "tokenizer": str(TOKENIZER_DIR),
        "learning_rate": "0.003",
        "batch_size": 8.0,
        "max_train_rows": "",
        "modules_to_save": "embed_tokens, lm_head",
        "group_by_length": False,
    }
    config = config_from_form(good, tmp_path / "runs")
    assert (config.learning_rate, config.batch_size, config.max_train_rows) == (0.003, 8, None)
    assert config.modules_to_save == ["embed_tokens", "lm_head"] and config.group_by_length is False
    assert config.runs_dir == str(tmp_path / "runs")

    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    for change, reason in [
        ({"learning_rate": "0"}, "learning_rate must be > 0"),
        ({"batch_size": 2.5}, "batch_size must be a whole number"),
        ({"epochs": "many"}, "epochs must be a number"),
        ({"learning_rate": "nan"}, "finite"),
        ({"seed": None}, "seed is required"),
        ({"lr_scheduler": "bogus"}, "lr_scheduler must be one of"),
        ({"tracker": "tensorboard"}, "tracker must be one of"),
        ({"data": "./no/such/folder"}, "data ./no/such/folder: no such file"),
        ({"run_name": f"x{FAKE_HF_TOKEN}"}, "run_name holds a secret"),
    ]:
        with pytest.raises(ConfigError, match=reason):
            config_from_form({**good, **change}, tmp_path / "runs")


def test_a_saved_config_fills_the_form_and_comes_back_unchanged(tmp_path):
    config = tiny_config(tmp_path, max_train_rows=None, validation_split="validation", run_name="again")
    assert config_from_form(forms.form_values(config), config.runs_dir) == config


def test_submit_refuses_a_bad_config_and_writes_nothing(tmp_path):
    manager = JobManager(tmp_path / "runs", gpus=0)
    with pytest.raises(ConfigError, match="learning_rate"):
        manager.submit(TrainConfig(learning_rate=-1, tokenizer=str(TOKENIZER_DIR)))
    assert manager.runs() == []


def test_shown_text_is_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_WANDB_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "another-secret-value")
    run = RunDir(tmp_path / "runs" / "r")
    run.path.mkdir(parents=True)
    run.log.write_text(f"key={FAKE_WANDB_KEY}\nauth another-secret-value ok\n")
    tail = catalog.log_tail(catalog.read_run(run))
    assert tail == "key=[redacted]\nauth [redacted] ok"
    assert redact("short 1 stays") == "short 1 stays"


def test_the_queue_survives_an_app_restart_before_it_starts(tmp_path):
    runs_dir = tmp_path / "runs"
    ids = [JobManager(runs_dir, gpus=0).submit(quick_config(tmp_path, run_name=n)) for n in ("a", "b")]
    restarted = JobManager(runs_dir, gpus=0)
    assert [(r.run_id, r.queue_position) for r in sorted(restarted.runs(), key=lambda r: r.queue_position)] == [
        (ids[0], 1),
        (ids[1], 2),
    ]
    assert restarted.get(ids[1]).queue_position == 2  # one run, as the list gives it (/run_metrics)
    for not_an_id in (5, ["a"], None):
        with pytest.raises(JobError, match="not a run id"):
            restarted.get(not_an_id)
    assert sorted(os.listdir(runs_dir / ids[0])) == ["config.yaml", "job.json", "state.json"]


def test_the_page_views_of_a_run(tmp_path):
    run = RunDir(tmp_path / "runs" / "r")
    run.predictions.mkdir(parents=True)
    before = pd.DataFrame(
        {"text": ["<b>a</b>", "b"], "label": [1, 0], "answer": ["no", "no"], "p_injection": [0.4, 0.3]}
    )
    before.to_parquet(run.predictions / "step-0.parquet")
    info = catalog.read_run(run)
    assert run_views.predictions_frame(info)["after answer"].tolist() == ["", ""], "no epoch has ended yet"
    before.assign(answer=["yes", "no"], p_injection=[0.9, 0.1]).to_parquet(run.predictions / "step-6.parquet")
    frame = run_views.predictions_frame(info)
    assert list(frame.columns) == run_views.PREDICTION_COLUMNS
    assert frame.values.tolist() == [
        ["<b>a</b>", "1", "no", "0.4000", "yes", "0.9000"],
        ["b", "0", "no", "0.3000", "no", "0.1000"],
    ]
    for step, loss in ((1, 2.0), (2, 1.5)):
        run.append_metrics({"kind": "log", "step": step, "loss": loss, "learning_rate": 1e-3 / step})
    run.append_metrics({"kind": "predictions", "step": 6, "f1": 0.75})
    assert run_views.curve_frame(info, "loss").values.tolist() == [[1, 2.0], [2, 1.5]]
    run.write_state(status="running", started=100.0, step=4, total_steps=10, queued_at=90.0)
    (run.path / JOB_FILE).write_text('{"start_step": 2}')
    info = catalog.read_run(run)
    progress = run_views.progress(info, now=120.0)
    assert (progress.fraction, progress.eta_s) == (0.4, 60.0), "2 steps in 20 s since the resume, 6 to go"
    assert run_views.runs_frame([info], now=130.0).iloc[0].tolist()[4:] == [
        "running",
        "4/10",
        "0.750 @ 6",
        run_views.clock(100.0),
        "30s",
    ]


def test_an_audit_is_queued_like_a_run_and_launched_with_its_own_command(tmp_path):
    from ft.config import AuditOptions
    from runner.commands import audit_command

    runs_dir = tmp_path / "runs"
    manager = JobManager(runs_dir, gpus=2)  # an audit is never put under accelerate
    first = manager.submit(quick_config(tmp_path, run_name="before"))
    audit_id = manager.submit_audit(quick_config(tmp_path, run_name="labels"), AuditOptions(folds=3, seed=7))
    config_path = RunDir(runs_dir / audit_id).config
    assert "audit-labels" in audit_id and config_path.exists()
    assert manager.command(audit_id) == audit_command(config_path, audit_id, AuditOptions(folds=3, seed=7))
    queued = {r.run_id: r for r in manager.runs()}
    assert (queued[audit_id].status, queued[audit_id].queue_position, queued[audit_id].kind) == ("queued", 2, "audit")
    assert queued[first].kind == "train"
    assert "[label audit" in run_views.runs_frame(list(queued.values())).set_index("run").loc[audit_id, "name"]
    with pytest.raises(ConfigError, match="no adapter"):
        manager.submit_audit(quick_config(tmp_path), AuditOptions(in_sample_run=first))
    with pytest.raises(ConfigError, match="folds"):
        manager.submit_audit(quick_config(tmp_path), AuditOptions(folds=1))

    manager.cancel(first)
    assert manager.tick() == audit_id, "the scheduler launches an audit like a run"
    launched = manager.get(audit_id)
    assert launched.status == "running" and launched.job["command"] == manager.command(audit_id)
    assert "-m ft.audit --config" in launched.dir.log.read_text()
    manager.cancel(audit_id)
    assert manager.wait(audit_id, timeout=120).status == "cancelled"
    manager.resume(audit_id)
    resumed = manager.get(audit_id)
    assert resumed.status == "queued" and resumed.kind == "audit"
    assert manager.command(audit_id, resume=True) == audit_command(
        config_path, audit_id, AuditOptions(folds=3, seed=7), resume=True
    )
    assert manager.tick() == audit_id and manager.get(audit_id).job["command"][-1] == "--resume"
    manager.cancel(audit_id)
    manager.wait(audit_id, timeout=120)


def test_runs_using_a_snapshot_are_found_by_their_data(tmp_path):
    snapshot = tmp_path / "snapshots" / "20261128-010203-abcd1234"
    snapshot.mkdir(parents=True)
    for run_id, data in (
        ("on-folder", snapshot),
        ("on-file", snapshot / "train.parquet"),
        ("elsewhere", tmp_path / "other"),
        ("hub", "reshabhs/SPML_Chatbot_Prompt_Injection"),
    ):
        run = RunDir(tmp_path / "runs" / run_id)
        run.path.mkdir(parents=True)
        (run.path / "config.yaml").write_text(f"data: {data}\n")
    assert sorted(catalog.runs_using(tmp_path / "runs", snapshot)) == ["on-file", "on-folder"]
    assert catalog.runs_using(tmp_path / "no-runs", snapshot) == []


def test_runs_get_the_tokens_but_not_the_apps_sign_in_settings(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "signs-the-session-cookies")
    monkeypatch.setenv("STUDIO_HF_USERS", "alice:admin")
    child = commands.child_environment()
    assert child["HF_TOKEN"] == FAKE_HF_TOKEN and child["PYTHONUNBUFFERED"] == "1"
    assert "OAUTH_CLIENT_SECRET" not in child and "STUDIO_HF_USERS" not in child


def test_a_run_whose_data_is_deleted_meanwhile_is_refused(tmp_path):
    """Deleting data under data_lock and queueing a run on it cannot interleave."""
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for split in ("train", "test"):
        shutil.copy(DATA_DIR / f"{split}.parquet", snapshot)
    manager = JobManager(tmp_path / "runs", gpus=0)
    outcome = []

    def submit():
        try:
            outcome.append(manager.submit(quick_config(tmp_path, data=str(snapshot))))
        except ConfigError as error:
            outcome.append(error)

    with catalog.data_lock(manager.runs_dir):
        assert catalog.runs_using(manager.runs_dir, snapshot) == []
        queueing = threading.Thread(target=submit)
        queueing.start()
        queueing.join(timeout=1.0)
        assert queueing.is_alive(), "the run was queued while the data was being deleted"
        shutil.rmtree(snapshot)
    queueing.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], ConfigError) and "no such file" in str(outcome[0])


def test_the_form_starts_on_this_machines_recipe(monkeypatch):
    monkeypatch.setattr("ft.config.cuda_device_count", lambda: 0)
    assert forms.machine_recipe().name == "smollm2-cpu.yaml"
    assert TrainConfig.from_yaml(forms.machine_recipe()).model == "smollm2-135m"
    assert TrainConfig().model == "smollm2-135m"
    monkeypatch.setattr("ft.config.cuda_device_count", lambda: 1)
    assert TrainConfig.from_yaml(forms.machine_recipe()).model == "qwen2.5-1.5b"

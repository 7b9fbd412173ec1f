"""A run from config to files: bad input refused early, a tiny run end to end (cancel and resume:
tests/integration/test_jobs.py)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT, tiny_config

from ft import train as train_module
from ft.config import ConfigError, TrainConfig
from ft.data import DataError
from ft.run_dir import RunDir


def write_config(path, config: TrainConfig):
    path.write_text(config.to_yaml())
    return path


@pytest.mark.parametrize(
    "values, message",
    [
        ({"learnin_rate": 1e-4}, "unknown config key"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"learning_rate": -1e-4}, "learning_rate must be > 0"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"tracker": "tensorboard"}, "tracker must be one of"),
        ({"quantisation": "2bit"}, "quantisation must be one of"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"batch_size": "8"}, "batch_size must be a whole number"),
        ({"modules_to_save": "lm_head"}, "modules_to_save must be a list"),
        ({"epochs": None}, "epochs needs a value"),
        ({"group_by_length": "no"}, "group_by_length must be true or false"),
        ({"prediction_samples": 0}, "prediction_samples must be >= 1"),
        ({"optim": "sgd-ish"}, "optim must be one of auto, adamw_torch"),
        ({"lr_scheduler": "nope"}, "lr_scheduler must be one of linear, cosine"),
        ({1: 2}, "a config is a mapping of TrainConfig field names to values, got a key that is not a name"),
    ],
)
def test_bad_config_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


def test_yaml_numbers_written_as_text_are_read_as_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 2e-4\nmax_train_rows:\n")
    config = TrainConfig.from_yaml(path)
    assert config.learning_rate == 0.0002 and config.max_train_rows is None


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"prompt": ["a"], "label": [1]}), "missing column"),
        (pd.DataFrame({"text": ["a", "b"], "label": [1, 2]}), "label '2' in row 1 is not 0 or 1"),
        (pd.DataFrame({"text": ["a", "  "], "label": [1, 0]}), "empty text in row 1"),
    ],
)
def test_bad_data_is_refused_before_any_model_loads(tmp_path, monkeypatch, frame, message):
    folder = tmp_path / "data"
    folder.mkdir()
    frame.to_parquet(folder / "train.parquet")
    frame.to_parquet(folder / "test.parquet")

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("ft.models.load_for_training", no_model)
    monkeypatch.setattr("ft.models.load_tokenizer", no_model)
    handlers = logging.getLogger().handlers[:]
    with pytest.raises(DataError, match=message):
        train_module.train(tiny_config(tmp_path, data=str(folder)), run_id="bad")
    run = RunDir(tmp_path / "runs" / "bad")
    state = run.read_state()
    assert state["status"] == "failed" and message.split()[0] in state["error"]
    assert "DataError" in run.log.read_text()
    assert logging.getLogger().handlers == handlers, "the run's log file still receives the caller's logging"


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(f"learning_rate: 0\nruns_dir: {tmp_path / 'runs'}\n")
    assert train_module.main(["--config", str(path)]) == 2
    assert capsys.readouterr().err == "error: learning_rate must be > 0, got 0\n"
    assert not (tmp_path / "runs").exists()


def test_tiny_run_writes_every_file_and_learns(tmp_path):
    config = tiny_config(
        tmp_path, max_train_rows=240, max_test_rows=64, epochs=2, tracker="wandb", prediction_samples=12
    )
    path = write_config(tmp_path / "run.yaml", config)
    env = {**os.environ, "WANDB_API_KEY": ""}
    done = subprocess.run(
        [sys.executable, "-m", "ft.train", "--config", str(path), "--run-id", "r1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = RunDir(tmp_path / "runs" / "r1")
    assert run.read_state()["status"] == "completed"
    saved = TrainConfig.from_yaml(run.config)
    assert saved.learning_rate == config.learning_rate and os.path.isabs(saved.data)
    assert "tokenised" in run.log.read_text()
    logs = [m for m in run.read_metrics() if m["kind"] == "log" and "loss" in m]
    assert logs and logs[-1]["loss"] < logs[0]["loss"]
    steps = run.prediction_steps()
    assert steps[0] == 0 and len(steps) == 3  # train start and two epoch ends
    table = run.read_predictions(steps[-1])
    assert list(table.columns) == ["text", "label", "answer", "p_injection"] and len(table) == 12
    assert (run.adapter / "adapter_config.json").exists()
    assert not run.checkpoints.exists(), "a completed run keeps its checkpoints (saved every 4 steps)"
    with pytest.raises(ValueError, match="run r1 is completed: there is nothing to resume"):
        train_module.train(config, run_id="r1", resume=True)
    assert run.read_state()["status"] == "completed" and (run.adapter / "adapter_config.json").exists()
    report = run.read_eval()
    for side in ("before", "after"):
        assert set(report[side]) >= {
            "accuracy",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "answer_parse_rate",
            "confusion",
        }
    assert report["after"]["roc_auc"] > report["before"]["roc_auc"] + 0.1
    assert report["after"]["answer_parse_rate"] > 0.9
    wandb_runs = list((tmp_path.parent).glob("**/wandb/offline-run-*")) + list(
        __import__("pathlib").Path(os.environ["WANDB_DIR"]).glob("**/offline-run-*")
    )
    assert wandb_runs, "no offline wandb run was written"
    assert any("validation_predictions" in p.name for r in wandb_runs for p in r.glob("files/media/table/*"))
    files = Path(run.read_state()["wandb"])  # this run's wandb files folder: its test charts are there
    charts = {p.name.split("_table_")[0] for p in (files / "media" / "table" / "test").glob("*.table.json")}
    assert charts == {"roc_before", "roc_after", "confusion_before", "confusion_after"}  # no source column here
    cells = json.loads(next((files / "media" / "table" / "test").glob("confusion_after_*")).read_text())["data"]
    assert {(actual, predicted): n for actual, predicted, n in cells}[("injection", "injection")] == (
        report["after"]["confusion"]["tp"]
    )

"""Cancel means now: a cancel request ends a run in whatever phase it is, keeping what resume needs.

The request is made in-process at a chosen point of each phase (what the SIGTERM handler does), so each
phase is hit exactly; ``test_jobs`` cancels a real run's process with SIGTERM through the queue."""

import pytest
from helpers import tiny_config

from ft import cancel, train
from ft.callbacks import PredictionLogger
from ft.run_dir import RunDir


@pytest.fixture(autouse=True)
def no_request_left_behind():
    cancel.reset()
    yield
    cancel.reset()


def quick(tmp_path, **overrides):
    return tiny_config(tmp_path, max_train_rows=64, max_steps=6, save_steps=100, logging_steps=1, **overrides)


def test_a_forward_pass_raises_once_a_cancel_is_requested(tokenizer):
    import torch

    from ft import models

    model = models.load_base("tiny", tokenizer, "none")
    handles = cancel.watch(model)
    assert len(handles) == model.config.num_hidden_layers
    ids = torch.tensor([[1, 2, 3]])
    model(input_ids=ids)
    cancel.request()
    with pytest.raises(cancel.RunCancelled):
        model(input_ids=ids)


def test_a_cancel_inside_a_training_step_keeps_the_last_completed_step(tmp_path, monkeypatch):
    real = train.answer_loss

    def loss_then_cancel_in_step_4(model, inputs, num_items_in_batch=None):
        if real.calls == 3:
            cancel.request()
        real.calls += 1
        return real(model, inputs, num_items_in_batch)

    real.calls = 0
    monkeypatch.setattr(train, "answer_loss", loss_then_cancel_in_step_4)
    run = train.train(quick(tmp_path), run_id="mid-step")
    state = run.read_state()
    assert state["status"] == "cancelled" and state["step"] == 3
    assert run.last_checkpoint().name == "checkpoint-3"
    assert not run.adapter.exists()

    cancel.reset()
    monkeypatch.setattr(train, "answer_loss", real)
    resumed = train.train(quick(tmp_path), run_id="mid-step", resume=True)
    assert resumed.read_state()["status"] == "completed" and resumed.read_state()["step"] == 6
    resumed_steps = [m["step"] for m in resumed.read_metrics() if m["kind"] == "log" and "loss" in m]
    assert 4 in resumed_steps and resumed_steps.count(4) == 1


def test_a_cancel_during_the_first_prediction_table_ends_the_run_at_once(tmp_path, monkeypatch):
    table = PredictionLogger.predictions

    def cancelled_table(self, step):
        cancel.request()
        return table(self, step)

    monkeypatch.setattr(PredictionLogger, "predictions", cancelled_table)
    run = train.train(quick(tmp_path), run_id="table")
    assert run.read_state()["status"] == "cancelled"
    assert run.read_state().get("step", 0) == 0 and run.last_checkpoint() is None
    assert not run.predictions.exists() or not list(run.predictions.iterdir())


def test_a_cancel_while_scoring_the_test_split_keeps_the_adapter_and_resume_finishes(tmp_path, monkeypatch):
    evaluate = train.evaluate_before_after

    def cancelled_evaluation(*args, **kwargs):
        cancel.request()
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate_before_after", cancelled_evaluation)
    run = train.train(quick(tmp_path), run_id="test-split")
    assert run.read_state()["status"] == "cancelled"
    assert (run.adapter / "adapter_config.json").is_file() and run.read_eval() is None
    assert run.last_checkpoint() is not None, "resume needs the last checkpoint"

    cancel.reset()
    monkeypatch.setattr(train, "evaluate_before_after", evaluate)
    done = RunDir(train.train(quick(tmp_path), run_id="test-split", resume=True).path)
    assert done.read_state()["status"] == "completed" and done.read_eval()["after"]["n"] == 32

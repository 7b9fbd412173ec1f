"""Evaluation metrics, the evals listing, the quieted bitsandbytes warning and the before-scores cache key.
No model is loaded here (tests/integration/test_smollm2.py runs ft.evaluate on the real model)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from ft import evaluate, models
from ft.run_dir import RunDir
from runner.views import eval_groups_frame, evals_frame


def test_recall_at_1pct_fpr_is_the_best_recall_that_flags_at_most_1pct_of_benign_rows():
    labels = [0] * 100 + [1] * 10
    p = list(np.linspace(0, 0.5, 100)) + [0.9] * 5 + [0.4] * 5  # the top benign score is 0.5
    assert evaluate.recall_at_fpr(labels, p) == pytest.approx(0.5)
    assert evaluate.recall_at_fpr([1, 1], [0.2, 0.9]) is None


def test_brier_and_calibration_error():
    assert evaluate.brier_score([1, 0], [1.0, 0.0]) == 0.0
    assert evaluate.brier_score([1, 0], [0.5, 0.5]) == 0.25
    assert evaluate.expected_calibration_error([1, 0, 1, 0], [0.55, 0.55, 0.55, 0.55]) == pytest.approx(0.05)
    assert evaluate.expected_calibration_error([1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]) == 0.0


def test_group_metrics_break_down_by_source():
    frame = pd.DataFrame(
        {"text": list("abcdef"), "label": [1, 0, 1, 0, 0, 0], "source": ["x", "x", "x", "y", "y", "y"]}
    )
    scores = {"after": np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.1])}
    groups = evaluate.group_metrics(frame, scores, {"after": ["yes"] * 6}, 0.5)
    assert groups["source"]["x"]["after"]["accuracy"] == 1.0
    assert groups["source"]["y"]["after"]["flagged"] == pytest.approx(1 / 3)
    assert groups["source"]["y"]["after"]["roc_auc"] is None


def test_read_labelled_keeps_group_columns_and_picks_the_split(tmp_path):
    pd.DataFrame({"prompt": ["a", "b"], "y": [1, 0], "category": ["k", "m"]}).to_parquet(tmp_path / "only.parquet")
    frame, split = evaluate.read_labelled(str(tmp_path / "only.parquet"), None, "prompt", "y")
    assert split == "train" and list(frame.columns) == ["text", "label", "category"]


def test_evals_listing_reads_every_eval_file(tmp_path):
    run = RunDir(tmp_path / "r")
    run.evals.mkdir(parents=True)
    metrics = {"n": 2, "accuracy": 0.5, "roc_auc": 0.75, "brier": 0.2, "flagged": 0.5}
    report = {
        "data": "d",
        "split": "test",
        "before": metrics,
        "after": metrics,
        "groups": {"source": {"g": {"before": metrics, "after": metrics}}},
    }
    (run.evals / "d-test.json").write_text(json.dumps(report))
    (run.evals / "broken.json").write_text("{")
    table = evals_frame(run)
    assert list(table["model"]) == ["before", "after"] and table["roc_auc"].iloc[0] == "0.7500"
    groups = eval_groups_frame(run)
    assert list(groups["eval"]) == ["d-test", "d-test"] and list(groups["group"]) == ["g", "g"]
    assert groups["flagged"].iloc[1] == "0.5000"
    assert evals_frame(RunDir(tmp_path / "none")).empty


def test_bitsandbytes_missing_kernels_warning_is_dropped_and_others_kept(caplog):
    import ft  # noqa: F401  (installs the filter)

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    message = "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure..."
    missing = ModuleNotFoundError("No module named 'kernels'", name="kernels")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning(message, missing)
        logger.warning(message, RuntimeError("kernel download failed"))
        logger.warning("something else")
    assert [r.getMessage()[:40] for r in caplog.records] == [
        "Failed to load CPU gemm_4bit_forward fro",
        "something else",
    ]


def test_a_runs_copy_of_the_tokenizer_keys_the_before_scores_as_the_base_does(tokenizer, tmp_path):
    """Each run saves the base's tokenizer beside its adapter: the cache key must not change with the folder."""
    from ft.score_cache import vocabulary_sha256

    tokenizer.save_pretrained(tmp_path / "adapter")
    assert vocabulary_sha256(models.load_tokenizer(str(tmp_path / "adapter"))) == vocabulary_sha256(tokenizer)

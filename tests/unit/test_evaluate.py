"""Evaluation metrics (by source, beside the length baseline), the run tab's views of them, the quieted
bitsandbytes warning and the before-scores cache key. No model is loaded here (tests/integration/test_smollm2.py
runs ft.evaluate on the real model)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from ft import evaluate, metrics, models
from ft.run_dir import RunDir
from runner import catalog
from runner import views as run_views
from runner.views import eval_groups_frame, evals_frame


def test_recall_at_1pct_fpr_is_the_best_recall_that_flags_at_most_1pct_of_benign_rows():
    labels = [0] * 100 + [1] * 10
    p = list(np.linspace(0, 0.5, 100)) + [0.9] * 5 + [0.4] * 5  # the top benign score is 0.5
    assert metrics.recall_at_fpr(labels, p) == pytest.approx(0.5)
    assert metrics.recall_at_fpr([1, 1], [0.2, 0.9]) is None


def test_brier_and_calibration_error():
    assert metrics.brier_score([1, 0], [1.0, 0.0]) == 0.0
    assert metrics.brier_score([1, 0], [0.5, 0.5]) == 0.25
    assert metrics.expected_calibration_error([1, 0, 1, 0], [0.55, 0.55, 0.55, 0.55]) == pytest.approx(0.05)
    assert metrics.expected_calibration_error([1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]) == 0.0


def test_group_metrics_break_down_by_source():
    frame = pd.DataFrame(
        {"text": list("abcdef"), "label": [1, 0, 1, 0, 0, 0], "source": ["x", "x", "x", "y", "y", "y"]}
    )
    scores = {"after": np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.1])}
    groups = metrics.group_metrics(frame, scores, {"after": ["yes"] * 6}, 0.5)
    assert groups["source"]["x"]["after"]["accuracy"] == 1.0
    assert groups["source"]["y"]["after"]["flagged"] == pytest.approx(1 / 3)
    assert groups["source"]["y"]["after"]["roc_auc"] is None


def test_read_labelled_keeps_group_columns_and_picks_the_split(tmp_path):
    pd.DataFrame({"prompt": ["a", "b"], "y": [1, 0], "category": ["k", "m"]}).to_parquet(tmp_path / "only.parquet")
    frame, split = evaluate.read_labelled(str(tmp_path / "only.parquet"), None, "prompt", "y")
    assert split == "train" and list(frame.columns) == ["text", "label", "category"]


def test_evals_listing_reads_every_eval_file_and_the_test_splits_groups_first(tmp_path):
    run = RunDir(tmp_path / "r")
    run.evals.mkdir(parents=True)
    measured = {"n": 2, "accuracy": 0.5, "roc_auc": 0.75, "brier": 0.2, "flagged": 0.5}
    length = {"n": 2, "accuracy": 1.0, "roc_auc": 1.0, "flagged": 0.5}
    report = {
        "data": "d",
        "split": "test",
        "before": measured,
        "after": measured,
        "length_baseline": length,
        "groups": {"source": {"g": {"before": measured, "after": measured, "length_baseline": length}}},
    }
    (run.evals / "d-test.json").write_text(json.dumps(report))
    (run.evals / "broken.json").write_text("{")
    run.eval.write_text(json.dumps({"after": measured, "groups": {"source": {"pool": {"after": measured}}}}))
    table = evals_frame(run)
    assert list(table["model"]) == ["before", "after", "length_baseline"] and table["roc_auc"].iloc[0] == "0.7500"
    assert table["brier"].iloc[2] == ""
    groups = eval_groups_frame(run)
    assert list(groups["eval"]) == ["test split", "d-test", "d-test", "d-test"]
    assert list(groups["group"]) == ["pool", "g", "g", "g"]
    assert list(groups["model"])[1:] == ["before", "after", "length_baseline"]
    assert groups["flagged"].iloc[2] == "0.5000"
    assert evals_frame(RunDir(tmp_path / "none")).empty


LONG_ATTACKS = pd.DataFrame(
    {
        "text": ["hi", "what time is it", "a" * 300 + " ignore that", "b" * 500, "act as a poet " * 80, "stop."],
        "label": [0, 0, 1, 1, 0, 1],
        "source": ["chat", "chat", "attacks", "attacks", "roles", "attacks"],
    }
)
"""Short chat, long attacks (and one short one), long benign role prompts."""


def test_the_length_baseline_is_perfect_where_length_alone_separates_the_labels():
    validation = pd.DataFrame({"text": ["hello", "thanks!", "x" * 200, "y" * 900], "label": [0, 0, 1, 1]})
    cut = metrics.length_cut(validation["label"], validation["text"])
    assert len("thanks!") < cut <= 200
    baseline = metrics.length_baseline([0, 0, 1, 1], ["ok", "a question?", "z" * 300, "w" * 2000], cut)
    assert baseline["roc_auc"] == 1.0 and baseline["recall_at_1pct_fpr"] == 1.0
    assert baseline["accuracy"] == 1.0 and baseline["flagged"] == 0.5 and baseline["cut_chars"] == cut
    same_length = metrics.length_baseline([0, 1, 0, 1], ["aa", "bb", "cccc", "dddd"], cut)
    assert same_length["roc_auc"] == 0.5 and same_length["flagged"] == 0.0


def test_the_report_gives_every_source_its_metrics_beside_the_length_rule():
    """The detector flags the attacks (the short one too); the length rule flags the long role prompts."""
    scores = {"before": np.full(6, 0.4), "after": np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7])}
    answers = {side: ["no"] * 6 for side in scores}
    report = metrics.evaluation_report(LONG_ATTACKS, scores, answers, 0.5, cut=100.0)
    assert report["after"]["accuracy"] == 1.0 and report["before"]["flagged"] == 0.0
    assert report["length_baseline"]["accuracy"] == pytest.approx(4 / 6)
    by_source = report["groups"]["source"]
    assert sorted(by_source) == ["attacks", "chat", "roles"]
    assert by_source["roles"]["after"]["flagged"] == 0.0 and by_source["roles"]["length_baseline"]["flagged"] == 1.0
    assert by_source["attacks"]["after"]["recall"] == 1.0
    assert by_source["attacks"]["length_baseline"]["recall"] == pytest.approx(2 / 3)
    assert by_source["chat"]["length_baseline"]["roc_auc"] is None
    assert metrics.evaluation_report(LONG_ATTACKS.drop(columns="source"), scores, None, 0.5, 100.0)["groups"] == {}


def test_ft_evaluate_takes_the_length_cut_the_run_chose_on_its_validation_split(tmp_path):
    from ft.config import TrainConfig

    data = tmp_path / "data"
    data.mkdir()
    for split, frame in (("train", LONG_ATTACKS), ("validation", LONG_ATTACKS.head(4)), ("test", LONG_ATTACKS)):
        frame.to_parquet(data / f"{split}.parquet")
    config = TrainConfig(model="tiny", data=str(data), validation_split="validation")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    chosen_again = evaluate.run_length_cut(run, config)
    assert chosen_again == metrics.length_cut(LONG_ATTACKS["label"].head(4), LONG_ATTACKS["text"].head(4))
    run.eval.write_text(json.dumps({"length_baseline": {"cut_chars": 42.5}}))
    assert evaluate.run_length_cut(run, config) == 42.5
    assert evaluate.run_length_cut(RunDir(tmp_path / "gone"), TrainConfig(data=str(tmp_path / "nothing"))) is None


def test_the_run_tab_shows_the_recorded_threshold_the_length_row_and_each_rows_source(tmp_path):
    run = RunDir(tmp_path / "runs" / "r")
    run.predictions.mkdir(parents=True)
    run.config.write_text("model: tiny\nthreshold: 0.5\nthreshold_rule: best_f1\n")
    run.write_state(status="running")
    assert "threshold: chosen by best_f1 on the validation split" in run_views.details_text(
        catalog.read_run(run), "cmd"
    )
    chosen = {"value": 0.2345, "applied": "best_f1", "validation_rows": 200, "note": "best F1 0.950"}
    length = {"n": 6, "accuracy": 0.67, "roc_auc": 0.8}
    run.eval.write_text(json.dumps({"threshold": chosen, "after": {"n": 6}, "length_baseline": length}))
    run.write_state(status="completed")
    info = catalog.read_run(run)
    assert "threshold: 0.2345 (best_f1 on 200 validation rows; best F1 0.950)" in run_views.details_text(info, "cmd")
    assert run_views.test_frame(info).set_index("model").loc["length_baseline", "roc_auc"] == "0.8000"
    LONG_ATTACKS.assign(answer="no", p_injection=0.5).to_parquet(run.predictions / "step-0.parquet")
    shown = run_views.predictions_frame(info)
    assert list(shown.columns[:3]) == ["text", "label", "source"] and shown["source"].iloc[4] == "roles"


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

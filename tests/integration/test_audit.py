"""The label audit: folds, out-of-sample scores, cleanlab's ranking, the in-sample option, the files."""

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import score_tolerance, tiny_config

from ft import audit as audit_module
from ft.audit import SUSPECT_COLUMNS, AuditDir, audit, fold_of_rows, ranked_suspects
from ft.config import IN_SAMPLE, AuditOptions, ConfigError, TrainConfig
from runner.commands import audit_command

AUDIT_ROWS = 120


def audit_config(tmp_path, **overrides):
    """A few steps per fold on a slice of the real data: seconds, not a useful detector."""
    values = dict(max_train_rows=AUDIT_ROWS, max_steps=4, validation_size=8, prediction_samples=4, save_steps=1000)
    return tiny_config(tmp_path, **{**values, **overrides})


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> AuditDir:
    tmp = tmp_path_factory.mktemp("audit")
    return audit(audit_config(tmp), AuditOptions(folds=2, seed=7, eval_rows=8), audit_id="a")


# --- the pure parts ------------------------------------------------------------------------------


def test_folds_are_seeded_stratified_and_keep_equal_texts_together():
    texts = pd.Series([f"t{i % 50}" for i in range(100)] + [f"u{i}" for i in range(60)])
    labels = pd.Series([i % 3 == 0 for i in range(160)], dtype=int)
    fold_of = fold_of_rows(texts, labels, 3, seed=1)
    assert set(fold_of) == {0, 1, 2}
    assert texts.groupby(fold_of).apply(set).map(len).sum() == texts.nunique()  # no text in two folds
    share = labels.groupby(fold_of).mean()
    assert (share - labels.mean()).abs().max() < 0.15
    assert (fold_of_rows(texts, labels, 3, seed=1) == fold_of).all()
    assert not (fold_of_rows(texts, labels, 3, seed=2) == fold_of).all()


def test_ranking_is_cleanlabs_issue_order_then_label_quality():
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p = np.where(labels == 1, rng.uniform(0.6, 0.95, 200), rng.uniform(0.05, 0.4, 200))
    flipped = [3, 50, 120]
    labels[flipped] = 1 - labels[flipped]
    scored = pd.DataFrame({"text": [f"t{i}" for i in range(200)], "label": labels, "p_injection": p, "fold": 0})
    ranked = ranked_suspects(scored)
    issues = find_label_issues(
        labels, np.column_stack([1 - p, p]), return_indices_ranked_by="self_confidence", n_jobs=1
    )
    assert ranked["text"].head(len(issues)).tolist() == [f"t{i}" for i in issues]
    assert set(ranked["text"].head(3)) == {f"t{i}" for i in flipped}
    assert ranked["rank"].tolist() == list(range(1, 201))
    assert ranked["is_issue"].tolist() == [True] * len(issues) + [False] * (200 - len(issues))
    rest = ranked[~ranked["is_issue"]]["label_quality"]
    assert rest.is_monotonic_increasing
    own = np.where(ranked["label"] == 1, ranked["p_injection"], 1 - ranked["p_injection"])
    assert np.allclose(ranked["label_quality"], own)


def test_bad_options_are_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="folds must be an integer >= 2"):
        AuditOptions(folds=1).validate()
    with pytest.raises(ConfigError, match="no adapter"):
        AuditOptions(in_sample_run=str(tmp_path)).validate()
    path = tmp_path / "c.yaml"
    path.write_text(TrainConfig().to_yaml())
    assert audit_module.main(["--config", str(path), "--folds", "1"]) == 2
    assert capsys.readouterr().err == "error: folds must be an integer >= 2, got 1\n"


def test_audit_command_carries_every_option():
    argv = audit_command("runs/x/config.yaml", "x", AuditOptions(folds=3, seed=5, in_sample_run="runs/r"), resume=True)
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "ft.audit"]
    assert " ".join(argv[3:]) == (
        "--config runs/x/config.yaml --audit-id x --folds 3 --seed 5 --eval-rows 200 --in-sample-run runs/r --resume"
    )


# --- a real cross-fit audit ----------------------------------------------------------------------


def test_audit_writes_its_files_and_state(audited):
    state = audited.read_state()
    assert state["status"] == "completed" and state["kind"] == "audit" and state["method"] == "cross-fit K=2"
    assert state["step"] == state["total_steps"] == 5 and state["rows"] == AUDIT_ROWS
    assert TrainConfig.from_yaml(audited.config).max_train_rows == AUDIT_ROWS
    assert audited.read_options() == AuditOptions(folds=2, seed=7, eval_rows=8)
    assert json.loads(audited.options_file.read_text())["method"] == "cross-fit K=2"
    assert "ranking" in audited.log.read_text()
    suspects = audited.read_suspects()
    assert list(suspects.columns) == SUSPECT_COLUMNS
    assert suspects["rank"].tolist() == list(range(1, AUDIT_ROWS + 1))
    assert suspects["p_injection"].between(0, 1).all() and state["issues"] == suspects["is_issue"].sum()
    for k in (0, 1):
        assert audited.fold(k).read_state()["status"] == "completed"
        assert audited.fold(k).read_eval()["test_rows"] == 8


def test_folds_are_disjoint_and_cover_every_row(audited):
    folds = audited.read_folds()
    assert folds["k"] == 2 and folds["seed"] == 7 and folds["rows"] == AUDIT_ROWS
    rows = [r for fold in folds["folds"] for r in fold]
    assert sorted(rows) == list(range(AUDIT_ROWS))
    suspects = audited.read_suspects().set_index("row")
    for k, fold in enumerate(folds["folds"]):
        assert (suspects.loc[fold, "fold"] == k).all()


def test_no_row_is_scored_by_an_adapter_that_saw_it(audited):
    suspects = audited.read_suspects()
    for k, fold in enumerate(audited.read_folds()["folds"]):
        trained_on = TrainConfig.from_yaml(audited.fold(k).config).data
        assert trained_on == str(audited.fold_data(k))
        seen = set(pd.read_parquet(audited.fold_data(k) / "train.parquet")["text"])
        scored = suspects[suspects["fold"] == k]
        assert sorted(scored["row"]) == sorted(fold)
        assert seen.isdisjoint(scored["text"])
        assert len(seen) + scored["text"].nunique() == suspects["text"].nunique()
        held_out = pd.read_parquet(audited.held_out_scores(k))
        assert sorted(held_out["row"]) == sorted(fold)


def test_the_ranking_reproduces_with_the_same_seed(audited, tmp_path):
    again = audit(audit_config(tmp_path), AuditOptions(folds=2, seed=7, eval_rows=8), audit_id="b")
    first, second = audited.read_suspects(), again.read_suspects()
    assert first["row"].tolist() == second["row"].tolist()
    assert np.allclose(first["p_injection"], second["p_injection"], atol=1e-6)
    assert again.read_folds()["folds"] == audited.read_folds()["folds"]


@pytest.mark.parametrize(
    "unwritten",
    [lambda audit: [], lambda audit: [audit.held_out_scores(1), audit.suspects]],
    ids=["cancelled-after-ranking", "cancelled-while-fold-1-scored"],
)
def test_resume_trains_no_fold_that_finished_training(audited, tmp_path, monkeypatch, unwritten):
    """A resumed audit keeps the folds already scored, and scores a fold whose training completed (its
    checkpoints are gone) without training it again."""
    copy = AuditDir(tmp_path / "runs" / "a")
    shutil.copytree(audited.path, copy.path)
    for path in unwritten(copy):
        path.unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a trained fold was trained again")

    monkeypatch.setattr("ft.audit.train", no_training)
    resumed = audit(audit_config(tmp_path), AuditOptions(folds=2, seed=7, eval_rows=8), audit_id="a", resume=True)
    assert resumed.read_state()["status"] == "completed"
    assert copy.held_out_scores(1).exists()
    assert resumed.read_suspects()["row"].tolist() == audited.read_suspects()["row"].tolist()


def test_in_sample_audit_is_marked_biased(audited, tmp_path):
    run = audited.fold(0)
    done = audit(audit_config(tmp_path), AuditOptions(in_sample_run=str(run.path)), audit_id="fast")
    state = done.read_state()
    assert state["status"] == "completed" and state["method"] == IN_SAMPLE == "in-sample (biased)"
    suspects = done.read_suspects()
    assert (suspects["fold"] == -1).all() and len(suspects) == AUDIT_ROWS
    assert done.read_folds()["scored_by"] == str(run.path.resolve())
    held_out = pd.read_parquet(audited.held_out_scores(0)).set_index("row")["p_injection"]
    same = suspects.set_index("row").loc[held_out.index, "p_injection"]
    assert np.allclose(same, held_out, atol=score_tolerance())


def test_the_curation_side_queues_a_real_audit(audited, store):
    from curation.sources import load
    from curation.suspects import read_audit, record_audit_scores, suspects_queue

    rows = audited.read_suspects()
    source = audited.path.parent / "audited.parquet"
    rows[["text", "label"]].to_parquet(source, index=False)
    store.import_examples(load(source))
    found = read_audit(audited.path)
    assert record_audit_scores(store, found) == AUDIT_ROWS
    assert record_audit_scores(store, found) == 0, "an audit is recorded once"
    queue = suspects_queue(store, found)
    assert len(queue) == rows["text"].nunique()
    assert queue["rank"].is_monotonic_increasing
    top = queue.iloc[0]
    assert store.latest_score(int(top["example_id"])).run_id == "a"
    assert store.latest_score(int(top["example_id"])).p_injection == pytest.approx(top["p_injection"])


def test_compare_runs_scores_both_adapters_on_the_same_texts(audited):
    from runner import charts
    from serving.compare import compare_runs

    comparison = compare_runs(audited.fold(0).path, audited.fold(1).path, max_rows=16)
    assert (comparison.run_a, comparison.run_b) == ("fold-0", "fold-1")
    assert comparison.test_data == str(audited.fold_data(1))
    same = comparison.same_text_metrics.set_index("metric")
    assert same.loc["n", "a"] == same.loc["n", "b"] == 16
    assert comparison.eval_metrics.set_index("metric").loc["n", "a"] == 8
    assert (comparison.verdicts["verdict_a"] != comparison.verdicts["verdict_b"]).all()
    assert comparison.labels.changed == 0 and comparison.labels.only_in_a == comparison.labels.only_in_b == 0
    drawn = comparison.charts  # A beside B on the same texts, each at its threshold: what the page's charts draw
    assert drawn["A"]["n"] == drawn["B"]["n"] == 16 and drawn["A"]["accuracy"] == same.loc["accuracy", "a"]
    assert {"A", "B"} <= set(charts.roc_frame(drawn)[charts.CURVE]) and len(charts.confusion_frame(drawn)) == 8


def test_a_cancelled_fold_cancels_the_audit(tmp_path, monkeypatch):
    from ft.run_dir import RunDir

    def cancelled_training(config, run_id, resume=False):
        run = RunDir(tmp_path / "runs" / "c" / run_id)
        run.write_state(status="cancelled")
        return run

    monkeypatch.setattr("ft.audit.train", cancelled_training)
    done = audit(audit_config(tmp_path), AuditOptions(), audit_id="c")
    state = done.read_state()
    assert state["status"] == "cancelled" and state["step"] == 0 and not done.suspects.exists()
    assert "fold 1/2: training" in state["phase"]

"""The pictures of an evaluation: the curves stored with it (ft/metrics.py), the frames the charts draw
(runner/charts.py), the tracker's charts in an offline wandb run's files (ft/callbacks.py), the Train tab's refresh
that redraws only the parts whose files changed, what runs took on this machine, and empty tables that say what
fills them. No model is loaded here."""

import json
import time

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from ft import metrics
from ft.run_dir import RunDir, write_json
from runner import charts
from runner import views as run_views
from runner.catalog import read_run
from runner.queue import JobManager

ROWS = 400


def scored_rows(rows: int = ROWS, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Rows of two sources and two models' P(injection): "after" separates the labels, "before" is noise."""
    rng = np.random.default_rng(seed)
    labels = np.array([0, 1] * (rows // 2))
    frame = pd.DataFrame(
        {
            "text": [f"t{i}" * (1 + i % 7) for i in range(rows)],
            "label": labels,
            "source": ["a", "b", "c", "b"] * (rows // 4),
        }
    )
    after = np.clip(labels * 0.6 + rng.random(rows) * 0.5, 0, 1)
    return frame, {"before": rng.random(rows), "after": after}


def report_of(rows: int = ROWS) -> metrics.EvaluationReport:
    frame, scores = scored_rows(rows)
    return metrics.evaluation_report(frame, scores, None, 0.5, 20.0)


def test_an_evaluation_stores_small_curves_that_agree_with_its_metrics():
    report = report_of(2000)
    assert json.loads(json.dumps(report)) == dict(report), "the report writes as the plain dict it is"
    assert len(report.labels) == 2000 and set(report.scores) == {"before", "after"}
    for side in ("before", "after"):
        roc, bins = report["curves"][side]["roc"], report["curves"][side]["calibration"]
        assert len(roc["fpr"]) <= metrics.ROC_POINTS and len(roc["fpr"]) == len(roc["tpr"])
        assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
        assert roc["fpr"] == sorted(roc["fpr"]) and roc["tpr"] == sorted(roc["tpr"])
        low = max(t for f, t in zip(roc["fpr"], roc["tpr"]) if f <= metrics.LOW_FPR)
        assert low == pytest.approx(report[side]["recall_at_1pct_fpr"], abs=1e-4), "recall at 1% FPR is on the curve"
        assert sum(bins["rows"]) == 2000 and len(bins["rows"]) <= metrics.CALIBRATION_BINS
        gaps = np.abs(np.array(bins["injection_share"]) - np.array(bins["mean_p"])) * np.array(bins["rows"]) / 2000
        assert gaps.sum() == pytest.approx(report[side]["ece"], abs=1e-3), "ECE is the bins' weighted mean gap"
    assert len(json.dumps(report["curves"])) < 12_000, "the curves stay a few kB whatever the rows"
    assert metrics.roc_points([1, 1], [0.2, 0.9]) is None


def test_the_roc_chart_draws_each_curve_and_marks_each_threshold_on_it():
    report = report_of()
    frame = charts.roc_frame(report)
    after = frame[frame[charts.CURVE] == "after"]
    assert after[charts.FPR].tolist() == report["curves"]["after"]["roc"]["fpr"]
    marked = frame[frame[charts.CURVE] == "after at threshold"]
    confusion = report["after"]["confusion"]
    fpr = confusion["fp"] / (confusion["fp"] + confusion["tn"])
    recall = confusion["tp"] / (confusion["tp"] + confusion["fn"])
    assert marked[charts.FPR].tolist() == [round(fpr, 4)] * 2 and marked[charts.RECALL].tolist() == [
        0,
        round(recall, 4),
    ]
    assert set(frame[charts.CURVE]) == {"before", "after", "before at threshold", "after at threshold", charts.CHANCE}
    assert f"after {report['after']['recall_at_1pct_fpr']:.3f}" in charts.roc_title(report)
    assert "threshold 0.5" in charts.roc_caption(report)
    assert charts.roc_frame({k: v for k, v in report.items() if k != "curves"}) is None, "an older report"
    assert charts.roc_frame(None) is None


def test_reliability_flagged_and_confusion_charts_hold_the_reports_numbers():
    report = report_of()
    reliability = charts.reliability_frame(report)
    after = reliability[reliability[charts.CURVE] == "after"]
    assert after[charts.MEAN_P].tolist() == report["curves"]["after"]["calibration"]["mean_p"]
    assert f"after {report['after']['ece']:.3f}" in charts.reliability_title(report)

    flagged = charts.flagged_frame(report).set_index(charts.BAR)
    for group, sides in report["groups"]["source"].items():
        assert flagged.at[f"{group} (after)", charts.SHARE] == pytest.approx(sides["after"]["flagged"], abs=1e-4)
        injections = (sides["after"]["confusion"]["tp"] + sides["after"]["confusion"]["fn"]) / sides["after"]["n"]
        assert flagged.at[f"{group} ({charts.LABELLED})", charts.SHARE] == pytest.approx(injections, abs=1e-4)
    assert flagged.index[0].startswith("b "), "the largest group first"
    assert len(charts.flagged_frame(report, max_groups=1)) == 3, "one group: labelled, before, after"

    confusion = charts.confusion_frame(report).set_index(charts.CELL)
    assert confusion.at["false positive (after)", charts.ROWS] == report["after"]["confusion"]["fp"]
    assert confusion[charts.ROWS].sum() == 2 * ROWS
    assert "after " + str(report["after"]["confusion"]["tp"]) + " TP" in charts.confusion_caption(report)


def test_two_runs_compared_keep_their_own_thresholds():
    frame, scores = scored_rows()
    report = metrics.sides_report(frame, {"A": scores["before"], "B": scores["after"]}, {"A": 0.3, "B": 0.7})
    assert charts.report_sides(report) == ["A", "B"]
    assert (report["A"]["threshold"], report["B"]["threshold"]) == (0.3, 0.7)
    assert set(report["groups"]["source"]["a"]) == {"A", "B"}
    assert charts.confusion_title(report) == "Confusion matrix at the thresholds A 0.3, B 0.7"
    assert set(charts.roc_frame(report)[charts.CURVE]) >= {"A", "B", "A at threshold", "B at threshold"}


def test_the_batch_histogram_is_a_step_outline_with_the_threshold_line():
    scores = pd.DataFrame({"p_before": [0.01, 0.02, 0.5, 0.97], "p_after": [0.03, 0.62, 0.65, 0.99]})
    frame = charts.histogram_frame(scores, 0.55, bins=10)
    after = frame[frame[charts.MODEL] == "after"]
    assert after[charts.PROMPTS].max() == 2 and after[charts.P_INJECTION].is_monotonic_increasing
    tops = after.iloc[1:-1]  # each bin's flat top: its count at its lower and its upper edge
    assert tops[charts.PROMPTS].tolist()[12:14] == [2, 2], "0.62 and 0.65 in the bin from 0.6 to 0.7"
    line = frame[frame[charts.MODEL] == charts.THRESHOLD]
    assert line[charts.P_INJECTION].tolist() == [0.55, 0.55] and line[charts.PROMPTS].tolist() == [0, 2]
    assert charts.histogram_title(scores, 0.55).endswith("flagged at 0.55: before 1, after 3")
    assert charts.histogram_frame(None, 0.5) is None


def test_the_tracker_charts_are_in_the_offline_wandb_runs_files(tmp_path):
    import wandb

    from ft.callbacks import wandb_test_charts

    report = report_of()
    run = wandb.init(mode="offline", dir=str(tmp_path), project="charts-test")
    wandb.log(wandb_test_charts(report))
    folder = run.dir
    wandb.finish()
    tables = {
        p.name.split("_table_")[0]: p for p in (tmp_path / "wandb").glob("offline-run-*/files/media/table/test/*")
    }
    assert set(tables) == {"roc_before", "roc_after", "confusion_before", "confusion_after", "flagged_by_group"}
    assert str(tmp_path) in folder
    confusion = json.loads(tables["confusion_after"].read_text())
    cells = {(actual, predicted): n for actual, predicted, n in confusion["data"]}
    assert cells[("benign", "injection")] == report["after"]["confusion"]["fp"]
    roc = json.loads(tables["roc_after"].read_text())
    assert roc["columns"] == ["class", "fpr", "tpr"] and roc["data"][-1][1:] == [1.0, 1.0]
    bars = dict(json.loads(tables["flagged_by_group"].read_text())["data"])
    assert bars["source a (after)"] == pytest.approx(report["groups"]["source"]["a"]["after"]["flagged"])


def finished_run(runs_dir, run_id: str, seconds: float, model: str = "tiny", steps: int = 60) -> RunDir:
    run = RunDir(runs_dir / run_id)
    run.path.mkdir(parents=True)
    run.config.write_text(f"model: {model}\nrun_name: {run_id}\n")
    ended = time.time()
    run.write_state(status="completed", started=ended - seconds, ended=ended, step=steps, total_steps=steps)
    return run


def test_the_time_note_says_what_runs_took_on_this_machine(tmp_path):
    finished_run(tmp_path, "a", 300)
    time.sleep(0.01)
    finished_run(tmp_path, "b", 75, steps=40)
    runs = [read_run(RunDir(tmp_path / name)) for name in ("a", "b")]
    note = run_views.time_note(
        runs, "Some CPU: no native bf16 (AVX2-class: bf16 is emulated), so fp32", 2, ["smollm2-135m"]
    )
    assert note.startswith("Run times on this machine (2 core(s); Some CPU: no native bf16")
    assert "smollm2-135m: none completed here yet" in note
    assert "tiny: 1m 15s (the last of 2 completed run(s), 40 steps)" in note
    assert run_views.time_note([], "Some CPU", 2, ["tiny"]).count("none completed here yet") == 1


def test_the_refresh_sends_only_the_parts_whose_files_changed(tmp_path):
    from ui.train.runs import RunView, _run_view, run_charts

    manager = JobManager(tmp_path / "runs")
    run = finished_run(manager.runs_dir, "r", 30)
    write_json(run.eval, dict(report_of()))
    with gr.Blocks():
        view = RunView(gr.HTML(), gr.Textbox(), run_charts(), gr.State(None))
    first = _run_view(manager, view, "r", None)
    shown = view.charts
    assert {shown.charts.roc, shown.charts.confusion, shown.test_report, shown.log} <= set(first)
    roc = first[shown.charts.roc]
    assert roc.value["data"] and roc.label.startswith("ROC · recall at 1% FPR")

    again = _run_view(manager, view, "r", first[view.version])
    assert set(again) == {view.progress_bar, view.details}, "nothing redrawn when no file changed"

    write_json(run.eval, dict(report_of(200)))  # written again: the evaluation charts and tables, nothing else
    later = _run_view(manager, view, "r", first[view.version])
    assert shown.charts.roc in later and shown.test_report in later and shown.evaluation in later
    assert shown.loss not in later and shown.log not in later and shown.predictions not in later
    assert run_views.changed_parts(later[view.version], run_views.part_versions(read_run(run))) == []


def test_empty_tables_say_what_fills_them(tmp_path):
    from ui.train.runs import RUNS_EMPTY, runs_shown
    from ui.widgets import filled, text_table

    empty = runs_shown([])
    assert list(empty.columns) == run_views.RUN_COLUMNS and empty.iloc[0, 0] == RUNS_EMPTY and len(empty) == 1
    with gr.Blocks():
        table = text_table(headers=["a", "b"], empty="Pick a run.")
    assert table.value["headers"] == ["a", "b"] and table.value["data"] == [["Pick a run.", ""]]
    full = pd.DataFrame({"a": ["1"], "b": ["2"]})
    assert filled(full, "x") is full

"""The Train tab in Chromium: a tiny run from the page learns, finishes and reproduces from the shell;
another is cancelled and resumed."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from helpers import (
    DATA_DIR,
    IMG,
    MARKDOWN,
    ROOT,
    SCRIPT,
    SHARED,
    TINY_FORM,
    choose_tiny_model,
    field,
    run_row,
    type_data,
)
from playwright.sync_api import expect

from ft.evaluate import evaluate_run
from ft.run_dir import RunDir

pytestmark = pytest.mark.browser

FOREIGN_EVAL = SHARED / "data" / "foreign-eval"

RUN_TIMEOUT_MS = 300_000
TINY_RUN = {**TINY_FORM, "max_train_rows": "200", "max_test_rows": "64"}


@pytest.fixture(scope="module")
def train_app(start_module_app, tmp_path_factory):
    """One app for this file's runs (the tests find their runs by id); the tests' temp folders may be typed in."""
    return start_module_app("--allow-path", str(tmp_path_factory.getbasetemp()))


def open_train_tab(page, app):
    page.goto(app.url)
    page.get_by_role("tab", name="Train").click()
    for section in ("Model", "Data", "Optimisation", "Logging"):
        page.get_by_text(f"{section} settings", exact=True).click()


def queue_tiny_run(page, name, data=str(DATA_DIR), **values):
    """Fill the form for a tiny CPU run (on the shared data by default) and press Start; returns the run id."""
    field(page, "run_name").fill(name)
    type_data(page, data)
    choose_tiny_model(page)
    for name_, value in {**TINY_RUN, **values}.items():
        field(page, name_).fill(value)
    page.get_by_role("button", name="Show command").click()
    command = page.locator("#train-command textarea")
    expect(command).to_have_value(re.compile(r"-m ft\.train --config \S+/config\.yaml --run-id \S+"))
    shown = command.input_value()
    page.locator("#train-start").click()
    expect(command).to_have_value(re.compile(r"^Queued "))
    run_id = re.match(r"Queued (\S+):", command.input_value()).group(1)
    assert shown.endswith(f"--run-id {run_id}"), "Start used the run the command was shown for"
    return run_id


def test_a_run_from_the_page_learns_finishes_and_reproduces_from_the_shell(page, train_app):
    open_train_tab(page, train_app)
    # no CUDA here: the form opens on the SmolLM2 CPU recipe, the config its saved-config box names
    expect(page.locator("#train-saved-config input")).to_have_value("configs/smollm2-cpu.yaml")
    expect(field(page, "model")).to_have_value("smollm2-135m")
    expect(field(page, "lora_layers")).to_have_value("8")
    field(page, "learning_rate").fill("0")
    page.get_by_role("button", name="Show command").click()
    expect(page.locator("#train-command textarea")).to_have_value(re.compile("Refused: learning_rate must be > 0"))

    run_id = queue_tiny_run(page, "from-page")
    expect(run_row(page, run_id)).to_contain_text(re.compile("running|completed"), timeout=60_000)
    expect(page.locator("#train-loss canvas, #train-loss svg").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(run_row(page, run_id)).to_contain_text("completed", timeout=RUN_TIMEOUT_MS)

    predictions = page.locator("#train-predictions")
    for header in ("before answer", "before P(injection)", "after answer", "after P(injection)"):
        expect(predictions).to_contain_text(header)
    expect(predictions.get_by_role("grid")).to_have_attribute("aria-rowcount", "9")  # a header and 8 rows
    for column in (3, 5):  # P(injection) before and after
        expect(predictions.get_by_test_id(f"cell-0-{column}")).to_have_text(re.compile(r"^\s*[01]\.\d{4}\s*$"))
    expect(page.locator("#train-test")).to_contain_text("after")
    expect(page.locator("#train-log textarea")).to_have_value(re.compile("test before: acc"))

    run_dir = train_app.data_dir / "runs" / run_id
    shell = subprocess.run(
        [sys.executable, "-m", "ft.train", "--config", str(run_dir / "config.yaml"), "--run-id", "from-shell"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert shell.returncode == 0, shell.stderr[-3000:]
    from_page = json.loads((run_dir / "eval.json").read_text())
    from_shell = json.loads((run_dir.parent / "from-shell" / "eval.json").read_text())
    for report in (from_page, from_shell):
        for side in ("before", "after"):
            report[side].pop("seconds")
            report[side].pop("cached")  # the shell's HF_HOME is the suite's: its base scores may be cached there
    assert from_shell == from_page

    # an evaluation on other data shows in the run's details (evaluate_run writes what ft.evaluate's CLI writes)
    evaluate_run(RunDir(run_dir), str(FOREIGN_EVAL), max_rows=24, name="foreign")
    other = page.locator("#train-other-evals")
    grid = other.get_by_role("grid")
    expect(grid).to_have_attribute("aria-rowcount", "4", timeout=30_000)  # a header; before, after, length_baseline
    expect(other).to_contain_text("foreign")
    expect(page.locator("#train-other-groups")).to_contain_text("tensor-trust")


def hostile_data(folder):
    """The real train and test splits, and a validation split of HTML and Markdown that must stay text."""
    folder.mkdir()
    for split in ("train", "test"):
        pd.read_parquet(DATA_DIR / f"{split}.parquet").head(600).to_parquet(folder / f"{split}.parquet")
    pd.DataFrame({"text": [IMG, SCRIPT, MARKDOWN], "label": [1, 1, 0]}).to_parquet(folder / "validation.parquet")
    return folder


def test_a_run_is_cancelled_from_the_page_and_resumed(page, train_app, tmp_path):
    open_train_tab(page, train_app)
    run_id = queue_tiny_run(
        page,
        "to-cancel",
        data=str(hostile_data(tmp_path / "hostile")),
        validation_split="validation",
        max_steps="40",
        logging_steps="1",
    )
    predictions = page.locator("#train-predictions")
    for row, text in enumerate((IMG, SCRIPT, MARKDOWN)):
        expect(predictions.get_by_test_id(f"cell-{row}-0")).to_have_text(text, timeout=RUN_TIMEOUT_MS)
    assert page.evaluate("[window.__x, window.__y]") == [None, None]
    assert predictions.locator("img, script, a").count() == 0
    expect(page.locator("#train-progress")).to_contain_text(
        re.compile(r"step ([2-9]|[1-3]\d)/40"), timeout=RUN_TIMEOUT_MS
    )
    page.locator("#train-cancel").click()
    expect(page.locator("#train-action textarea")).to_have_value(re.compile("cancelling"))
    expect(run_row(page, run_id)).to_contain_text("cancelled", timeout=30_000)
    stopped_at = int(re.search(r"step (\d+)/40", page.locator("#train-progress").inner_text()).group(1))
    assert (train_app.data_dir / "runs" / run_id / "checkpoints" / f"checkpoint-{stopped_at}").is_dir()

    page.locator("#train-resume").click()
    expect(page.locator("#train-action textarea")).to_have_value(re.compile("queued to resume"))
    expect(run_row(page, run_id)).to_contain_text("completed", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#train-details textarea")).to_have_value(re.compile(r"-m ft\.train .*--resume"))
    expect(page.locator("#train-progress")).to_contain_text("step 40/40")

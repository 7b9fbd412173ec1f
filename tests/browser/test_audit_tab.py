"""A label audit from the Train tab, reviewed in Curate's suspects queue: relabelling the top suspect moves
it out of the queue."""

import re

import pandas as pd
import pytest
from helpers import DATA_DIR, field, pick, run_row, type_data
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

AUDIT_TIMEOUT_MS = 150_000
TRAIN_ROWS, TEST_ROWS = 160, 32
FAST = {
    "max_train_rows": str(TRAIN_ROWS),
    "max_test_rows": str(TEST_ROWS),
    "max_length": "128",
    "warmup_steps": "0",
    "prediction_samples": "8",
    "validation_size": "16",
    "logging_steps": "2",
}
LEFT = re.compile(r"(\d+) suspects left in the queue")


def data_slice(folder):
    """A small dataset the app imports and the audit audits: the same texts on both sides."""
    folder.mkdir()
    pd.read_parquet(DATA_DIR / "train.parquet").head(TRAIN_ROWS).to_parquet(folder / "train.parquet")
    pd.read_parquet(DATA_DIR / "test.parquet").head(TEST_ROWS).to_parquet(folder / "test.parquet")
    return folder


def queue_audit(page, data):
    page.get_by_role("tab", name="Train").click()
    pick(page, page.locator("#train-saved-config input"), re.compile("tiny-cpu"))
    page.locator("#train-load-config").click()
    expect(field(page, "model")).to_have_value("tiny")
    for section in ("Data", "Optimisation", "Logging"):
        page.get_by_text(f"{section} settings", exact=True).click()
    pick(page, field(page, "tracker"), re.compile(r"^none$"))
    type_data(page, str(data))
    for name, value in FAST.items():
        field(page, name).fill(value)
    page.get_by_text("Label audit", exact=True).click()
    expect(page.locator("#train-audit-folds input")).to_have_value("2")
    seed = page.locator("#train-audit-seed textarea, #train-audit-seed input").first
    seed.fill("x")
    seed.press("Tab")  # the page sends a box's value once it has taken the input: leave the box first
    page.locator("#train-audit-start").click()
    command = page.locator("#train-command textarea")
    expect(command).to_have_value("Refused: seed must be a whole number or empty, got 'x'")
    seed.fill("")
    seed.press("Tab")
    page.locator("#train-audit-start").click()
    expect(command).to_have_value(
        re.compile(
            r"^Queued audit \S+:\n.*-m ft\.audit --config \S+ --audit-id \S+ "
            r"--folds 2 --eval-rows",
            re.S,
        )
    )  # no --seed: the config's
    return re.match(r"Queued audit (\S+):", command.input_value()).group(1)


def test_an_audit_from_the_page_feeds_the_suspects_queue(page, start_app, tmp_path):
    data = data_slice(tmp_path / "slice")
    app = start_app("--dataset", str(data), "--allow-path", str(data))
    page.goto(app.url)
    audit_id = queue_audit(page, data)
    row = run_row(page, audit_id)
    expect(row).to_contain_text("label audit")
    expect(row).to_contain_text("completed", timeout=AUDIT_TIMEOUT_MS)

    page.get_by_role("tab", name="Curate").click()
    page.get_by_label("Reviewer").fill("ann")
    page.get_by_label("Reviewer").press("Enter")
    page.locator("#curate-queue").get_by_text("suspects", exact=True).click()
    pick(page, page.locator("#curate-audit input"), re.compile(re.escape(audit_id)))
    suspect = page.locator("#curate-suspect textarea")
    expect(suspect).to_have_value(re.compile(r"cross-fit K=2 · \d+ suspects left.*\nThis item: rank 1 ", re.S))
    expect(suspect).not_to_contain_text("BIASED")
    before = int(LEFT.search(suspect.input_value()).group(1))
    assert before > 100, "the audited texts are the store's"
    text = page.get_by_label("Text (shown as plain text)")
    top_text = text.input_value()
    assert top_text
    expect(page.get_by_label("Labels")).to_have_value(
        re.compile(
            rf"Detector P\(injection\): [01]\.\d{{3}} \(run "
            rf"{re.escape(audit_id)}"
        )
    )
    top_id = re.match(r"#(\d+) ·", page.get_by_label("Labels").input_value()).group(1)
    page.get_by_text("Top suspects", exact=True).click()
    table = page.locator("#curate-suspects-table")
    expect(table.get_by_test_id("cell-0-1")).to_have_text(top_id)
    current = re.search(r"current label: (\w+)", suspect.input_value()).group(1)
    page.locator("#vote-benign" if current == "injection" else "#vote-injection").click()

    expect(suspect).to_have_value(re.compile(rf"{before - 1} suspects left.*\nThis item: rank \d+ ", re.S))
    expect(text).not_to_have_value(top_text)
    expect(table.get_by_test_id("cell-0-1")).not_to_have_text(top_id)
    expect(table.get_by_test_id("cell-0-0")).not_to_have_text("1")

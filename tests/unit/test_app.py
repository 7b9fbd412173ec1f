"""The app's start-up: flags, data directory, demo data, --dataset import, building the page, serving it."""

import threading
import time
from pathlib import Path

import gradio as gr
import pytest
from helpers import DATA_DIR, free_port

import app
from access.users import hash_password
from curation.demo import DEMO_PATH, demo_only
from curation.sources import load
from runner.queue import JobManager


def test_flags_and_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(app, "SPACE_DATA_DIR", tmp_path / "missing")
    args = app.parse_args([])
    assert (args.data_dir, args.dataset, args.host, args.port, args.auth) == (
        Path("studio_data"),
        None,
        "127.0.0.1",
        7860,
        None,
    )
    monkeypatch.setattr(app, "SPACE_DATA_DIR", tmp_path)
    assert app.parse_args([]).data_dir == tmp_path
    args = app.parse_args(["--data-dir", "x", "--dataset", "d", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.data_dir, args.dataset, args.host, args.port) == (Path("x"), "d", "0.0.0.0", 9000)


def test_users_come_from_the_file_or_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "users.txt"
    path.write_text(f"ann:{hash_password('pw')}:admin\n", encoding="utf-8")
    assert app.load_users(path).role("ann") == "admin"
    monkeypatch.setenv("STUDIO_USERS", f"bob:{hash_password('pw')}")
    assert app.load_users(None).names() == ["bob"]
    monkeypatch.delenv("STUDIO_USERS")
    assert app.load_users(None) is None
    path.write_text("ann:plain-password\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be a hash"):
        app.load_users(path)


def test_hub_accounts_or_passwords_but_not_both(tmp_path, monkeypatch):
    monkeypatch.delenv("STUDIO_USERS", raising=False)
    for name, value in {
        "SYSTEM": "spaces",
        "SPACE_ID": "team/studio",
        "OAUTH_CLIENT_ID": "id",
        "OAUTH_CLIENT_SECRET": "s",
        "OAUTH_SCOPES": "openid",
        "OPENID_PROVIDER_URL": "https://x",
        "STUDIO_HF_USERS": "ann:admin bob",
    }.items():
        monkeypatch.setenv(name, value)
    hub = app.load_users(None)
    assert hub.names() == ["ann", "bob"] and hub.role("ann") == "admin"
    assert set(app.access_options(hub, app.origin_guard("0.0.0.0", hub, []))) == {"auth_dependency", "app_kwargs"}
    assert "Hugging Face" in app.access_note("0.0.0.0", hub)
    app.check_binding("0.0.0.0", hub, False)
    path = tmp_path / "users.txt"
    path.write_text(f"ann:{hash_password('pw')}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not both"):
        app.load_users(path)


def test_no_login_binds_to_loopback_unless_told(tmp_path):
    users = app.Users.from_text(f"ann:{hash_password('pw')}", "test")
    app.check_binding("127.0.0.1", None, False)
    app.check_binding("0.0.0.0", users, False)
    app.check_binding("0.0.0.0", None, True)
    with pytest.raises(ValueError, match="without login"):
        app.check_binding("0.0.0.0", None, False)
    with pytest.raises(SystemExit, match="without login"):
        app.main(["--data-dir", str(tmp_path), "--host", "0.0.0.0"])
    assert "127.0.0.1 only" in app.access_note("127.0.0.1", None)


def test_demo_dataset_is_small_mixed_and_split():
    counts = load(DEMO_PATH).counts()
    assert set(counts) == {"train", "test"}
    assert all(c[0] and c[1] for c in counts.values())
    assert 20 <= sum(sum(c.values()) for c in counts.values()) <= 100


def test_fresh_start_uses_the_demo(tmp_path):
    studio = app.open_studio(tmp_path)
    assert studio.demo and demo_only(studio.store)
    assert studio.store.totals().examples == 48
    assert studio.runs_dir == tmp_path / "runs"
    again = app.open_studio(tmp_path)
    assert again.store.totals().examples == 48


def test_dataset_import_is_idempotent_and_skips_the_demo(tmp_path):
    studio = app.open_studio(tmp_path, str(DATA_DIR))
    assert not studio.demo
    assert studio.store.source_counts() == {"safe-guard": 10135}
    again = app.open_studio(tmp_path, str(DATA_DIR))
    assert again.store.totals().examples == 10135


def test_bad_dataset_stops_start_up_with_the_reason(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,label\nx,0\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="Cannot start: bad.csv: no column 'text'"):
        app.main(["--data-dir", str(tmp_path / "data"), "--dataset", str(bad)])
    assert app.LabelStore(tmp_path / "data").totals().examples == 0


def test_build_app(tmp_path):
    blocks = app.build_app(app.open_studio(tmp_path))
    assert isinstance(blocks, gr.Blocks)
    assert "Curate" in [b.label for b in blocks.blocks.values() if isinstance(b, gr.Tab)]


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_served_app_runs_the_queue_and_hands_it_over_when_it_stops(tmp_path):
    studio = app.open_studio(tmp_path)
    assert not studio.jobs.is_scheduler  # opening and building start nothing
    blocks = app.build_app(studio)
    serving = threading.Thread(
        target=app.serve,
        args=(blocks, studio),
        kwargs={"server_name": "127.0.0.1", "server_port": free_port(), "quiet": True, "ssr_mode": False},
        daemon=True,
    )
    serving.start()
    other_app = JobManager(studio.runs_dir)
    try:
        # launch() is done starting once its start-up events ran: a close() before that would be undone by them
        wait_for(lambda: studio.jobs.is_scheduler and blocks.app.startup_events_triggered)
        other_app.tick()
        assert not other_app.is_scheduler
    finally:
        blocks.close()
        serving.join(timeout=30)
    assert not serving.is_alive() and not studio.jobs.is_scheduler
    other_app.tick()
    assert other_app.is_scheduler
    other_app.stop()


def test_page_errors_show_quoted_text_as_text():
    from ui.context import page_error

    error = page_error('bad column <img src=x onerror="window.__x=1"> & more')
    assert error.message == 'bad column &lt;img src=x onerror="window.__x=1"&gt; &amp; more'

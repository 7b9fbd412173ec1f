"""Browser fixtures: the real app in a subprocess, and a Chromium page (Debian's /usr/bin/chromium).

``start_app(*flags, env=...)`` starts ``python app.py --data-dir <tmp> --port <free port> *flags`` with its
own temporary Gradio and Hugging Face caches (and ``env`` added to its environment), its output going to a
file, waits until it answers (a 401 sign-in page counts), and returns a RunningApp; every app started is
stopped after the test (or the module), which then fails if the app printed a traceback.
``page`` is a fresh Chromium profile's page; actions and expect() wait up to 15 s.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    TEAM,
    TIMEOUT_MS,
    RunningApp,
    app_environment,
    free_port,
    open_browser,
    users_file,
    wait_until_up,
)

from runner.catalog import list_runs, process_alive


def _kill_live_runs(runs_dir: Path) -> None:
    """Runs outlive their app by design (each in its own session): one still alive when its test ends is
    killed, so that no trainer keeps the CPU for the rest of the suite or writes into a removed folder."""
    for info in list_runs(runs_dir):
        if info.job.get("pgid") and process_alive(info):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(info.job["pgid"], signal.SIGKILL)


def _app_starter(request, tmp_path_factory):
    """Yields ``start(*flags, data_dir=None, env=None) -> RunningApp``; stops every app it started, and removes
    their folders (data, caches, log) unless a test failed meanwhile: an app's runs and caches take ~100 MB."""
    processes, apps = [], []
    failed_before = request.session.testsfailed

    def start(*flags: str, data_dir: Path | None = None, env: dict[str, str] | None = None) -> RunningApp:
        home = tmp_path_factory.mktemp("app")
        app = RunningApp(free_port(), data_dir or home / "data", home / "app.log", home)
        app_env = app_environment(home)
        app_env.update(env or {})
        with app.log.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "app.py", "--data-dir", str(app.data_dir), "--port", str(app.port), *flags],
                cwd=ROOT,
                env=app_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        apps.append(app)
        wait_until_up(app, process)
        return app

    yield start
    for app in apps:
        _kill_live_runs(app.data_dir / "runs")
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    crashed = {str(app.log): errors for app in apps if (errors := app.unhandled_errors())}
    assert not crashed, f"an app's handler crashed: {crashed}"
    if request.session.testsfailed == failed_before:
        for app in apps:
            shutil.rmtree(app.home, ignore_errors=True)


@pytest.fixture
def start_app(request, tmp_path_factory):
    yield from _app_starter(request, tmp_path_factory)


@pytest.fixture(scope="module")
def start_module_app(request, tmp_path_factory):
    """As start_app, for an app the tests of one module share (each start costs seconds of imports)."""
    yield from _app_starter(request, tmp_path_factory)


@pytest.fixture(scope="module")
def team_app(start_module_app, tmp_path_factory) -> RunningApp:
    """The app with password sign-in for TEAM, shared by the tests of one module."""
    users = users_file(tmp_path_factory.mktemp("users") / "users.txt", TEAM)
    return start_module_app("--auth", str(users))


@pytest.fixture
def running_app(start_app, tmp_path_factory) -> RunningApp:
    """The app on a fresh data directory (so on the demo dataset); the tests' temp folders may be typed in."""
    return start_app("--allow-path", str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def playwright():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def page(playwright, tmp_path):
    page = open_browser(playwright, tmp_path / "chromium-profile")
    yield page
    page.context.close()

"""Browser fixtures: the real app in a subprocess, and a Chromium page (Debian's /usr/bin/chromium).

``start_app(*flags, env=...)`` starts ``python app.py --data-dir <tmp> --port <free port> *flags`` with its
own temporary Gradio and Hugging Face caches (and ``env`` added to its environment), its output going to a
file, waits until it answers (a 401 sign-in page counts), and returns a RunningApp; every app started is stopped after the test. ``page`` is a fresh Chromium
profile's page; actions and expect() wait up to 15 s.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
START_TIMEOUT_S = 90
TIMEOUT_MS = 15_000
"""For page actions and expect(): a loaded 2-core machine can take seconds per Gradio event."""


@dataclass(frozen=True)
class RunningApp:
    port: int
    data_dir: Path
    log: Path
    home: Path
    """The app's own folder: data_dir (unless given), its Gradio temp dir and its Hugging Face cache."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(app: RunningApp, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(app.url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            if error.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"app did not answer within {START_TIMEOUT_S} s:\n{app.log_tail()}")


def _app_starter(tmp_path_factory):
    """Yields ``start(*flags, data_dir=None, env=None) -> RunningApp``; stops every app it started."""
    processes = []

    def start(*flags: str, data_dir: Path | None = None, env: dict[str, str] | None = None) -> RunningApp:
        home = tmp_path_factory.mktemp("app")
        app = RunningApp(free_port(), data_dir or home / "data", home / "app.log", home)
        app_env = {**os.environ, "GRADIO_TEMP_DIR": str(home / "gradio"), "HF_HOME": str(home / "hf"),
                   "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                   "PYTHONUNBUFFERED": "1"}
        app_env.pop("HF_TOKEN", None)
        app_env.update(env or {})
        with app.log.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "app.py", "--data-dir", str(app.data_dir), "--port", str(app.port), *flags],
                cwd=ROOT, env=app_env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        _wait_until_up(app, process)
        return app

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def start_app(tmp_path_factory):
    yield from _app_starter(tmp_path_factory)


@pytest.fixture(scope="module")
def start_module_app(tmp_path_factory):
    """As start_app, for an app the tests of one module share (each start costs seconds of imports)."""
    yield from _app_starter(tmp_path_factory)


def suite_model_cache() -> dict[str, str]:
    """The suite's HF_HOME (scripts/test sets one per run) for an app to share: the SmolLM2 wheel's model is then
    dequantised once per suite, not once per app. Empty when the suite has none (the app keeps its own)."""
    return {"HF_HOME": os.environ["HF_HOME"]} if os.environ.get("HF_HOME") else {}


TEAM = {"boss": ("boss-pw", "admin"), "lee": ("lee-pw", "lead"), "rev": ("rev-pw", "reviewer")}
"""Password sign-in users of ``team_app``: name -> (password, role)."""


@pytest.fixture(scope="module")
def team_app(start_module_app, tmp_path_factory) -> RunningApp:
    """The app with password sign-in for TEAM, shared by the tests of one module."""
    from access.users import hash_password

    users = tmp_path_factory.mktemp("users") / "users.txt"
    users.write_text("".join(f"{name}:{hash_password(password)}:{role}\n" for name, (password, role) in TEAM.items()),
                     encoding="utf-8")
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


def open_browser(playwright, profile: Path):
    """A Chromium with its own fresh profile (so its own cookies and storage); its first page."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


@pytest.fixture
def page(playwright, tmp_path):
    page = open_browser(playwright, tmp_path / "chromium-profile")
    yield page
    page.context.close()

"""What the tests share, in one module: paths to the project and ../shared, a tiny run (its config, and one
trained run for the Detect tests), a fake Hub, files that decode to far more than they weigh, the README's role
table, the app in a subprocess and a Chromium for it, an HTTP client of Gradio's queue, and the Train form as
the browser fills it. Fixtures live in the conftest.py files; they use these."""

import atexit
import dataclasses
import functools
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import expect

from access.roles import Role
from access.users import hash_password
from ft.config import TrainConfig
from ft.paths import ROOT, SHARED

DATA_DIR = SHARED / "data" / "safe-guard"
POOL_DIR = SHARED / "data" / "train-pool"
TOKENIZER_DIR = SHARED / "tokenizers" / "qwen2.5"


def pool_slice(folder: Path, rows: dict[str, int]) -> Path:
    """A folder of sources in ``folder``: the first ``rows[name]`` rows of each named train-pool file (its stem)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in rows.items():
        pd.read_parquet(POOL_DIR / f"{name}.parquet").head(n).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


# --- a tiny run -----------------------------------------------------------------------------------------


def tiny_config(tmp_path, **overrides):
    """A TrainConfig for a seconds-long run on a slice of the real data: the tiny preset, unless overridden."""
    values = dict(
        model="tiny",
        tokenizer=str(TOKENIZER_DIR),
        data=str(DATA_DIR),
        quantisation="none",
        modules_to_save=["embed_tokens", "lm_head"],
        gradient_checkpointing=False,
        max_length=128,
        max_train_rows=96,
        max_test_rows=32,
        validation_size=16,
        prediction_samples=8,
        batch_size=8,
        gradient_accumulation=1,
        learning_rate=3e-3,
        warmup_steps=0,
        logging_steps=2,
        save_steps=4,
        eval_batch_size=16,
        tracker="none",
        runs_dir=str(tmp_path / "runs"),
    )
    values.update(overrides)
    return TrainConfig.from_dict(values)


def score_tolerance(fp32: float = 1e-5) -> float:
    """How far two computations of one text's P(injection) may differ on this machine: ``fp32`` where it scores in
    fp32, 5e-3 where it scores in bf16 (ft.machine: a CPU with AMX, a bf16 GPU), so the suite passes on any CPU."""
    from ft.machine import scoring_bf16

    return 5e-3 if scoring_bf16() else fp32


RUN_ID = "t"


@functools.cache
def trained_data_dir() -> Path:
    """An app data directory whose ``runs/t`` is a completed tiny run (300 rows, 2 epochs, ~30 s on 2 cores),
    trained once per test process: the Detect service, API and browser tests share it."""
    from ft.train import train  # torch and transformers: only for the tests that train

    root = Path(tempfile.mkdtemp(prefix="detect-run-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    train(tiny_config(root, max_train_rows=300, epochs=2), run_id=RUN_ID)
    return root


# --- the Hub, faked at its boundary ---------------------------------------------------------------


class FakeHubApi:
    """HfApi at its boundary: a repo already holding ``files``; every call is recorded in ``calls``."""

    files = ["README.md", "train.parquet", "validation.parquet", "other.parquet", "data/foreign.parquet"]
    calls = []

    def __init__(self, token):
        self.calls.append(("token", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def list_repo_files(self, repo_id, **kwargs):
        return list(self.files)

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(("commit", repo_id, [(type(op).__name__, op.path_in_repo) for op in operations]))

    def __getattr__(self, name):
        """Any other call (delete_file, delete_folder, upload_folder with delete_patterns ...) is recorded too."""
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def pushed_once_a_token_is_set(push, monkeypatch, hub_calls: list) -> str:
    """``push()`` refused without HF_TOKEN before any Hub call, then run with a token: what it returned."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PermissionError, match="HF_TOKEN"):
        push()
    assert hub_calls == []
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    return push()


# --- files that decode to far more than they weigh ------------------------------------------------------

MAX_GROWTH_MB = 1024
HEADROOM_BYTES = 4 * 2**30
"""The child may not map more than this beyond what it has after its imports, so a bomb that is not refused
fails the test with MemoryError instead of taking the machine's memory."""
BIG_STRING_CHARS = 100_000

_PROBE = """
import json, resource, sys
sys.path.insert(0, {root!r})
{setup}
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + {headroom}, resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    {call}
    message = ""
except ValueError as error:
    message = str(error)
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps([grew / 1024, message]))
"""


def peak_growth(setup: str, call: str) -> tuple[float, str]:
    """(MB the peak resident memory of a fresh Python grew by during ``call``, the ValueError it raised or "")."""
    code = _PROBE.format(root=str(ROOT), setup=textwrap.dedent(setup), call=call, headroom=HEADROOM_BYTES)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    grew, message = json.loads(done.stdout.strip().splitlines()[-1])
    return grew, message


def read_growth(path, columns: dict, limits: dict) -> tuple[float, str]:
    return peak_growth(
        "from intake import Limits, read_columns",
        f"read_columns({str(path)!r}, {columns!r}, limits=Limits(**{limits!r}))",
    )


def dictionary_bomb(path, rows: int, label: bool = False):
    """``rows`` rows of one 100 kB string, dictionary-encoded and zstd-compressed: under 1 kB on disk,
    rows * 100 kB of text once decoded. No Arrow schema is stored, so a reader sees a plain text column
    (as from any other writer) rather than a dictionary it could keep."""
    indices = pa.array(np.zeros(rows, np.int32))
    columns = {"text": pa.DictionaryArray.from_arrays(indices, pa.array(["x" * BIG_STRING_CHARS]))}
    if label:
        columns["label"] = pa.array(np.zeros(rows, np.int64))
    pq.write_table(pa.table(columns), path, compression="zstd", store_schema=False)
    return path


def one_cell_bomb(path, chars: int):
    """One plain-encoded cell of ``chars`` characters, zstd-compressed to a few kB."""
    data = pa.py_buffer(b"x" * chars)
    cell = pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, chars], np.int32).tobytes()), data)
    pq.write_table(pa.table({"text": cell}), path, compression="zstd", use_dictionary=False, write_statistics=False)
    return path


def new_key_per_line(path, lines: int = 60_000):
    """Every line a new key: about 2 MB, a lines x lines table if every key became a column."""
    path.write_text("".join(f'{{"text": "hi", "k{i}": 1}}\n' for i in range(lines)), encoding="utf-8")
    return path


def many_columns_csv(path, columns: int = 3_000, rows: int = 2_000):
    header = ",".join(f"c{i}" for i in range(columns - 1)) + ",text\n"
    path.write_text(header + ("1," * (columns - 1) + "hello\n") * rows, encoding="utf-8")
    return path


# --- the README's role table ----------------------------------------------------------------------------

README = ROOT / "README.md"
HEADING = "### Who may call what"
ROW = re.compile(r"^\|\s*`/?([a-z0-9_]+)`\s*\|\s*(reviewer|lead|admin)\s*\|")


def readme_role_table() -> dict[str, Role]:
    """Each row of the table under HEADING; a name listed twice fails."""
    section = README.read_text(encoding="utf-8").split(HEADING, 1)[1].split("\n#", 1)[0]
    table: dict[str, Role] = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            assert match[1] not in table, f"{match[1]} is listed twice in the README's role table"
            table[match[1]] = Role.named(match[2])
    return table


# --- the app in a subprocess, and a Chromium for it -----------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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
    expected_errors: list[str] = dataclasses.field(default_factory=list)
    """Starts of error lines a test provokes on purpose (forged or placeholder calls): not counted as crashes."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def unhandled_errors(self) -> list[str]:
        """The last line of every traceback the app printed: a handler that crashed (the page shows only
        "Error"). Refusals a user is meant to read are gr.Error without a traceback."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        errors = [next((ln for ln in lines[i + 1 :] if ln and not ln[0].isspace()), "?") for i in starts]
        return [error for error in errors if not error.startswith(tuple(self.expected_errors))]


def app_environment(home: Path) -> dict[str, str]:
    """The environment of an app started by a test or bench: offline, no Hub token, its Gradio and Hugging Face
    caches in ``home``. The other caches (fonts, ...) stay the suite's when it set them (scripts/test does:
    built once, not once per app), else they go in ``home`` too."""
    caches = {"GRADIO_TEMP_DIR": "gradio", "HF_HOME": "hf"}
    caches |= {name: folder for name, folder in (("XDG_CACHE_HOME", "cache"), ("MPLCONFIGDIR", "mpl"))
               if name not in os.environ}  # fmt: skip
    offline = dict.fromkeys(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"), "1")
    env = {**os.environ, **{name: str(home / folder) for name, folder in caches.items()}, **offline}
    env.pop("HF_TOKEN", None)
    return {**env, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(app: RunningApp, process: subprocess.Popen) -> None:
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


def suite_model_cache() -> dict[str, str]:
    """The suite's HF_HOME (scripts/test sets one per run) for an app to share: the SmolLM2 wheel's model is then
    dequantised once per suite, not once per app. Empty when the suite has none (the app keeps its own)."""
    return {"HF_HOME": os.environ["HF_HOME"]} if os.environ.get("HF_HOME") else {}


IMG = '<img src=x onerror="window.__x=1">'
SCRIPT = "<script>window.__y=1</script>"
MARKDOWN = "**bold** and [a link](javascript:alert(1))"
"""Hostile dataset texts: a page must show each as the text it is, and run none (window.__x, __y stay unset)."""


def users_file(path: Path, users: dict[str, tuple[str, str | None]]) -> Path:
    """A --auth users file at ``path``: name -> (password, role or None for the default role)."""
    lines = (
        f"{name}:{hash_password(password)}" + (f":{role}" if role else "") for name, (password, role) in users.items()
    )
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


TEAM = {"boss": ("boss-pw", "admin"), "lee": ("lee-pw", "lead"), "rev": ("rev-pw", "reviewer")}
"""Password sign-in users of ``team_app``: name -> (password, role)."""


def open_browser(playwright, profile: Path):
    """A Chromium with its own fresh profile (so its own cookies and storage); its first page."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


# --- an HTTP client of Gradio's queue -------------------------------------------------------------------

CALL_TIMEOUT_S = 60


class Caller:
    """One HTTP client with its own cookies: signs in, reads /config, calls endpoints through the queue."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def status(self, path: str, body: dict | None = None, headers: dict | None = None) -> int:
        try:
            with self._open(path, body, headers=headers) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def headers(self, path: str) -> dict[str, str]:
        with self._open(path) as response:
            return {k.lower(): v for k, v in response.headers.items()}

    def fn_index(self, config: dict, api_name: str) -> int:
        return next(d["id"] for d in config["dependencies"] if d["api_name"] == api_name)

    def sign_in(self, name: str, password: str) -> None:
        form = urllib.parse.urlencode({"username": name, "password": password}).encode()
        with self.opener.open(urllib.request.Request(self.base + "/login", data=form), timeout=20) as response:
            assert response.status == 200

    def config(self) -> dict:
        with self._open("/config") as response:
            return json.load(response)

    def call(self, fn_index: int, data: list, session: str | None = None, event_data: dict | None = None) -> dict:
        """The queue's last message for this call: ``success`` and ``output`` (``error`` when it failed).
        Calls with the same ``session`` share the server-side state (gr.State) of one page."""
        session = session or uuid.uuid4().hex
        joined = {
            "data": data,
            "fn_index": fn_index,
            "session_hash": session,
            "event_data": event_data,
            "trigger_id": None,
        }
        with self._open("/gradio_api/queue/join", joined) as response:
            event_id = json.load(response)["event_id"]
        deadline = time.monotonic() + CALL_TIMEOUT_S  # the queue's heartbeats keep a stuck call's stream alive
        with self._open(f"/gradio_api/queue/data?session_hash={session}", timeout=CALL_TIMEOUT_S) as stream:
            for raw in stream:
                if time.monotonic() > deadline:
                    break
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    return message
        raise AssertionError(f"fn_index {fn_index}: no completion within {CALL_TIMEOUT_S} s")

    def _open(self, path: str, body: dict | None = None, timeout: float = 20, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        return self.opener.open(request, timeout=timeout)


# --- the Train form, as the browser fills it ------------------------------------------------------------


def field(page, name):
    """The input of the config field ``name`` (its label starts with the name; help text follows)."""
    return page.get_by_label(re.compile(rf"^\s*{re.escape(name)}\b")).first


def pick(page, dropdown, option):
    dropdown.click()
    page.get_by_role("option", name=option).first.click()


TINY_FORM = {
    "validation_size": "16",
    "max_length": "128",
    "batch_size": "16",
    "gradient_accumulation": "1",
    "learning_rate": "0.003",
    "warmup_steps": "0",
    "logging_steps": "2",
    "save_steps": "100",
    "prediction_samples": "8",
    "eval_batch_size": "16",
}
"""The Train form's fields for a seconds-long tiny run, as typed (with ``choose_tiny_model``)."""


def run_row(page, run_id: str):
    """The Train tab's table row of ``run_id``, as shown. Not ``tr``: Gradio's table draws its rows as
    ``div[role=row]``, and its one ``tbody tr`` is a hidden sizing row holding each column's widest value
    (the longest run id beside another run's status)."""
    return page.locator("#train-runs").get_by_role("row").filter(has_text=run_id)


def type_data(page, value: str, tries: int = 5) -> None:
    """Type ``value`` into the form's data dropdown. Focusing it refreshes its choices, and a refresh that lands
    mid-typing clears the typed text: so type, press Enter, and wait until the dropdown holds the value, again
    until it does. A snapshot's path that is among the choices by then shows as its choice's label."""
    data = field(page, "data")
    shown = re.compile(rf"^(?:{re.escape(value)}|snapshot {re.escape(Path(value).name)} \(\d+ rows, .*)$")
    data.click()
    for _ in range(tries - 1):
        data.fill(value)
        data.press("Enter")
        try:
            expect(data).to_have_value(shown, timeout=1500)
            return
        except AssertionError:
            continue
    data.fill(value)
    data.press("Enter")
    expect(data).to_have_value(shown)


def choose_tiny_model(page):
    """The tiny preset with the offline tokenizer, no tracker: the form opens on this machine's recipe
    (SmolLM2, wandb), and the tests want a seconds-long run."""
    model = field(page, "model")
    model.fill("tiny")
    model.press("Enter")
    expect(model).to_have_value("tiny")
    pick(page, field(page, "tracker"), re.compile(r"^none$"))
    field(page, "tokenizer").fill(str(TOKENIZER_DIR))
    field(page, "modules_to_save").fill("embed_tokens, lm_head")
    field(page, "gradient_checkpointing").uncheck()

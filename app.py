"""Injection Studio: curate the labels, fine-tune a detector, try it live. ``python app.py --help``."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
from pathlib import Path

from ft.machine import thread_environment

# Before torch loads (OpenMP reads its settings once): the app and the runs it starts share the cores.
os.environ.update(thread_environment())

import gradio as gr
from starlette.middleware import Middleware

from access.hub_login import HubUsers
from access.login_guard import ADDRESS_FAILURE_LIMIT, FAILURE_WINDOW_S, NAME_FAILURE_LIMIT, LoginGuard
from access.origin import SameOriginOnly, allowed_host_names
from access.users import Users
from curation import sources
from curation.demo import demo_only, load_demo_if_empty
from curation.store import LabelStore
from ft.paths import SHARED
from runner.queue import JobManager
from serving.service import DetectorService
from ui import api, curate, detect, train
from ui.context import Studio
from ui.endpoints import PRIVATE, GuardedBlocks, check_endpoints

SPACE_DATA_DIR = Path("/data")
OFFLINE_SHARED = SHARED
"""The offline data and tokenizer beside the repository on build machines: allowed by default when present."""
ON_SPACE = bool(os.environ.get("SPACE_ID"))
ROLES_LINE = "reviewers label and query, leads also adjudicate, admins also import and run."
LOCKOUT_MESSAGE = (
    f"After {NAME_FAILURE_LIMIT} wrong passwords for a name, or {ADDRESS_FAILURE_LIMIT} from one "
    f"address, within {FAILURE_WINDOW_S / 60:.0f} minutes, sign-in is refused until those minutes "
    "have passed, the right password too."
)
"""Shown on the sign-in page: Gradio's form says nothing when a locked-out attempt is refused (HTTP 429)."""
SPACE_EMBEDDER = ("https://huggingface.co",)
"""The site that shows a Space's page in a frame: the one other site allowed to frame this app."""
CACHE_SWEEP = (3600, 24 * 3600)
"""Every hour, Gradio deletes the uploads and downloads it cached more than a day ago."""


def default_data_dir() -> Path:
    """/data where it exists (a Hugging Face Space's persistent storage), else ./studio_data."""
    return SPACE_DATA_DIR if SPACE_DATA_DIR.is_dir() else Path("studio_data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the label database, snapshots and runs live (default: /data if it exists, else ./studio_data)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="import this dataset at start (Hub id, folder of <split>.parquet files, a folder of sources such as "
        "../shared/data/train-pool (each file a source; rows without a split go to train), or a "
        "parquet/CSV/JSONL file); texts already stored are skipped",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address to listen on (default 127.0.0.1; 0.0.0.0 on a Space). Any address other "
        "than loopback needs login (--auth or STUDIO_USERS) or --public-without-auth",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument(
        "--auth",
        type=Path,
        default=None,
        help="users file: 'name:hash[:role]' lines (hash from 'python -m access.users', role "
        "reviewer or admin); the STUDIO_USERS environment variable works the same",
    )
    parser.add_argument(
        "--public-without-auth",
        action="store_true",
        default=os.environ.get("STUDIO_ALLOW_PUBLIC") == "1",
        help="allow a non-loopback address with no login (anyone who reaches it is an admin)",
    )
    parser.add_argument(
        "--allow-path",
        type=Path,
        action="append",
        default=[],
        help="a folder typed paths may point into, besides the data directory (repeatable; "
        "../shared beside the repository is allowed when present)",
    )
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest file a page may upload")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="without sign-in on loopback, a host name the page may be reached at besides "
        "localhost, 127.0.0.1 and [::1] (repeatable); other names are refused, so a web "
        "page whose name re-resolves to this machine (DNS rebinding) cannot use the app",
    )
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir or default_data_dir()
    args.host = args.host or ("0.0.0.0" if ON_SPACE else "127.0.0.1")
    return args


def load_users(auth_file: Path | None) -> Users | HubUsers | None:
    """Who may sign in: --auth FILE, else STUDIO_USERS, else STUDIO_HF_USERS (Hugging Face), else None."""
    passwords = Users.from_file(auth_file) if auth_file else Users.from_environment()
    hub_accounts = HubUsers.from_environment()
    if passwords and hub_accounts:
        raise ValueError(
            "two ways to sign in were given: use password users (--auth or STUDIO_USERS) or "
            "Hugging Face accounts (STUDIO_HF_USERS), not both"
        )
    return passwords or hub_accounts


def origin_guard(host: str, users: Users | HubUsers | None, allowed_hosts: list[str]) -> Middleware:
    """Cross-site calls and framing refused in every mode; without sign-in on loopback, where every visitor
    is an admin, also any request naming a host other than this machine's (DNS rebinding)."""
    embedded_by = SPACE_EMBEDDER if ON_SPACE else ()
    if users is None and is_loopback(host):
        return Middleware(SameOriginOnly, allowed_hosts=allowed_host_names(allowed_hosts), embedded_by=embedded_by)
    return Middleware(SameOriginOnly, embedded_by=embedded_by)


def access_options(users: Users | HubUsers | None, guard: Middleware) -> dict:
    """launch() arguments that put sign-in in front of the page and the API alike, and refuse cross-site calls."""
    app_kwargs = {"middleware": [guard, Middleware(LoginGuard)]}
    if isinstance(users, HubUsers):
        return {
            "auth_dependency": users.user_of,
            "app_kwargs": {**app_kwargs, "exception_handlers": {401: users.refused}},
        }
    if users is None:
        return {"auth": None, "app_kwargs": app_kwargs}
    return {"auth": users.authenticate, "auth_message": LOCKOUT_MESSAGE, "app_kwargs": app_kwargs}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, users: Users | HubUsers | None, public_without_auth: bool) -> None:
    """Refuse to listen beyond this machine with no login, unless that was asked for explicitly."""
    if users is None and not is_loopback(host) and not public_without_auth:
        raise ValueError(
            f"--host {host} without login would let anyone who reaches it in: give --auth FILE "
            "(or STUDIO_USERS), or say --public-without-auth"
        )


def allowed_roots(extra: list[Path], dataset: str | None) -> list[Path]:
    roots = [p.resolve() for p in extra]
    if OFFLINE_SHARED.is_dir():
        roots.append(OFFLINE_SHARED)
    if dataset and Path(dataset).exists():
        roots.append(Path(dataset).resolve())
    return roots


def compose_studio(data_dir: Path, store: LabelStore, runs_dir: Path | None = None, **context) -> Studio:
    """The studio over an open store, with this process's one job queue and one detector over ``runs_dir``
    (data_dir/runs unless given); ``context``: Studio's other fields. The scheduler is not started: serve()
    runs it while the page is served, and a test that wants it calls ``studio.jobs.start()`` and ``stop()``."""
    runs = Path(runs_dir) if runs_dir else Path(data_dir) / "runs"
    jobs = JobManager(runs)
    detector = DetectorService(runs, training_here=jobs.training_here)
    return Studio(data_dir=Path(data_dir), store=store, jobs=jobs, detector=detector, **context)


def open_studio(
    data_dir: Path,
    dataset: str | None = None,
    users: Users | HubUsers | None = None,
    roots: list[Path] | None = None,
    access_note: str = "",
) -> Studio:
    """Open (or create) the store; import ``dataset`` if given, else the demo dataset into an empty store."""
    store = LabelStore(data_dir)
    if dataset:
        result = store.import_examples(sources.load(dataset), actor="app")
        print(
            f"Imported {result.source}: {result.added} new, {result.already_present} already stored, "
            f"{result.duplicates} duplicate texts dropped",
            flush=True,
        )
    if load_demo_if_empty(store):
        print("No data yet: loaded the demo dataset", flush=True)
    return compose_studio(
        data_dir, store, demo=demo_only(store), users=users, allowed_roots=roots or [], access_note=access_note
    )


def access_note(host: str, users: Users | HubUsers | None) -> str:
    if isinstance(users, HubUsers):
        return f"Sign-in with Hugging Face is on for {len(users.names())} account(s): {ROLES_LINE}"
    if users is not None:
        return f"Sign-in is on for {len(users.names())} user(s): {ROLES_LINE}"
    if is_loopback(host):
        return f"No sign-in: listening on {host} only, for this machine's user."
    return f"No sign-in, listening on {host}: anyone who can reach this address can do everything."


def build_app(studio: Studio) -> gr.Blocks:
    """The page; every endpoint is checked against the role table (ui/endpoints.py) on every call."""
    with GuardedBlocks(studio.require, title="Injection Studio", delete_cache=CACHE_SWEEP) as app:
        gr.Markdown("# Injection Studio\nCurate the labels → fine-tune a detector → try it live → curate again.")
        with gr.Row(equal_height=True):
            gr.Markdown(studio.access_note, elem_id="access-note")
            signed_in = gr.Markdown(elem_id="signed-in-as")
            if isinstance(studio.users, HubUsers):
                gr.LoginButton(logout_value="Sign out ({})", size="sm", scale=0)
            elif studio.users is not None:
                gr.Button("Sign out", link="logout", size="sm", scale=0)
        with gr.Tab("Curate"):
            curate.build(studio)
        with gr.Tab("Train"):
            train.build(studio)
        with gr.Tab("Detect"):
            detect.build(studio)
        api.register(studio)
        app.load(studio.signed_in_line, None, signed_in, api_name="signed_in_line", **PRIVATE)
    app.queue(default_concurrency_limit=8)
    check_endpoints(app)
    return app


def serve(app: gr.Blocks, studio: Studio, **launch_options) -> None:
    """Serve the page until the server stops (Ctrl+C; SIGTERM: ``stop_now_on_sigterm``), with the job
    scheduler running meanwhile; the scheduler is stopped on the way out (its lock released, so another
    app on this data directory takes over). Runs already started go on: they are processes of their own."""
    studio.jobs.start()
    try:
        app.launch(**launch_options)
    finally:
        studio.jobs.stop()


def stop_now_on_sigterm(studio: Studio) -> None:
    """On SIGTERM, stop the scheduler (its lock released for another app) and leave at once, as the default
    SIGTERM would: Gradio's graceful close and the interpreter's teardown take seconds, and there is nothing to
    save (votes are committed as they are cast; runs are processes of their own)."""

    def stop(signum, frame) -> None:
        studio.jobs.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        users = load_users(args.auth)
        check_binding(args.host, users, args.public_without_auth)
        guard = origin_guard(args.host, users, args.allowed_host)
        studio = open_studio(
            args.data_dir,
            args.dataset,
            users,
            allowed_roots(args.allow_path, args.dataset),
            access_note(args.host, users),
        )
    except (OSError, ValueError) as error:  # SourceError, UsersError, HubLoginError are ValueErrors
        sys.exit(f"Cannot start: {error}")
    print(studio.access_note, flush=True)
    stop_now_on_sigterm(studio)
    # run_history=False: Gradio would otherwise keep every call's inputs (dataset text, prompts) in the
    # browser's storage, or in a Hub bucket a user connects.
    serve(
        build_app(studio),
        studio,
        server_name=args.host,
        server_port=args.port,
        **access_options(users, guard),
        head=curate.KEYBOARD_HEAD,
        allowed_paths=[str(studio.store.snapshots_dir)],
        ssr_mode=False,
        run_history=False,
        max_file_size=int(args.max_upload_mb * 2**20),
    )


if __name__ == "__main__":
    main()

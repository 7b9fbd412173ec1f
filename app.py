"""Injection Studio: curate the labels, fine-tune a detector, try it live. ``python app.py --help``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gradio as gr

from curation import sources
from curation.demo import demo_only, load_demo_if_empty
from curation.store import LabelStore
from ui import curate, detect, train
from ui.context import Studio

SPACE_DATA_DIR = Path("/data")


def default_data_dir() -> Path:
    """/data where it exists (a Hugging Face Space's persistent storage), else ./studio_data."""
    return SPACE_DATA_DIR if SPACE_DATA_DIR.is_dir() else Path("studio_data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the label database, snapshots and runs live (default: /data if it exists, "
                             "else ./studio_data)")
    parser.add_argument("--dataset", default=None,
                        help="import this dataset at start (Hub id, folder of <split>.parquet files, or a "
                             "parquet/CSV/JSONL file); texts already stored are skipped")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for a team)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", type=Path, default=None,
                        help="file of 'user:password' lines; turns on login, and votes carry the login name")
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir or default_data_dir()
    return args


def read_auth(path: Path) -> list[tuple[str, str]]:
    """(user, password) pairs from 'user:password' lines; blank lines and '#' comments are skipped."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{path}, line {number}: expected 'user:password'")
        pairs.append((user.strip(), password))
    if not pairs:
        raise ValueError(f"{path}: no 'user:password' lines")
    return pairs


def open_studio(data_dir: Path, dataset: str | None = None) -> Studio:
    """Open (or create) the store; import ``dataset`` if given, else the demo dataset into an empty store."""
    store = LabelStore(data_dir)
    if dataset:
        result = store.import_examples(sources.load(dataset), actor="app")
        print(f"Imported {result.source}: {result.added} new, {result.already_present} already stored, "
              f"{result.duplicates} duplicate texts dropped", flush=True)
    if load_demo_if_empty(store):
        print("No data yet: loaded the demo dataset", flush=True)
    return Studio(data_dir=Path(data_dir), store=store, demo=demo_only(store))


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="Injection Studio") as app:
        gr.Markdown("# Injection Studio\nCurate the labels → fine-tune a detector → try it live → curate again.")
        with gr.Tab("Curate"):
            curate.build(studio)
        with gr.Tab("Train"):
            train.build(studio)
        with gr.Tab("Detect"):
            detect.build(studio)
    app.queue(default_concurrency_limit=8)
    return app


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        auth = read_auth(args.auth) if args.auth else None
        studio = open_studio(args.data_dir, args.dataset)
    except (OSError, ValueError) as error:  # SourceError is a ValueError: a bad --dataset or --auth file
        sys.exit(f"Cannot start: {error}")
    build_app(studio).launch(server_name=args.host, server_port=args.port, auth=auth, head=curate.KEYBOARD_HEAD,
                             allowed_paths=[str(studio.store.snapshots_dir)], ssr_mode=False)


if __name__ == "__main__":
    main()

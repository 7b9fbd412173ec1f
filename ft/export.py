"""Take a finished run's detector out of the app: an adapter zip, merged weights, a Hub model repo.

    python -m ft.export --run RUN --out DIR [--merged] [--push REPO_ID [--public]]

``RUN`` is a run id under ``--runs-dir`` (default ``runs``) or a run folder. Writes
``DIR/<run>-adapter.zip`` (the LoRA adapter, tokenizer, chat template, detector.json, model card),
and with ``--merged`` the folder ``DIR/<run>-merged/``: the adapter merged into the full-precision
base, loadable with plain ``AutoModelForCausalLM.from_pretrained``. A run trained on a 4-bit base
(QLoRA) is merged into the full-precision base too, and the output says so. ``--push`` uploads the
adapter (or, with ``--merged``, the merged model) to a Hub model repo, private unless ``--public``,
with ``HF_TOKEN`` from the environment: one commit that adds or replaces its files and deletes none.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from ft import models
from ft.config import TrainConfig
from ft.exported import DETECTOR_FILE, describe
from ft.lazy import lazy
from ft.model_card import model_card
from ft.run_dir import RunDir
from hub import commit_files, hub_token

peft = lazy("peft")

REWRITTEN = ("adapter_config.json", "README.md")
"""adapter/ files an export writes itself; every other file there (weights, tokenizer files, whatever the
tokenizer needs) is copied as it is."""


class ExportError(ValueError):
    """The run cannot be exported or pushed as asked; the message says why, in one line."""


def finished_run(run: RunDir) -> RunDir:
    """``run`` when it completed with an adapter, else ExportError."""
    if run.read_state().get("status") != "completed":
        raise ExportError(f"Run {run.run_id} has not completed: only a finished run can be exported.")
    if not (run.adapter / "adapter_model.safetensors").is_file():
        raise ExportError(f"Run {run.run_id} has no adapter/adapter_model.safetensors to export.")
    return run


def trained_quantisation(run: RunDir, config: TrainConfig) -> str:
    """How the run's base was loaded for training (4bit, 8bit or none): "auto" depends on the machine the run
    trained on, which the run recorded in its state; "auto" for a run from before that record."""
    if config.quantisation != "auto":
        return config.quantisation
    return run.read_state().get("base_quantisation", "auto")


def _write_description(run: RunDir, config: TrainConfig, tokenizer, folder: Path, kind: str, repo: str) -> dict:
    described = describe(config, tokenizer, kind, run.read_eval(), trained_quantisation(run, config))
    (folder / DETECTOR_FILE).write_text(json.dumps(described, indent=1), encoding="utf-8")
    (folder / "README.md").write_text(model_card(run, described, repo), encoding="utf-8")
    return described


def write_adapter_export(run: RunDir, folder: Path, repo: str | None = None) -> Path:
    """``folder`` filled with the run's adapter export; ``repo`` is the name the card's snippet loads from."""
    config = TrainConfig.from_yaml(run.config)
    folder.mkdir(parents=True, exist_ok=True)
    for path in run.adapter.iterdir():
        if path.is_file() and path.name not in REWRITTEN:
            shutil.copy2(path, folder / path.name)
    adapter_config = json.loads((run.adapter / "adapter_config.json").read_text(encoding="utf-8"))
    adapter_config["base_model_name_or_path"] = models.resolve_model_id(config.model)
    (folder / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2), encoding="utf-8")
    tokenizer = models.load_tokenizer(str(run.adapter))
    _write_description(run, config, tokenizer, folder, "adapter", repo or f"./{folder.name}")
    return folder


def write_merged_export(run: RunDir, folder: Path, repo: str | None = None) -> Path:
    """``folder`` filled with the adapter merged into the full-precision base (safetensors), the tokenizer,
    detector.json and the card. ExportError when the base model cannot be loaded here (offline)."""
    config = TrainConfig.from_yaml(run.config)
    tokenizer = models.load_tokenizer(str(run.adapter))
    try:
        base = models.load_base(config.model, tokenizer, quantisation="none")
    except OSError as exc:
        raise ExportError(
            f"The base model {models.resolve_model_id(config.model)} is not available here "
            f"({str(exc).splitlines()[0][:200]}); merging needs its full weights: export the "
            "adapter, or merge where the Hub or a local copy is reachable."
        ) from None
    merged = peft.PeftModel.from_pretrained(base, str(run.adapter)).merge_and_unload()
    folder.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _write_description(run, config, tokenizer, folder, "merged", repo or f"./{folder.name}")
    return folder


def zip_folder(folder: Path, target: Path) -> Path:
    """``folder``'s files in the zip ``target`` (written beside, then renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".tmp{os.getpid()}")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    partial.replace(target)
    return target


def export_adapter_zip(run: RunDir, out: Path) -> Path:
    """``out/<run>-adapter.zip``."""
    finished_run(run)
    with tempfile.TemporaryDirectory(prefix="export-") as staging:
        folder = write_adapter_export(run, Path(staging) / f"{run.run_id}-adapter")
        return zip_folder(folder, out / f"{run.run_id}-adapter.zip")


def export_merged(run: RunDir, out: Path) -> Path:
    """``out/<run>-merged/``, written under a temporary name and renamed into place."""
    finished_run(run)
    target = out / f"{run.run_id}-merged"
    staging = out / f".tmp-{run.run_id}-merged-{os.getpid()}"
    try:
        write_merged_export(run, staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def merge_note(run: RunDir) -> str:
    """What the merged export is, in one line (it says when the run trained on a quantised base)."""
    trained = trained_quantisation(run, TrainConfig.from_yaml(run.config))
    if trained in ("4bit", "8bit"):
        return (
            f"Run {run.run_id} trained on a {trained} base (QLoRA): the adapter was merged into the "
            "full-precision base, so its scores can differ slightly from the run's."
        )
    return f"Run {run.run_id}: the adapter was merged into the base model."


def push(run: RunDir, repo_id: str, merged: bool = False, private: bool = True, token: str | None = None) -> str:
    """Upload the run's adapter (or merged model) with its model card to the Hub model repo ``repo_id`` in one
    commit that adds or replaces its files and deletes nothing; the repo's URL. PermissionError without a token
    (argument or HF_TOKEN), before anything is built or sent."""
    token = hub_token(token, "push detectors to the Hub")
    finished_run(run)
    with tempfile.TemporaryDirectory(prefix="push-") as staging:
        write = write_merged_export if merged else write_adapter_export
        folder = write(run, Path(staging) / "export", repo=repo_id)
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        kind = "merged model" if merged else "adapter"
        return commit_files(repo_id, "model", files, f"Detector {kind} from run {run.run_id}", token, private)


def find_run(ref: str, runs_dir: str | Path) -> RunDir:
    """A run folder given as a path, or as a run id under ``runs_dir``."""
    path = Path(ref)
    run = RunDir(path if path.is_dir() else Path(runs_dir) / ref)
    if not run.config.is_file():
        raise ExportError(f"No run {ref!r}: not a run folder, nor a run id under {runs_dir}.")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ft.export", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run id under --runs-dir, or a run folder")
    parser.add_argument("--runs-dir", default="runs", help="where run ids are looked up (default: runs)")
    parser.add_argument("--out", type=Path, required=True, help="folder the zip and the merged folder go to")
    parser.add_argument("--merged", action="store_true", help="also write the merged model (and push it)")
    parser.add_argument("--push", metavar="REPO_ID", help="push to this Hub model repo (HF_TOKEN)")
    parser.add_argument("--public", action="store_true", help="make a new Hub repo public (default private)")
    args = parser.parse_args(argv)
    try:
        run = find_run(args.run, args.runs_dir)
        print(export_adapter_zip(run, args.out))
        if args.merged:
            print(export_merged(run, args.out))
            print(merge_note(run))
        if args.push:
            print(push(run, args.push, merged=args.merged, private=not args.public))
    except (ExportError, PermissionError, OSError, ValueError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

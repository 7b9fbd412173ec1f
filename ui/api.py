"""The app as an API for scripts: list, start, cancel and resume runs, read a run's metrics, vote on an example
by its id, import a dataset or a folder of sources, create a snapshot with a mix. The page's events serve the
page (a form's fields by position, "the shown example"); these take what a script has. Registered with
``gr.api``: each handler's typed signature names the API's parameters and its docstring describes the endpoint
in ``Client.view_api()``.

Every call passes the role check of ui/endpoints.py like any event (run control needs an admin; a vote with
``adjudicate`` a lead, as on the page). Thin: the queue and the config checks are runner/'s, the votes the label
store's (imports and snapshots too), the typed paths are checked by Studio as for the Train form.
"""

from __future__ import annotations

import gradio as gr

from access.roles import ADJUDICATE
from curation.labels import BENIGN, INJECTION, UNSURE, label_name
from curation.mix import MixOptions
from curation.sources import SourceError, load
from ft.config import ConfigError
from runner.forms import config_from_fields, config_values
from runner.queue import JobError
from runner.views import run_report, run_summary
from ui.context import Studio
from ui.curate.common import reviewer_name


def refused(message: object) -> gr.Error:
    """An error for a script, as plain text: these endpoints have no page event, so no page renders their
    errors as HTML (page_error escapes for the page; ``learning_rate must be > 0`` would read ``&gt;``)."""
    return gr.Error(str(message), print_exception=False)


LABELS = {label_name(label): label for label in (INJECTION, BENIGN, UNSURE)}
"""A vote's label by the name a script gives: injection, benign or unsure."""


def register(studio: Studio) -> None:
    """Add the script endpoints to the Blocks being built; call inside ``with GuardedBlocks(...)``."""
    jobs = studio.jobs

    def on_run(action, run_id: str):
        """``action(run_id)``; a run id that names no run, or an action its state refuses, is the error."""
        try:
            return action(run_id)
        except JobError as error:
            raise refused(error) from None

    def list_runs() -> list[dict]:
        """Every run and label audit, newest first: run_id, name, kind (train or audit), status, queue_position,
        step, total_steps, model, data, started and finished (ISO 8601), best_val_f1 and best_val_step (the best
        validation prediction table), test (eval.json's before/after test metrics; null until completed)."""
        return [run_summary(info) for info in jobs.runs()]

    def start_run(config: str | dict) -> str:
        """Queue a training run; returns its run_id. config: YAML text (a config file's content) or a dict of
        TrainConfig fields (ft/config.py documents each; unset ones take their defaults). The runs folder is the
        app's whatever runs_dir says. Checked as the Train form's Start checks it (typed paths inside the
        allowed folders, every value, missing files, no secrets): an unusable config is refused with the
        reason and nothing is queued."""
        try:
            return jobs.submit(config_from_fields(studio.checked_config_paths(config_values(config)), jobs.runs_dir))
        except ConfigError as error:
            raise refused(f"Refused: {error}") from None

    def cancel_run(run_id: str) -> str:
        """Cancel a run: a queued one leaves the queue, a running one saves a checkpoint and stops (asked again
        later, it is killed). Returns what was done; a finished run is an error."""
        return on_run(jobs.cancel, run_id)

    def resume_run(run_id: str) -> str:
        """Queue a cancelled or failed run again under its id, to continue from its last checkpoint."""
        return on_run(jobs.resume, run_id)

    def run_metrics(run_id: str) -> dict:
        """One run in full: what list_runs gives for it, plus state (state.json as the run wrote it), metrics
        (every metrics.jsonl record: kind "log" for the Trainer's loss and learning rate, "predictions" for a
        validation prediction table's metrics) and evals (evaluations on other datasets by name)."""
        return run_report(on_run(jobs.get, run_id))

    def vote_example(
        example_id: int,
        label: str,
        note: str = "",
        adjudicate: bool = False,
        reviewer: str = "",
        request: gr.Request = None,
    ) -> dict:
        """Vote on an example by its id (Browse and /browse show ids): label injection, benign or unsure, an
        optional note. The vote is the signed-in user's; without sign-in, give reviewer (the name the page's
        Reviewer box takes). adjudicate=True decides the label over the majority and needs a lead. Returns
        the vote and the example's label after it."""
        if not isinstance(example_id, int) or isinstance(example_id, bool):
            raise refused(f"example_id must be a whole number, got {example_id!r}")
        if label not in LABELS:
            raise refused(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        name = reviewer_name(request, reviewer)
        if not name:
            raise refused("Name the reviewer: without sign-in, a vote is recorded under the reviewer given.")
        if adjudicate:
            studio.require(request, ADJUDICATE)
        try:
            vote = studio.store.cast_vote(example_id, name, LABELS[label], note or "", adjudicate)
        except (ValueError, KeyError) as error:  # KeyError: no such example
            raise refused(error.args[0] if error.args else error) from None
        example = studio.store.example(example_id)
        return {
            "vote_id": vote.id,
            "example_id": example_id,
            "reviewer": vote.reviewer,
            "label": label,
            "note": vote.note,
            "adjudication": vote.adjudication,
            "current_label": label_name(example.current_label),
            "votes": example.n_votes,
            "reviewers": example.n_reviewers,
            "disagree": example.disagree,
        }

    def import_dataset(
        ref: str, text_column: str = "text", label_column: str = "label", request: gr.Request = None
    ) -> dict:
        """Import a dataset in one transaction: a Hub id, a file, a folder of <split>.parquet files, or a folder of
        sources (any other folder: each file one source named after it, a source column kept per row, rows
        without a split column in train). Labels are mapped as the page proposes (0/1, benign/injection, ...);
        an unknown label, a missing column or a bad row refuses the whole import and writes nothing. Paths must
        lie in the allowed folders. Returns source, added, already_present, duplicates and added_by_source."""
        if not isinstance(ref, str) or not ref.strip():
            raise refused("Give a Hub dataset id, or a path to a file or folder.")
        try:
            prepared = load(
                studio.checked_reference(ref), text_column=text_column or "text", label_column=label_column or "label"
            )
        except SourceError as error:
            raise refused(f"Nothing was imported:\n{error}") from None
        done = studio.store.import_examples(prepared, actor=reviewer_name(request, "") or "api")
        return {
            "source": done.source,
            "added": done.added,
            "already_present": done.already_present,
            "duplicates": done.duplicates,
            "added_by_source": done.added_by_source,
        }

    def create_snapshot(
        test_share: float = 0.0,
        cap_per_source: int | None = None,
        weights: dict | None = None,
        balance_labels: bool = False,
        unseen_sources: list[str] | None = None,
        request: gr.Request = None,
    ) -> dict:
        """Freeze the current labels as a snapshot (runs name its folder as their data); returns id, folder and
        manifest.
        The mix (all optional; README, curation/mix.py): test_share carved from every source's train rows by
        text hash (sources with their own test split keep it), cap_per_source (train rows per top-level source),
        weights ({source: weight}), balance_labels (train), unseen_sources (held out whole, in unseen.parquet).
        A source name picks the sources under it too."""
        values = {
            "test_share": test_share,
            "cap_per_source": cap_per_source,
            "weights": weights,
            "balance_labels": balance_labels,
            "unseen_sources": unseen_sources,
        }
        try:
            made = studio.store.create_snapshot(reviewer_name(request, "") or "api", MixOptions.from_dict(values))
        except (ValueError, TypeError) as error:
            raise refused(f"Refused: {error}") from None
        # "folder", not "path": gradio_client takes any dict with a "path" string for a file to download.
        return {"id": made.id, "folder": str(made.path), "manifest": made.manifest}

    for handler in (
        list_runs,
        start_run,
        cancel_run,
        resume_run,
        run_metrics,
        vote_example,
        import_dataset,
        create_snapshot,
    ):
        gr.api(handler, api_name=handler.__name__)

"""The app driven by a script through gradio_client, as the README's "The app as an API" shows: a tiny run
started from YAML, listed, waited on until it completes, its metrics read; a queued run cancelled; a vote by
example id; a folder of sources imported and a mixed snapshot made; a bad config refused with its reason and
nothing queued; run control, imports, snapshots and adjudication kept to their roles; and no endpoint the API
lists with a parameter Gradio could only number."""

import re
import time

import pytest
import yaml
from gradio_client import Client
from gradio_client.exceptions import AppError
from helpers import POOL_DIR, TEAM

from curation.store import LabelStore

pytestmark = pytest.mark.browser

TINY_YAML = """\
run_name: script-api
model: tiny
tokenizer: ../shared/tokenizers/qwen2.5
data: ../shared/data/safe-guard
quantisation: none
modules_to_save: [embed_tokens, lm_head]
gradient_checkpointing: false
max_length: 128
max_train_rows: 96
max_test_rows: 32
validation_size: 16
prediction_samples: 8
batch_size: 8
max_steps: 4
learning_rate: 0.003
warmup_steps: 0
logging_steps: 2
save_steps: 4
eval_batch_size: 16
test_answers: first_token
tracker: none
"""
RUN_TIMEOUT_S = 300
NUMBERED = re.compile(r"^param_\d+$")


@pytest.fixture(scope="module")
def open_app(start_module_app):
    """No sign-in (loopback): the one local user is an admin."""
    return start_module_app()


@pytest.fixture(scope="module")
def client(open_app) -> Client:
    return Client(open_app.url, verbose=False)


def wait_for_status(client: Client, run_id: str, statuses: tuple[str, ...], timeout_s: float) -> dict:
    """/run_metrics polled until the run's status is one of ``statuses``: the README's way to wait."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = client.predict(run_id=run_id, api_name="/run_metrics")
        if report["status"] in statuses:
            return report
        assert time.monotonic() < deadline, f"{run_id} still {report['status']} after {timeout_s} s"
        time.sleep(1)


def run_ids(client: Client) -> list[str]:
    return [run["run_id"] for run in client.predict(api_name="/list_runs")]


def test_a_run_from_yaml_is_listed_completes_and_shows_its_metrics(client):
    run_id = client.predict(config=TINY_YAML, api_name="/start_run")
    queued_behind = client.predict(
        config={**yaml.safe_load(TINY_YAML), "run_name": "script-api-2"}, api_name="/start_run"
    )
    listed = {run["run_id"]: run for run in client.predict(api_name="/list_runs")}
    assert listed[run_id]["name"] == "script-api" and listed[run_id]["model"] == "tiny"
    assert listed[run_id]["kind"] == "train" and listed[run_id]["status"] in ("queued", "running")
    assert listed[queued_behind]["status"] == "queued"

    assert "removed from the queue" in client.predict(run_id=queued_behind, api_name="/cancel_run")
    assert client.predict(run_id=queued_behind, api_name="/run_metrics")["status"] == "cancelled"

    report = wait_for_status(client, run_id, ("completed", "failed", "cancelled"), RUN_TIMEOUT_S)
    assert report["status"] == "completed", report["state"].get("error")
    assert report["step"] == report["total_steps"] == 4
    assert report["started"] and report["finished"]
    losses = [m["loss"] for m in report["metrics"] if m.get("kind") == "log" and "loss" in m]
    assert losses, "no loss was logged"
    tables = [m for m in report["metrics"] if m.get("kind") == "predictions"]
    assert {t["step"] for t in tables} >= {0, 4}
    assert report["best_val_f1"] == max(t["f1"] for t in tables)
    assert report["test"]["after"]["n"] == 32 and 0 <= report["test"]["after"]["accuracy"] <= 1
    assert report["evals"] == {}
    summary = next(run for run in client.predict(api_name="/list_runs") if run["run_id"] == run_id)
    assert summary["status"] == "completed" and summary["test"] == report["test"]
    with pytest.raises(AppError, match="nothing to cancel"):
        client.predict(run_id=run_id, api_name="/cancel_run")


def test_a_vote_by_example_id_is_in_the_store(client, open_app):
    table, _shown = client.predict(search="ignore", api_name="/browse")
    example_id = int(table["data"][0][table["headers"].index("id")])
    vote = client.predict(
        example_id=example_id, label="injection", note="from a script", reviewer="scripter", api_name="/vote_example"
    )
    assert vote["reviewer"] == "scripter" and vote["label"] == "injection" and vote["current_label"] == "injection"
    store = LabelStore(open_app.data_dir)
    try:
        votes = [(v.reviewer, v.label, v.note) for v in store.votes(example_id)]
    finally:
        store.close()
    assert votes == [("scripter", 1, "from a script")]
    with pytest.raises(AppError, match="label must be one of injection, benign, unsure"):
        client.predict(example_id=example_id, label="yes", reviewer="scripter", api_name="/vote_example")
    with pytest.raises(AppError, match="Name the reviewer"):
        client.predict(example_id=example_id, label="benign", api_name="/vote_example")
    with pytest.raises(AppError, match="no example 999999"):
        client.predict(example_id=999_999, label="benign", reviewer="scripter", api_name="/vote_example")


def test_a_folder_of_sources_is_imported_and_frozen_as_a_mix(client, open_app):
    done = client.predict(ref=str(POOL_DIR), api_name="/import_dataset")
    assert (done["source"], done["added"], len(done["added_by_source"])) == ("train-pool", 15_122, 117)
    assert client.predict(ref=str(POOL_DIR), api_name="/import_dataset")["added"] == 0
    snapshot = client.predict(
        test_share=0.2, cap_per_source=500, unseen_sources=["indirect-constructed"], api_name="/create_snapshot"
    )
    manifest = snapshot["manifest"]
    assert set(manifest["splits"]) == {"train", "test", "unseen"}
    assert manifest["splits"]["unseen"]["rows"] == 1438 and manifest["mix"]["cap_per_source"] == 500
    assert manifest["sources"]["banking77"]["train"]["rows"] <= 500 and snapshot["folder"].endswith(snapshot["id"])
    with pytest.raises(AppError, match="no source named 'nowhere'"):
        client.predict(unseen_sources=["nowhere"], api_name="/create_snapshot")
    with pytest.raises(AppError, match="Nothing was imported"):
        client.predict(
            ref=str(open_app.data_dir / "snapshots" / snapshot["id"] / "manifest.json"), api_name="/import_dataset"
        )


@pytest.mark.parametrize(
    "config, reason",
    [
        ("model: tiny\nbatch_size: [8", "not valid YAML"),
        ("model: tiny\nlerning_rate: 0.1\n", "unknown config key(s): lerning_rate"),
        ({"model": "tiny", "learning_rate": 0}, "learning_rate must be > 0"),
        ({"model": "tiny", "tracker": "tensorboard"}, "tracker must be one of"),
        ({"model": "tiny", "data": "/etc"}, "outside the allowed folders"),
        ("- just\n- a list\n", "a config is a mapping"),
    ],
)
def test_an_unusable_config_is_refused_with_its_reason_and_nothing_is_queued(client, open_app, config, reason):
    before = run_ids(client)
    with pytest.raises(AppError, match=re.escape(reason)):
        client.predict(config=config, api_name="/start_run")
    assert run_ids(client) == before
    assert sorted(p.name for p in (open_app.data_dir / "runs").iterdir() if p.is_dir()) == sorted(before)


def test_the_api_lists_no_numbered_parameter(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {
        "/list_runs",
        "/start_run",
        "/cancel_run",
        "/resume_run",
        "/run_metrics",
        "/vote_example",
        "/import_dataset",
        "/create_snapshot",
        "/detect",
    } <= set(endpoints)
    assert "/start" not in endpoints, "the page's form, field by field, is not an API"
    numbered = {
        name: [p["parameter_name"] for p in endpoint["parameters"] if NUMBERED.match(p["parameter_name"] or "")]
        for name, endpoint in endpoints.items()
    }
    assert {name: params for name, params in numbered.items() if params} == {}


def test_run_control_needs_an_admin_and_adjudication_a_lead(team_app):
    reviewer = Client(team_app.url, auth=("rev", TEAM["rev"][0]), verbose=False)
    for name, arguments in (
        ("/start_run", {"config": TINY_YAML}),
        ("/cancel_run", {"run_id": "some-run"}),
        ("/resume_run", {"run_id": "some-run"}),
        ("/import_dataset", {"ref": str(POOL_DIR)}),
        ("/create_snapshot", {}),
    ):
        with pytest.raises(AppError, match="Only an admin can"):
            reviewer.predict(**arguments, api_name=name)
    assert reviewer.predict(api_name="/list_runs") == []

    vote = reviewer.predict(example_id=1, label="benign", reviewer="mallory", api_name="/vote_example")
    assert vote["reviewer"] == "rev", "with sign-in, a vote is the signed-in user's whatever name is given"
    with pytest.raises(AppError, match="Only a lead can adjudicate"):
        reviewer.predict(example_id=1, label="injection", adjudicate=True, api_name="/vote_example")
    lead = Client(team_app.url, auth=("lee", TEAM["lee"][0]), verbose=False)
    decided = lead.predict(example_id=1, label="injection", adjudicate=True, api_name="/vote_example")
    assert decided["adjudication"] and decided["current_label"] == "injection"

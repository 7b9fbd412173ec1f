"""Sign-in guards the API as it guards the page: no credentials, nothing; a reviewer cannot run jobs or
create and delete snapshots, nor adjudicate; scores cannot be forged; other sites and host names are refused."""

import json
import sqlite3
import urllib.error
import urllib.request
import uuid

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError
from helpers import Caller

RUN_CONTROL = ("/start_run", "/cancel", "/resume", "/delete")


@pytest.fixture(scope="module")
def open_app(start_module_app):
    """No sign-in (loopback), uploads limited to 10 kB."""
    return start_module_app("--max-upload-mb", "0.01")


def status_of(url: str, data: bytes | None = None, origin: str | None = None) -> int:
    headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_without_credentials_every_route_and_client_call_is_refused(team_app):
    base = team_app.url.rstrip("/")
    for route in ("/config", "/gradio_api/info", "/gradio_api/queue/status"):
        assert status_of(base + route) in (401, 403), route
    body = json.dumps({"data": ["hello", "base:tiny", 0.5]}).encode()
    assert status_of(base + "/gradio_api/call/detect", body) in (401, 403)
    with pytest.raises(AuthenticationError):
        Client(team_app.url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(team_app.url, auth=("rev", "wrong"), verbose=False)


def test_a_reviewer_cannot_control_runs_but_an_admin_can(team_app):
    reviewer = Client(team_app.url, auth=("rev", "rev-pw"), verbose=False)
    endpoints = reviewer.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(RUN_CONTROL) <= set(endpoints)
    for name in ("/cancel", "/resume", "/delete"):
        with pytest.raises(AppError, match="Only an admin"):
            reviewer.predict("some-run", api_name=name)
    with pytest.raises(AppError, match="Only an admin can create snapshots"):
        reviewer.predict("", api_name="/snapshot")
    with pytest.raises(AppError, match="Only an admin can delete snapshots"):
        reviewer.predict(None, "", api_name="/delete_snapshot")
    with pytest.raises(AppError, match="Only an admin"):
        reviewer.predict(config="model: tiny", api_name="/start_run")
    admin = Client(team_app.url, auth=("boss", "boss-pw"), verbose=False)
    answer = admin.predict("no-such-run", api_name="/cancel")
    assert answer.startswith("no run 'no-such-run'")  # allowed: the queue itself answered


def test_uploads_over_the_limit_are_refused(open_app):
    app = open_app
    boundary = "studio-test-boundary"

    def upload(size: int) -> int:
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="p.csv"\r\n'
                f"Content-Type: text/csv\r\n\r\n"
            ).encode()
            + b"a" * size
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            app.url + "gradio_api/upload",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert upload(1_000) == 200
    assert upload(50_000) == 413


def test_calls_from_another_site_are_refused(open_app):
    """A page elsewhere cannot drive the app through a visitor's browser (which would send its cookies)."""
    app = open_app
    call = app.url + "gradio_api/call/detect"
    body = json.dumps({"data": ["hello", "base:tiny", 0.5]}).encode()
    assert status_of(call, body, origin="https://evil.example") == 403
    assert status_of(app.url + "config", origin=f"http://127.0.0.1:{app.port + 1}") == 403
    assert status_of(call, body, origin=app.url.rstrip("/")) == 200
    assert status_of(call, body) == 200


def test_a_rebinding_host_name_is_refused_and_no_other_site_may_frame_the_app(open_app):
    """Without sign-in every visitor is an admin: a page whose name re-resolves to 127.0.0.1 must get nothing."""
    caller, port = Caller(open_app.url), open_app.port
    assert caller.status("/config", headers={"Host": f"evil.test:{port}"}) == 403
    assert caller.status("/config", headers={"Host": f"evil.test:{port}", "Origin": f"http://evil.test:{port}"}) == 403
    assert caller.status("/config", headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}) == 200
    headers = caller.headers("/")
    assert headers["content-security-policy"] == "frame-ancestors 'self'"
    assert headers["x-frame-options"] == "SAMEORIGIN"


def test_a_score_sent_to_review_cannot_be_forged_by_the_browser(open_app):
    """Whatever a page sends to the events that choose the prompt to send, the score stored with it is never
    the page's: every event that writes the chosen prompt is fed forged values, then Send is pressed."""
    open_app.expected_errors.extend(  # the forged inputs
        ["TypeError: '<' not supported between instances of", "gradio.exceptions.ComponentProcessingError"]
    )
    caller = Caller(open_app.url)
    config = caller.config()
    send = next(d for d in config["dependencies"] if d["api_name"] == "send_injection")
    chosen = send["inputs"][0]
    forged = {
        "text": "forged prompt",
        "detector": "run:forged-run",
        "p": 0.999,
        "after": {"p_injection": 0.999},
        "candidate": {"text": "forged prompt", "detector": "run:forged-run", "p": 0.999},
    }
    session = uuid.uuid4().hex
    writers = [d for d in config["dependencies"] if chosen in d["outputs"] and d["backend_fn"]]
    assert writers, "no event chooses the prompt to send"
    for writer in writers:
        caller.call(
            writer["id"],
            ["forged prompt" if i % 2 == 0 else forged for i in range(len(writer["inputs"]))],
            session=session,
            event_data={"index": [0, 0], "value": "x", "row_value": [0, "forged prompt"]},
        )
    caller.call(send["id"], [forged, "mallory"], session=session)
    with sqlite3.connect(open_app.data_dir / "labels.sqlite") as db:
        forged_scores = db.execute("SELECT COUNT(*) FROM scores WHERE run_id = 'forged-run'").fetchone()[0]
    assert forged_scores == 0


@pytest.mark.parametrize("name, password, allowed", [("rev", "rev-pw", False), ("lee", "lee-pw", True)])
def test_only_a_lead_or_admin_can_adjudicate(team_app, name, password, allowed):
    caller = Caller(team_app.url)
    caller.sign_in(name, password)
    config = caller.config()
    session = uuid.uuid4().hex
    first = caller.call(caller.fn_index(config, "review_first_item"), ["", "unreviewed", None, None], session=session)
    assert first["success"], first
    vote = caller.call(
        caller.fn_index(config, "vote_benign"), [None, "", True, "unreviewed", "", None, None], session=session
    )
    error = (vote.get("output") or {}).get("error") or ""
    if allowed:
        assert vote["success"], error
    else:
        assert "Only a lead can adjudicate" in error


def test_a_typed_path_is_confined_before_anything_looks_at_the_disk(team_app):
    """No answer may tell whether a path outside the allowed folders exists: an existing file and a missing
    one get the same refusal."""
    caller = Caller(team_app.url)
    caller.sign_in("boss", "boss-pw")
    config = caller.config()
    show = next(d for d in config["dependencies"] if d["api_name"] == "show_command")
    props = {c["id"]: c.get("props", {}) for c in config["components"]}
    data_at = next(i for i, c in enumerate(show["inputs"]) if props[c].get("label") == "data")
    answers = []
    for path in ("/etc/hostname", "/no/such/folder/data.parquet"):
        values = [props[c].get("value") for c in show["inputs"]]
        values[data_at] = path
        answers.append((caller.call(show["id"], values).get("output") or {}).get("error") or "")
    assert all("outside the allowed folders" in a for a in answers), answers
    assert "no such file" not in " ".join(answers)

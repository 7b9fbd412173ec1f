"""Sign-in guards the API as it guards the page: no credentials, nothing; a reviewer cannot run jobs or
create and delete snapshots."""
import json
import urllib.error
import urllib.request

import pytest
from gradio_client import Client

from access.users import hash_password

RUN_CONTROL = ("/start", "/cancel", "/resume", "/delete")


@pytest.fixture(scope="module")
def signed_in_app(start_module_app, tmp_path_factory):
    users = tmp_path_factory.mktemp("users") / "users.txt"
    users.write_text(f"boss:{hash_password('boss-pw')}:admin\nrev:{hash_password('rev-pw')}\n", encoding="utf-8")
    return start_module_app("--auth", str(users))


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


def test_without_credentials_every_route_and_client_call_is_refused(signed_in_app):
    base = signed_in_app.url.rstrip("/")
    for route in ("/config", "/gradio_api/info", "/gradio_api/queue/status"):
        assert status_of(base + route) in (401, 403), route
    body = json.dumps({"data": ["hello", "base:tiny", 0.5]}).encode()
    assert status_of(base + "/gradio_api/call/detect", body) in (401, 403)
    with pytest.raises(Exception):
        Client(signed_in_app.url, verbose=False)
    with pytest.raises(Exception):
        Client(signed_in_app.url, auth=("rev", "wrong"), verbose=False)


def test_a_reviewer_cannot_control_runs_but_an_admin_can(signed_in_app):
    reviewer = Client(signed_in_app.url, auth=("rev", "rev-pw"), verbose=False)
    endpoints = reviewer.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(RUN_CONTROL) <= set(endpoints)
    for name in ("/cancel", "/resume", "/delete"):
        with pytest.raises(Exception, match="Only an admin"):
            reviewer.predict("some-run", api_name=name)
    with pytest.raises(Exception, match="Only an admin can create snapshots"):
        reviewer.predict("", api_name="/snapshot")
    with pytest.raises(Exception, match="Only an admin can delete snapshots"):
        reviewer.predict(None, "", api_name="/delete_snapshot")
    start_args = [p.get("example_input") for p in endpoints["/start"]["parameters"]]
    with pytest.raises(Exception, match="Only an admin"):
        reviewer.predict(*start_args, api_name="/start")
    admin = Client(signed_in_app.url, auth=("boss", "boss-pw"), verbose=False)
    answer = admin.predict("no-such-run", api_name="/cancel")
    assert "Only an admin" not in str(answer)


def test_uploads_over_the_limit_are_refused(open_app):
    app = open_app
    boundary = "studio-test-boundary"

    def upload(size: int) -> int:
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"p.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\n").encode() + b"a" * size + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(app.url + "gradio_api/upload", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
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

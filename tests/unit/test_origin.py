"""SameOriginOnly: cross-site requests, DNS rebinding (Host names) and framing by other sites."""

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from access.origin import LOOPBACK_HOST_NAMES, SameOriginOnly, allowed_host_names

PORT = 7860


async def page(request):
    return PlainTextResponse("the studio")


async def framed_elsewhere(request):
    return PlainTextResponse("sets its own", headers={"X-Frame-Options": "DENY"})


async def echo(websocket):
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def client(**options) -> TestClient:
    """A client of a small app behind SameOriginOnly(**options)."""
    app = Starlette(
        routes=[Route("/", page), Route("/own-policy", framed_elsewhere), WebSocketRoute("/ws", echo)],
        middleware=[Middleware(SameOriginOnly, **options)],
    )
    return TestClient(app)


@pytest.fixture
def loopback():
    """The app as served on loopback without sign-in: only loopback host names."""
    return client(allowed_hosts=allowed_host_names([]))


def get(client, host, origin=None, **headers):
    headers = {"host": host, **({"origin": origin} if origin else {}), **headers}
    return client.get("/", headers=headers)


def test_a_rebinding_page_is_refused_even_from_its_own_origin(loopback):
    refused = get(loopback, f"evil.test:{PORT}", f"http://evil.test:{PORT}")
    assert refused.status_code == 403
    assert refused.text.startswith("Refused: unknown host name")
    assert get(loopback, f"evil.test:{PORT}").status_code == 403  # the page load itself carries no Origin
    assert get(loopback, f"EVIL.test:{PORT}").status_code == 403
    assert get(loopback, "").status_code == 403


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}", "LocalHost", "127.0.0.1"])
def test_loopback_host_names_pass(loopback, host):
    assert get(loopback, host).status_code == 200
    assert get(loopback, host, f"http://{host}").status_code == 200


def test_another_origin_is_still_refused_on_a_loopback_host(loopback):
    refused = get(loopback, f"127.0.0.1:{PORT}", f"http://localhost:{PORT}")
    assert (refused.status_code, refused.text) == (403, "Refused: a request from another site.")


def test_forwarded_host_is_ignored_when_host_names_are_checked(loopback):
    rebound = {"x-forwarded-host": f"evil.test:{PORT}"}
    assert get(loopback, f"127.0.0.1:{PORT}", f"http://evil.test:{PORT}", **rebound).status_code == 403
    assert get(loopback, f"evil.test:{PORT}", **{"x-forwarded-host": f"localhost:{PORT}"}).status_code == 403
    # without a host-name check (sign-in, or a public app behind a proxy) the proxy's header still counts
    behind_proxy = client()
    assert (
        get(
            behind_proxy,
            "10.0.0.5:7860",
            "https://team-studio.hf.space",
            **{"x-forwarded-host": "team-studio.hf.space"},
        ).status_code
        == 200
    )


def test_without_allowed_hosts_any_host_name_passes():
    assert get(client(), f"evil.test:{PORT}", f"http://evil.test:{PORT}").status_code == 200
    assert get(client(), f"evil.test:{PORT}", f"http://other.test:{PORT}").status_code == 403


def test_extra_allowed_host_names():
    lan = client(allowed_hosts=allowed_host_names(["Studio.LAN", "[fd00::5]"]))
    assert get(lan, f"studio.lan:{PORT}", f"http://studio.lan:{PORT}").status_code == 200
    assert get(lan, f"[fd00::5]:{PORT}").status_code == 200
    assert get(lan, f"localhost:{PORT}").status_code == 200
    assert get(lan, f"evil.test:{PORT}").status_code == 403


def test_allowed_host_names_are_normalised_and_checked():
    assert {"localhost", "127.0.0.1", "::1"} == LOOPBACK_HOST_NAMES
    assert allowed_host_names([]) == LOOPBACK_HOST_NAMES
    assert allowed_host_names([" Studio.LAN ", "[FD00::5]", "fd00::6", "10.0.0.5"]) == LOOPBACK_HOST_NAMES | {
        "studio.lan",
        "fd00::5",
        "fd00::6",
        "10.0.0.5",
    }
    for bad in ["studio.lan:7860", "http://studio.lan", "[::1]:7860", "studio.lan/", "", "user@studio.lan", "a:b"]:
        with pytest.raises(ValueError, match="not a host name"):
            allowed_host_names([bad])


def test_websockets_to_an_unknown_host_name_are_closed(loopback):
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        loopback.websocket_connect("/ws", headers={"host": f"evil.test:{PORT}", "origin": f"http://evil.test:{PORT}"}),
    ):
        pass
    assert closed.value.code == 1008
    with loopback.websocket_connect(
        "/ws", headers={"host": f"127.0.0.1:{PORT}", "origin": f"http://127.0.0.1:{PORT}"}
    ) as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "hello"


def test_only_the_app_itself_may_frame_it(loopback):
    for response in (get(loopback, f"127.0.0.1:{PORT}"), get(loopback, f"evil.test:{PORT}")):
        assert response.headers.get_list("content-security-policy") == ["frame-ancestors 'self'"]
        assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    public = get(client(), "studio.example.org")
    assert public.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert public.headers["x-frame-options"] == "SAMEORIGIN"


def test_on_a_space_huggingface_may_frame_it():
    response = get(client(embedded_by=("https://huggingface.co",)), "team-studio.hf.space")
    assert response.headers.get_list("content-security-policy") == ["frame-ancestors 'self' https://huggingface.co"]
    assert "x-frame-options" not in response.headers


def test_a_responses_own_frame_header_is_kept_not_duplicated(loopback):
    response = loopback.get("/own-policy", headers={"host": f"localhost:{PORT}"})
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert response.headers.get_list("content-security-policy") == ["frame-ancestors 'self'"]
    assert response.headers["content-type"].startswith("text/plain")

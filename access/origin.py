"""Refuse requests that a web page on another site makes from a signed-in user's browser.

Gradio's sign-in cookies are ``SameSite=None`` (a Space is shown in an iframe on huggingface.co) and its
CORS middleware allows any origin with credentials, so without this a page elsewhere could call the API
as whoever visits it. Browsers put an ``Origin`` header on such requests; this middleware answers 403
when that origin is not the address the app is being reached at (``Host``, or ``X-Forwarded-Host``
behind a proxy). Requests without ``Origin`` (gradio_client, curl, plain page loads) pass: they carry no
browser cookies unless their sender chose to.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(netloc: str, scheme: str = "") -> tuple[str, int | None]:
    """(host, port) of ``netloc``; ("", None) when it does not parse (a port that is not a number, say)."""
    try:
        parts = urlsplit(f"//{netloc.strip()}")
        return (parts.hostname or "", parts.port or DEFAULT_PORTS.get(scheme))
    except ValueError:
        return ("", None)


def same_origin(origin: str, hosts: list[str]) -> bool:
    """Whether ``origin`` (scheme://host[:port]) names one of ``hosts`` (host[:port] as the request gave it)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        return False
    wanted = _host_port(parts.netloc, parts.scheme)
    return bool(wanted[0]) and any(_host_port(h) in (wanted, (wanted[0], None)) for h in hosts if h)


class SameOriginOnly:
    """ASGI middleware: 403 for a request whose Origin is another site."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            hosts = [headers.get("host", ""), *headers.get("x-forwarded-host", "").split(",")]
            if origin is not None and not same_origin(origin, hosts):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = PlainTextResponse("Refused: a request from another site.", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

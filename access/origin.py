"""Refuse requests that a web page on another site makes from a visitor's browser, and framing by other sites.

Gradio's sign-in cookies are ``SameSite=None`` (a Space is shown in an iframe on huggingface.co) and its
CORS middleware allows any origin with credentials, so without this a page elsewhere could call the API
as whoever visits it. Browsers put an ``Origin`` header on such requests; this middleware answers 403
when that origin is not the address the app is being reached at (``Host``, or ``X-Forwarded-Host``
behind a proxy). Requests without ``Origin`` (gradio_client, curl, plain page loads) pass: they carry no
browser cookies unless their sender chose to.

That comparison alone does not stop DNS rebinding: a page at ``http://evil.test:P`` whose name later
resolves to 127.0.0.1 reaches a loopback app as a same-origin request (``Host: evil.test:P``). An app
without sign-in on loopback, where every visitor is an admin, therefore also names the host names it
answers to (``allowed_hosts``): any other ``Host`` gets 403, page loads included.

Every HTTP response also says who may show it in a frame, so that no other site can overlay the
Curate tab (whose keys cast votes) and steer a visitor's clicks and key presses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _host_port(netloc: str, scheme: str = "") -> tuple[str, int | None]:
    """(host, port) of ``netloc``; ("", None) when it does not parse (a port that is not a number, say)."""
    if "@" in netloc:
        return ("", None)
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


def _host_name(name: str) -> str:
    """``name`` lower-cased, an IPv6 literal without brackets; ValueError when it has a port or a scheme."""
    cleaned = name.strip().lower()
    if cleaned.startswith("[") and cleaned.endswith("]"):
        cleaned = cleaned[1:-1]
    if not cleaned or any(c in cleaned for c in "/@[] "):
        raise ValueError(f"{name!r} is not a host name: give it without scheme, port or path (e.g. studio.lan)")
    if ":" in cleaned:
        try:
            ipaddress.IPv6Address(cleaned)
        except ValueError:
            raise ValueError(f"{name!r} is not a host name: give it without a port (e.g. studio.lan)") from None
    return cleaned


def allowed_host_names(extra: list[str]) -> frozenset[str]:
    """The loopback names plus ``extra`` (e.g. from --allowed-host), normalised as the Host check compares them."""
    return LOOPBACK_HOST_NAMES | {_host_name(name) for name in extra}


def frame_headers(embedded_by: tuple[str, ...]) -> dict[bytes, bytes]:
    """Response headers that let only this app, and the sites in ``embedded_by``, show it in a frame.

    X-Frame-Options cannot name another site, so it is only sent when there is none to name.
    """
    ancestors = " ".join(["'self'", *embedded_by])
    headers = {b"content-security-policy": f"frame-ancestors {ancestors}".encode("latin-1")}
    if not embedded_by:
        headers[b"x-frame-options"] = b"SAMEORIGIN"
    return headers


def with_missing_headers(headers: Iterable[tuple[bytes, bytes]], wanted: dict[bytes, bytes]) -> list:
    """``headers`` plus each ``wanted`` header it does not have already (a response's own policy wins)."""
    headers = list(headers)
    present = {name.lower() for name, _ in headers}
    return [*headers, *((name, value) for name, value in wanted.items() if name not in present)]


class SameOriginOnly:
    """ASGI middleware: 403 for a request whose Origin is another site, or (when ``allowed_hosts`` is given)
    whose Host is not one of those names; frame-ancestors (and X-Frame-Options) on every HTTP response.

    ``allowed_hosts`` None checks no Host (sign-in, or a deliberately public app); when given, the Origin is
    compared with ``Host`` alone, since a rebinding page can set ``X-Forwarded-Host`` on its own requests.
    ``embedded_by`` lists the origins besides this app's own that may frame it (huggingface.co on a Space).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str] | None = None, embedded_by: tuple[str, ...] = ()):
        self.app = app
        self.allowed_hosts = None if allowed_hosts is None else frozenset(map(_host_name, allowed_hosts))
        self.frame_headers = frame_headers(embedded_by)

    def _own_addresses(self, headers: Headers) -> list[str]:
        """The host[:port]s this request was sent to: Host, and X-Forwarded-Host (behind a proxy) unless Host
        names are checked, since a rebinding page can set that header on its own same-origin requests."""
        forwarded = headers.get("x-forwarded-host", "").split(",") if self.allowed_hosts is None else []
        return [headers.get("host", ""), *forwarded]

    def _refusal(self, headers: Headers) -> str | None:
        """Why the request is refused, or None when it may pass."""
        host = headers.get("host", "")
        if self.allowed_hosts is not None and _host_port(host)[0] not in self.allowed_hosts:
            return f"Refused: unknown host name {host!r}."
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, self._own_addresses(headers)):
            return "Refused: a request from another site."
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(Headers(scope=scope))
        if scope["type"] == "websocket":
            if refusal:
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.app(scope, receive, send)
            return

        async def send_with_frame_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_missing_headers(message.get("headers", []), self.frame_headers)}
            await send(message)

        if refusal:
            await PlainTextResponse(refusal, status_code=403)(scope, receive, send_with_frame_headers)
        else:
            await self.app(scope, receive, send_with_frame_headers)

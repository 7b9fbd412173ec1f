"""Sign in with Hugging Face (OAuth) on a Space: who may enter, and with which role.

A Space whose README metadata says ``hf_oauth: true`` is given ``OAUTH_CLIENT_ID``,
``OAUTH_CLIENT_SECRET``, ``OAUTH_SCOPES`` and ``OPENID_PROVIDER_URL`` by Hugging Face.
Setting ``STUDIO_HF_USERS`` (a Space secret or variable) turns Hugging Face sign-in on:

    STUDIO_HF_USERS="alice:admin bob carol:reviewer"

Listed accounts enter with their role (reviewer unless given); anyone else, signed in or
not, is refused on the page and on the API alike. Gradio runs the OAuth flow itself
(``/login/huggingface``, ``/login/callback``, ``/logout``) and keeps the profile in a
signed session cookie; this module only reads that cookie, through the ``auth_dependency``
Gradio calls on every request, and renders the page a refused visitor sees.

Trade-off: the list lives in the environment, so changing it means restarting the Space;
in exchange there is no second user database to keep safe.
"""

from __future__ import annotations

import html
import os
import re
import time

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from access.users import ROLES

ENV_VAR = "STUDIO_HF_USERS"
OAUTH_VARS = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")
LOGIN_PATH = "/login/huggingface"
LOGOUT_PATH = "/logout"
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


class HubLoginError(ValueError):
    """STUDIO_HF_USERS is malformed, or set where Hugging Face sign-in cannot work."""


def parse_hub_users(text: str) -> dict[str, tuple[str, str]]:
    """``{lower-cased name: (name as written, role)}`` from ``name[:role]`` entries split by spaces , or ;."""
    users = {}
    for number, entry in enumerate((e for e in re.split(r"[\s,;]+", text) if e), 1):
        name, _, role = entry.partition(":")
        role = role or "reviewer"
        where = f"{ENV_VAR}, entry {number}"
        if not _HUB_NAME.match(name):
            raise HubLoginError(f"{where}: {name!r} is not a Hugging Face user name")
        if role not in ROLES:
            raise HubLoginError(f"{where}: role {role!r} is not one of {ROLES}")
        if name.lower() in users:
            raise HubLoginError(f"{where}: {name!r} is listed twice")
        users[name.lower()] = (name, role)
    if not users:
        raise HubLoginError(f"{ENV_VAR} lists nobody")
    return users


def missing_oauth_settings(environ=os.environ) -> list[str]:
    """What Gradio needs for Hugging Face sign-in and this process lacks (empty on an OAuth Space)."""
    missing = [name for name in OAUTH_VARS if not environ.get(name)]
    if environ.get("SYSTEM") != "spaces" or not environ.get("SPACE_ID"):
        missing.append("a Space (SYSTEM=spaces, SPACE_ID)")
    return missing


def signed_in_hub_name(request: Request) -> str | None:
    """The Hugging Face user name in the request's session, or None if nobody (or an expired login) is there."""
    if "session" not in request.scope:
        return None
    info = request.session.get("oauth_info") or {}
    expires_at = info.get("expires_at")
    if expires_at is not None and expires_at < time.time():
        return None
    return (info.get("userinfo") or {}).get("preferred_username")


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Injection Studio: {title}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:12vh auto;padding:0 1rem;"
        "line-height:1.5}a.button{display:inline-block;padding:.6rem 1rem;border-radius:.5rem;"
        "background:#ffd21e;color:#000;text-decoration:none;font-weight:600}</style></head>"
        f"<body><h1>Injection Studio</h1>{body}</body></html>"
    )


class HubUsers:
    """The Hugging Face accounts allowed in, with roles; ``user_of`` is Gradio's ``auth_dependency``."""

    def __init__(self, text: str):
        self._by_name = parse_hub_users(text)

    @classmethod
    def from_environment(cls, environ=os.environ) -> HubUsers | None:
        """The list from STUDIO_HF_USERS, None when unset; an error when set where OAuth cannot run."""
        value = environ.get(ENV_VAR, "").strip()
        if not value:
            return None
        users = cls(value)
        missing = missing_oauth_settings(environ)
        if missing:
            raise HubLoginError(
                f"{ENV_VAR} needs Hugging Face sign-in, which runs on a Space with "
                f"'hf_oauth: true' in its README metadata; missing: {', '.join(missing)}"
            )
        return users

    def _entry(self, name: str | None) -> tuple[str, str] | None:
        return self._by_name.get((name or "").lower())

    def user_of(self, request: Request) -> str | None:
        """The listed name of the request's signed-in Hugging Face user; None (refused) otherwise."""
        entry = self._entry(signed_in_hub_name(request))
        return entry[0] if entry else None

    def role(self, name: str | None) -> str | None:
        entry = self._entry(name)
        return entry[1] if entry else None

    def names(self) -> list[str]:
        return sorted(name for name, _ in self._by_name.values())

    def refusal(self, request: Request) -> str:
        """The page a refused browser sees: a sign-in button, or why a signed-in account is not let in."""
        name = signed_in_hub_name(request)
        if name is None:
            return _page(
                "sign in",
                "<p>This Studio is open to a list of Hugging Face accounts.</p>"
                f"<p><a class='button' href='{LOGIN_PATH}'>Sign in with Hugging Face</a></p>",
            )
        return _page(
            "not on the list",
            f"<p>You are signed in to Hugging Face as <b>{html.escape(name)}</b>, who is not on this "
            f"Studio's list. Ask one of its admins to add you to {ENV_VAR}.</p>"
            f"<p><a href='{LOGOUT_PATH}'>Sign out</a></p>",
        )

    async def refused(self, request: Request, exc: HTTPException) -> Response:
        """Gradio's 401 for a browser asking for a page becomes the sign-in page; API callers keep the JSON."""
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(self.refusal(request), status_code=exc.status_code)
        return await http_exception_handler(request, exc)

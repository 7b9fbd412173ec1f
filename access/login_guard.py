"""Limits on failed password sign-ins, per user name and per client address.

A name with ``NAME_FAILURE_LIMIT`` failed sign-ins in the last ``FAILURE_WINDOW_S`` seconds, or an address
with ``ADDRESS_FAILURE_LIMIT``, is refused at once (429, "Too many failed sign-ins; try again in N minutes")
without its password being checked, until its oldest failure leaves the window. Unknown names are counted
like known ones, so a refusal does not tell which names exist. ``Users.authenticate`` applies the name
limit; Gradio passes it only the name and password, so ``LoginGuard``, an ASGI middleware in front of
Gradio's ``POST /login``, applies the address limit.

The address is the one the server reports. Behind a proxy that is the proxy's, so everyone shares one
address's limit, unless the server is told to trust the proxy's ``X-Forwarded-For`` (uvicorn's
``FORWARDED_ALLOW_IPS``; by default it trusts loopback peers only).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NAME_FAILURE_LIMIT = 5
ADDRESS_FAILURE_LIMIT = 20
FAILURE_WINDOW_S = 300.0
MAX_TRACKED_KEYS = 10_000
"""Names (or addresses) remembered at most; past it, the one whose last attempt is oldest is forgotten."""
CONCURRENT_PASSWORD_CHECKS = 2
"""Password checks (scrypt: tens of ms of a core each) run at once; the rest wait their turn, off the event loop."""
SIGN_IN_PATHS = ("/login", "/login/")
FAILED_SIGN_IN_STATUS = 400
"""What Gradio's ``POST /login`` answers for a wrong name or password."""


class TooManyFailedSignIns(HTTPException):
    """429 for a name or address over its limit; FastAPI turns it into ``{"detail": message}``."""

    def __init__(self, wait_s: float):
        minutes = max(1, math.ceil(wait_s / 60))
        super().__init__(
            status_code=429,
            detail=f"Too many failed sign-ins; try again in {minutes} minute{'s' * (minutes > 1)}",
            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
        )


class FailureCounter:
    """Failed sign-ins per key (a name or an address) in a sliding window, for at most ``max_keys`` keys.

    An attempt is charged as failed before its password is checked and refunded if it was not a failure,
    so a burst of parallel attempts cannot slip past the limit while the first ones are still being checked.
    Used from the event loop only (not thread-safe).
    """

    def __init__(
        self,
        limit: int,
        window_s: float = FAILURE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_TRACKED_KEYS,
    ):
        self.limit, self.window_s, self.clock, self.max_keys = limit, window_s, clock, max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        """Each key's failure times, oldest first; keys in the order of their last charge."""

    def charge(self, key: str) -> float:
        """Count an attempt by ``key`` as failed; its time, to refund it with. Raises TooManyFailedSignIns,
        counting nothing, while ``key`` has ``limit`` failures in the window."""
        now = self.clock()
        self._forget_expired(now)
        failures = self._recent_failures(key, now)
        if len(failures) >= self.limit:
            raise TooManyFailedSignIns(failures[0] + self.window_s - now)
        if key not in self._failures and len(self._failures) >= self.max_keys:
            self._failures.popitem(last=False)
        failures.append(now)
        self._failures[key] = failures
        self._failures.move_to_end(key)
        return now

    def refund(self, key: str, charged_at: float) -> None:
        """Uncount the attempt charged at ``charged_at``: it was not a failed sign-in."""
        failures = self._failures.get(key)
        if failures and charged_at in failures:
            failures.remove(charged_at)
            if not failures:
                del self._failures[key]

    def tracked_keys(self) -> int:
        return len(self._failures)

    def _recent_failures(self, key: str, now: float) -> deque[float]:
        """``key``'s failures in the window (a new, empty deque for a key with none)."""
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def _forget_expired(self, now: float) -> None:
        """Forget the keys with no failure in the window, from those charged longest ago."""
        while self._failures:
            key = next(iter(self._failures))
            if self._recent_failures(key, now):
                return
            del self._failures[key]


def client_address(scope: Scope) -> str:
    """The client's address as the limit counts it; for IPv6, its /64 network, since one client holds them all."""
    host = (scope.get("client") or ("unknown", 0))[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def is_sign_in(scope: Scope) -> bool:
    """Whether ``scope`` is a ``POST /login`` (under the app's root path, if it has one)."""
    if scope["type"] != "http" or scope.get("method") != "POST":
        return False
    path, root_path = scope["path"], scope.get("root_path", "")
    under_root = bool(root_path) and path.startswith(root_path + "/")
    return (path[len(root_path) :] if under_root else path) in SIGN_IN_PATHS


class LoginGuard:
    """ASGI middleware: refuses ``POST /login`` (429) from an address with too many failed sign-ins.

    Counts a sign-in as failed when the app answers it ``FAILED_SIGN_IN_STATUS``.
    """

    def __init__(self, app: ASGIApp, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.failures = FailureCounter(ADDRESS_FAILURE_LIMIT, clock=clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_sign_in(scope):
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        try:
            charged_at = self.failures.charge(address)
        except TooManyFailedSignIns as refusal:
            await JSONResponse({"detail": refusal.detail}, refusal.status_code, refusal.headers)(scope, receive, send)
            return
        statuses = []

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            if statuses != [FAILED_SIGN_IN_STATUS]:
                self.failures.refund(address, charged_at)

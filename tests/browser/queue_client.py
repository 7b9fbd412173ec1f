"""A hand-made API client: calls any endpoint by number (fn_index) through Gradio's queue, as the page does,
with its own cookies."""
import http.cookiejar
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

CALL_TIMEOUT_S = 60


class Caller:
    """One HTTP client with its own cookies: signs in, reads /config, calls endpoints through the queue."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def status(self, path: str, body: dict | None = None, headers: dict | None = None) -> int:
        try:
            with self._open(path, body, headers=headers) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def headers(self, path: str) -> dict[str, str]:
        with self._open(path) as response:
            return {k.lower(): v for k, v in response.headers.items()}

    def fn_index(self, config: dict, api_name: str) -> int:
        return next(d["id"] for d in config["dependencies"] if d["api_name"] == api_name)

    def sign_in(self, name: str, password: str) -> None:
        form = urllib.parse.urlencode({"username": name, "password": password}).encode()
        with self.opener.open(urllib.request.Request(self.base + "/login", data=form), timeout=20) as response:
            assert response.status == 200

    def config(self) -> dict:
        with self._open("/config") as response:
            return json.load(response)

    def call(self, fn_index: int, data: list, session: str | None = None, event_data: dict | None = None) -> dict:
        """The queue's last message for this call: ``success`` and ``output`` (``error`` when it failed).
        Calls with the same ``session`` share the server-side state (gr.State) of one page."""
        session = session or uuid.uuid4().hex
        joined = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": event_data,
                  "trigger_id": None}
        with self._open("/gradio_api/queue/join", joined) as response:
            event_id = json.load(response)["event_id"]
        deadline = time.monotonic() + CALL_TIMEOUT_S  # the queue's heartbeats keep a stuck call's stream alive
        with self._open(f"/gradio_api/queue/data?session_hash={session}", timeout=CALL_TIMEOUT_S) as stream:
            for raw in stream:
                if time.monotonic() > deadline:
                    break
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    return message
        raise AssertionError(f"fn_index {fn_index}: no completion within {CALL_TIMEOUT_S} s")

    def _open(self, path: str, body: dict | None = None, timeout: float = 20, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        return self.opener.open(request, timeout=timeout)

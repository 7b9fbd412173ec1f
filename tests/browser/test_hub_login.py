"""Sign in with Hugging Face on a Space: visitors get a sign-in page and no API; listed accounts get their role.

The app runs as on a Space with ``hf_oauth: true``: the OAuth variables Hugging Face sets, pointing at a
local stand-in for huggingface.co's OpenID provider (huggingface.co cannot be reached from tests). The
browser tests go through the whole round trip; the API tests use the session cookie Gradio would have
set, signed the way its session middleware signs it.
"""

import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode

import itsdangerous
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError
from joserfc import jwt
from joserfc.jwk import RSAKey
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

CLIENT_SECRET = "test-oauth-secret"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(
    url: str,
    cookie: str | None = None,
    accept: str = "application/json",
    data: bytes | None = None,
    origin: str | None = None,
    content_type: str = "application/json",
):
    """(status, headers, body) of one request, redirects not followed."""
    headers = {"Accept": accept, "Content-Type": content_type}
    if cookie:
        headers["Cookie"] = f"session={cookie}"
    if origin:
        headers["Origin"] = origin
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers), timeout=20) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def session_cookie(hub_name: str) -> str:
    """The cookie Gradio sets once huggingface.co has signed ``hub_name`` in."""
    session = {
        "oauth_info": {
            "access_token": "unused",
            "expires_at": int(time.time()) + 3600,
            "userinfo": {"preferred_username": hub_name, "name": hub_name, "profile": "", "picture": ""},
        }
    }
    signer = itsdangerous.TimestampSigner(hashlib.sha256(f"{CLIENT_SECRET}-v4".encode()).hexdigest())
    return signer.sign(b64encode(json.dumps(session).encode())).decode()


class OpenIdProvider(http.server.BaseHTTPRequestHandler):
    """huggingface.co's side of the sign-in, enough for Gradio's OAuth client: metadata, an authorize page
    that signs ``server.user`` in at once, a token endpoint returning a signed id_token, and the key set."""

    def _json(self, value: dict) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        base = f"http://127.0.0.1:{self.server.server_port}"
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/oauth/authorize":
            query = dict(urllib.parse.parse_qsl(url.query))
            code = secrets.token_urlsafe(8)
            self.server.codes[code] = (query["nonce"], self.server.user)
            self.send_response(302)
            self.send_header("Location", f"{query['redirect_uri']}&code={code}&state={query['state']}")
            self.end_headers()
        elif url.path == "/jwks":
            self._json({"keys": [self.server.key.as_dict(private=False)]})
        else:
            self._json(
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/oauth/authorize",
                    "token_endpoint": f"{base}/oauth/token",
                    "jwks_uri": f"{base}/jwks",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )

    def do_POST(self):
        form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        nonce, user = self.server.codes.pop(form["code"])
        now = int(time.time())
        claims = {
            "iss": f"http://127.0.0.1:{self.server.server_port}",
            "sub": f"id-{user}",
            "aud": "studio-client",
            "iat": now,
            "exp": now + 3600,
            "nonce": nonce,
            "preferred_username": user,
            "name": user,
            "profile": f"https://huggingface.co/{user}",
            "picture": "",
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "test"}, claims, self.server.key)
        self._json(
            {
                "access_token": "unused",
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": "openid profile",
                "id_token": id_token,
            }
        )

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def openid_provider():
    """A local stand-in for huggingface.co's OpenID provider; ``.user`` is who the next sign-in is."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OpenIdProvider)
    server.key = RSAKey.generate_key(2048, parameters={"kid": "test"})
    server.codes, server.user = {}, "alice"
    server.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def hub_app(start_module_app, openid_provider):
    space = {
        "SYSTEM": "spaces",
        "SPACE_ID": "team/injection-studio",
        "OAUTH_CLIENT_ID": "studio-client",
        "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "OAUTH_SCOPES": "openid profile",
        "OPENID_PROVIDER_URL": openid_provider.url,
        "STUDIO_HF_USERS": "alice:admin bob",
    }
    app = start_module_app("--host", "127.0.0.1", env=space)
    # Gradio starts Spaces' hot reloading in a thread, which needs the `spaces` package a real Space has
    app.expected_errors.append("RuntimeError: `spaces` package is required")
    return app


def test_visitors_get_a_sign_in_page_and_nothing_else(hub_app, openid_provider):
    base = hub_app.url.rstrip("/")
    status, _, page = fetch(base + "/", accept="text/html")
    assert status == 401 and "Sign in with Hugging Face" in page and "/login/huggingface" in page
    for route in ("/config", "/gradio_api/info", "/gradio_api/queue/status"):
        assert fetch(base + route)[0] == 401, route
    call = json.dumps({"data": ["hello", "base:tiny", 0.5]}).encode()
    assert fetch(base + "/gradio_api/call/detect", data=call)[0] == 401
    join = json.dumps({"data": [], "fn_index": 0, "session_hash": "visitor"}).encode()
    assert fetch(base + "/gradio_api/queue/join", data=join)[0] == 401
    upload = b'--b\r\nContent-Disposition: form-data; name="files"; filename="p.csv"\r\n\r\nx\r\n--b--\r\n'
    assert fetch(base + "/gradio_api/upload", data=upload, content_type="multipart/form-data; boundary=b")[0] == 401
    snapshot = hub_app.data_dir / "snapshots" / "x" / "train.parquet"
    assert fetch(f"{base}/gradio_api/file={snapshot}")[0] == 401
    with pytest.raises(AuthenticationError):
        Client(hub_app.url, verbose=False)
    status, headers, _ = fetch(base + "/login/huggingface")
    assert status in (302, 307)
    assert headers["location"].startswith(f"{openid_provider.url}/oauth/authorize?")
    assert "client_id=studio-client" in headers["location"]


def test_listed_accounts_enter_with_their_role_and_others_are_refused(hub_app):
    base = hub_app.url.rstrip("/")
    status, _, page = fetch(base + "/", cookie=session_cookie("mallory"), accept="text/html")
    assert status == 401 and "mallory" in page and "not on this Studio's list" in page
    assert fetch(base + "/config", cookie=session_cookie("mallory"))[0] == 401
    reviewer = Client(hub_app.url, headers={"Cookie": f"session={session_cookie('bob')}"}, verbose=False)
    with pytest.raises(AppError, match="Only an admin"):
        reviewer.predict("some-run", api_name="/cancel")
    admin = Client(hub_app.url, headers={"Cookie": f"session={session_cookie('alice')}"}, verbose=False)
    assert admin.predict("no-such-run", api_name="/cancel").startswith("no run 'no-such-run'")  # the queue answered
    assert fetch(base + "/gradio_api/runs", cookie=session_cookie("alice"), accept="text/html")[0] == 404
    assert fetch(base + "/config", cookie=session_cookie("alice"))[0] == 200
    assert fetch(base + "/config", cookie=session_cookie("alice"), origin="https://evil.example")[0] == 403


@pytest.mark.parametrize(
    "account, shown",
    [
        ("alice", "Signed in as alice (admin)"),
        ("mallory", "not on this Studio's list"),
    ],
)
def test_signing_in_with_hugging_face_in_the_browser(hub_app, page, openid_provider, account, shown):
    """The real round trip: the button, the provider, Gradio's callback and session, then the page."""
    openid_provider.user = account
    page.goto(hub_app.url)
    page.get_by_role("link", name="Sign in with Hugging Face").click()
    if account == "alice":
        expect(page.locator("#signed-in-as")).to_contain_text(shown)
        page.get_by_role("tab", name="Review", exact=True).click()
        expect(page.get_by_label("Reviewer (from your login)")).to_have_value("alice")
    else:
        expect(page.get_by_text(shown)).to_be_visible()
        page.get_by_role("link", name="Sign out").click()
        expect(page.get_by_role("link", name="Sign in with Hugging Face")).to_be_visible()

"""Users and roles, password hashes, and the path roots."""

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from helpers import ROOT

from access.hub_login import HubLoginError, HubUsers
from access.origin import same_origin
from access.paths import PathError, checked_reference, resolve_inside
from access.users import Users, UsersError, hash_password, verify_password


def test_hash_verifies_only_its_password():
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret ", stored)
    assert hash_password("s3cret") != stored  # salted


def test_users_file_roles_and_login(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text(f"# the team\nalice:{hash_password('a-pw')}:admin\nbob:{hash_password('b-pw')}\n")
    users = Users.from_file(path)
    assert users.password_matches("alice", "a-pw") and users.password_matches("bob", "b-pw")
    assert not users.password_matches("bob", "a-pw") and not users.password_matches("carol", "x")
    assert users.role("alice") == "admin" and users.role("bob") == "reviewer" and users.role(None) is None


def test_users_from_the_environment():
    value = f"alice:{hash_password('pw')}:admin; bob:{hash_password('pw2')}"
    users = Users.from_environment({"STUDIO_USERS": value})
    assert users.names() == ["alice", "bob"] and users.role("alice") == "admin"
    assert Users.from_environment({}) is None


@pytest.mark.parametrize(
    "line, message",
    [
        ("alice:plaintext", "must be a hash"),
        ("alice", "expected 'name:hash'"),
        (f"alice:{hash_password('x')}:root", "role 'root'"),
        (f"al ice:{hash_password('x')}", "user name"),
        (f"bob:{hash_password('x')}:admin\nbob:{hash_password('y')}", "listed twice: bob"),
    ],
)
def test_malformed_users_are_named(tmp_path, line, message):
    path = tmp_path / "users.txt"
    path.write_text(line + "\n")
    with pytest.raises(UsersError, match=message):
        Users.from_file(path)


def test_hash_command_reads_stdin():
    done = subprocess.run(
        [sys.executable, "-m", "access.users"], input="pw\n", capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0 and verify_password("pw", done.stdout.strip())


def test_paths_outside_the_roots_are_refused(tmp_path):
    root = tmp_path / "data"
    (root / "snapshots" / "s1").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    assert resolve_inside(root / "snapshots" / "s1", [root]) == (root / "snapshots" / "s1").resolve()
    for bad in (
        str(root / ".." / ".." / "etc" / "passwd"),
        "../../etc/passwd",
        "/etc/passwd",
        str(outside),
        str(root / "escape"),
        str(root / "escape" / "x.parquet"),
    ):
        with pytest.raises(PathError, match="outside the allowed folders"):
            resolve_inside(bad, [root])


def test_references_are_paths_in_roots_or_hub_ids(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    assert checked_reference("xTRam1/safe-guard-prompt-injection", [root]) == "xTRam1/safe-guard-prompt-injection"
    assert checked_reference("tiny", [root]) == "tiny"
    assert checked_reference(str(root), [root]) == str(root.resolve())
    for bad in ("../../etc/passwd", "/etc", "a/b/c", "owner/na me", ""):
        with pytest.raises(PathError):
            checked_reference(bad, [root])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathError):
        checked_reference("./data/../..", [root])


OAUTH_SPACE = {
    "SYSTEM": "spaces",
    "SPACE_ID": "team/studio",
    "OAUTH_CLIENT_ID": "id",
    "OAUTH_CLIENT_SECRET": "s",
    "OAUTH_SCOPES": "openid profile",
    "OPENID_PROVIDER_URL": "https://huggingface.co",
}


def hub_request(name: str | None, expires_in: float = 3600):
    """A request as Gradio's session middleware leaves it after a Hugging Face sign-in (or none)."""
    session = (
        {}
        if name is None
        else {"oauth_info": {"expires_at": time.time() + expires_in, "userinfo": {"preferred_username": name}}}
    )
    return SimpleNamespace(scope={"session": session}, session=session)


def test_hub_accounts_enter_with_their_role_and_nobody_else():
    users = HubUsers.from_environment({**OAUTH_SPACE, "STUDIO_HF_USERS": "Alice:admin, bob;carol:reviewer"})
    assert users.names() == ["Alice", "bob", "carol"]
    assert users.user_of(hub_request("alice")) == "Alice" and users.role("Alice") == "admin"
    assert users.user_of(hub_request("bob")) == "bob" and users.role("bob") == "reviewer"
    assert users.user_of(hub_request("mallory")) is None
    assert users.user_of(hub_request(None)) is None
    assert users.user_of(hub_request("bob", expires_in=-1)) is None
    assert users.user_of(SimpleNamespace(scope={})) is None
    assert "Sign in with Hugging Face" in users.refusal(hub_request(None))
    refusal = users.refusal(hub_request("<b>x</b>"))
    assert "not on this Studio's list" in refusal and "&lt;b&gt;x&lt;/b&gt;" in refusal and "<b>x</b>" not in refusal


@pytest.mark.parametrize(
    "environ, message",
    [
        ({**OAUTH_SPACE, "STUDIO_HF_USERS": "alice:boss"}, "role 'boss'"),
        ({**OAUTH_SPACE, "STUDIO_HF_USERS": "../alice"}, "not a Hugging Face user name"),
        ({**OAUTH_SPACE, "STUDIO_HF_USERS": " ;, "}, "lists nobody"),
        ({**OAUTH_SPACE, "STUDIO_HF_USERS": "alice:admin Alice"}, "'Alice' is listed twice"),
        ({"STUDIO_HF_USERS": "alice"}, "missing: OAUTH_CLIENT_ID.*a Space"),
        ({**OAUTH_SPACE, "OAUTH_CLIENT_SECRET": "", "STUDIO_HF_USERS": "alice"}, "missing: OAUTH_CLIENT_SECRET$"),
    ],
)
def test_hub_accounts_that_cannot_work_are_refused_at_start(environ, message):
    with pytest.raises(HubLoginError, match=message):
        HubUsers.from_environment(environ)


def test_no_hub_accounts_means_no_hub_sign_in():
    assert HubUsers.from_environment(OAUTH_SPACE) is None


def test_only_requests_from_the_apps_own_address_are_same_origin():
    assert same_origin("http://127.0.0.1:7860", ["127.0.0.1:7860"])
    assert same_origin("https://team-studio.hf.space", ["team-studio.hf.space"])
    assert same_origin("https://team-studio.hf.space", ["10.0.0.5:7860", "team-studio.hf.space"])  # behind a proxy
    assert same_origin("https://studio.example.org:443", ["studio.example.org"])
    assert not same_origin("http://127.0.0.1:9999", ["127.0.0.1:7860"])
    assert not same_origin("https://evil.example", ["team-studio.hf.space"])
    assert not same_origin("https://team-studio.hf.space.evil.example", ["team-studio.hf.space"])
    assert not same_origin("null", ["127.0.0.1:7860"])
    assert not same_origin("http://127.0.0.1:7860", [""])
    assert not same_origin("http://127.0.0.1:abc", ["127.0.0.1:abc"])
    assert not same_origin("http://[::1", ["127.0.0.1:7860"])
    assert not same_origin("http://127.0.0.1:7860", ["127.0.0.1:99999"])

"""Failed sign-ins: counted per name and per client address in a window, refused past the limit; password
checks off the event loop, as slow for unknown names as for known ones. A hand-wound clock, no sleeps."""

import asyncio
import inspect
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import access.users
from access.login_guard import (
    ADDRESS_FAILURE_LIMIT,
    CONCURRENT_PASSWORD_CHECKS,
    FAILURE_WINDOW_S,
    NAME_FAILURE_LIMIT,
    FailureCounter,
    LoginGuard,
    TooManyFailedSignIns,
    client_address,
    is_sign_in,
)
from access.users import User, Users, hash_password


def run_apart(coroutine):
    """asyncio.run in a thread of its own: the session's Playwright (browser tests) keeps an event loop
    running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_a_key_is_refused_at_its_limit_until_its_oldest_failure_leaves_the_window(clock):
    failures = FailureCounter(3, window_s=300, clock=clock)
    for step in (0, 10, 20):
        clock.now = 1000 + step
        failures.charge("alice")
    with pytest.raises(TooManyFailedSignIns) as refusal:
        failures.charge("alice")
    assert refusal.value.status_code == 429
    assert refusal.value.detail == "Too many failed sign-ins; try again in 5 minutes"
    assert refusal.value.headers == {"Retry-After": "280"}
    failures.charge("bob")
    clock.now = 1299
    with pytest.raises(TooManyFailedSignIns, match="try again in 1 minute$"):
        failures.charge("alice")
    clock.now = 1300
    failures.charge("alice")
    with pytest.raises(TooManyFailedSignIns):
        failures.charge("alice")


def test_a_refunded_attempt_does_not_count_nor_forgive_the_others(clock):
    failures = FailureCounter(2, clock=clock)
    failures.charge("10.0.0.1")
    clock.now += 1
    failures.refund("10.0.0.1", failures.charge("10.0.0.1"))
    clock.now += 1
    failures.charge("10.0.0.1")
    with pytest.raises(TooManyFailedSignIns):
        failures.charge("10.0.0.1")


def test_memory_is_bounded_and_expired_keys_are_forgotten(clock):
    failures = FailureCounter(2, window_s=300, clock=clock, max_keys=3)
    for name in ("a", "b", "c", "d"):
        failures.charge(name)
        failures.charge(name)
    assert failures.tracked_keys() == 3
    failures.charge("a")  # forgotten: the oldest key made room for "d"
    clock.now += FAILURE_WINDOW_S
    failures.charge("e")
    assert failures.tracked_keys() == 1


HASHES = {"alice": hash_password("a-pw"), "bob": hash_password("b-pw")}


def one_user_table(clock) -> Users:
    return Users([User(name, stored) for name, stored in HASHES.items()], clock=clock)


@pytest.fixture
def checked_hashes(monkeypatch):
    """The stored hashes passwords are checked against, and each check's thread, in order."""
    checks = []
    real_verify = access.users.verify_password

    def verify(password, stored):
        checks.append((stored, threading.get_ident()))
        return real_verify(password, stored)

    monkeypatch.setattr(access.users, "verify_password", verify)
    return checks


def test_unknown_names_are_checked_against_one_dummy_hash(clock, checked_hashes):
    users = one_user_table(clock)
    assert not users.password_matches("mallory", "a-pw") and not users.password_matches("eve", "")
    assert users.password_matches("alice", "a-pw")
    (first, _), (second, _), (alices, _) = checked_hashes
    assert first == second and first.startswith("scrypt$") and first not in HASHES.values()
    assert alices == HASHES["alice"]


def test_gradio_awaits_authenticate_and_its_checks_run_off_the_event_loop_two_at_once(
    clock, checked_hashes, monkeypatch
):
    users = one_user_table(clock)
    assert inspect.iscoroutinefunction(users.authenticate)
    running, most_running, lock = [0], [0], threading.Lock()
    counted_verify = access.users.verify_password

    def verify(password, stored):
        with lock:
            running[0] += 1
            most_running[0] = max(most_running[0], running[0])
        try:
            return counted_verify(password, stored)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(access.users, "verify_password", verify)

    async def sign_ins():
        names = [f"user{i}" for i in range(7)] + ["alice"]
        return await asyncio.gather(*(users.authenticate(name, "a-pw") for name in names))

    assert run_apart(sign_ins()) == [False] * 7 + [True]
    assert len(checked_hashes) == 8 and threading.get_ident() not in {thread for _, thread in checked_hashes}
    assert most_running[0] == CONCURRENT_PASSWORD_CHECKS


@pytest.mark.parametrize("name", ["alice", "mallory"])
def test_a_name_is_locked_out_after_its_failures_known_or_not(clock, checked_hashes, name):
    users = one_user_table(clock)

    async def sign_in(name, password):
        return await users.authenticate(name, password)

    for _ in range(NAME_FAILURE_LIMIT):
        assert not run_apart(sign_in(name, "wrong"))
    checks = len(checked_hashes)
    with pytest.raises(TooManyFailedSignIns):
        run_apart(sign_in(name, "a-pw"))
    assert len(checked_hashes) == checks
    assert run_apart(sign_in("bob", "b-pw"))
    clock.now += FAILURE_WINDOW_S
    assert run_apart(sign_in("alice", "a-pw"))


def test_successful_sign_ins_do_not_count_as_failures(clock):
    users = one_user_table(clock)

    async def attempts():
        for _ in range(NAME_FAILURE_LIMIT - 1):
            assert not await users.authenticate("alice", "wrong")
        for _ in range(NAME_FAILURE_LIMIT):
            assert await users.authenticate("alice", "a-pw")

    run_apart(attempts())


class FakeGradio:
    """Answers POST /login 200 for the password "right" (sent as the query string), 400 for any other."""

    def __init__(self):
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await self.release.wait()
        status = 200 if scope["query_string"] == b"right" else 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def post(guard, address="10.0.0.1", password="wrong", path="/login", method="POST") -> tuple[int, dict]:
    """The status and the headers ``guard`` answers."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "client": (address, 50000),
        "headers": [],
        "query_string": password.encode(),
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await guard(scope, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], {**headers, "body": body.decode()}


def test_an_address_is_refused_after_its_failures_before_gradio_sees_the_request(clock):
    gradio = FakeGradio()
    guard = LoginGuard(gradio, clock=clock)

    async def attempts():
        for _ in range(ADDRESS_FAILURE_LIMIT - 1):
            assert (await post(guard))[0] == 400
        assert (await post(guard, password="right"))[0] == 200
        assert (await post(guard))[0] == 400
        calls = gradio.calls
        status, answer = await post(guard, password="right")
        assert (status, gradio.calls) == (429, calls)
        assert json.loads(answer["body"]) == {"detail": "Too many failed sign-ins; try again in 5 minutes"}
        assert answer["retry-after"] == str(int(FAILURE_WINDOW_S))
        assert (await post(guard, address="10.0.0.2", password="right"))[0] == 200
        clock.now += FAILURE_WINDOW_S
        assert (await post(guard, password="right"))[0] == 200

    run_apart(attempts())


def test_parallel_attempts_from_an_address_count_before_they_are_answered(clock):
    gradio = FakeGradio()
    guard = LoginGuard(gradio, clock=clock)

    async def burst():
        gradio.release.clear()
        attempts = [asyncio.create_task(post(guard)) for _ in range(ADDRESS_FAILURE_LIMIT + 5)]
        await asyncio.sleep(0)  # every attempt runs until it waits for Gradio's answer, or is refused
        assert gradio.calls == ADDRESS_FAILURE_LIMIT and sum(task.done() for task in attempts) == 5
        gradio.release.set()
        return [status for status, _ in await asyncio.gather(*attempts)]

    assert sorted(run_apart(burst())) == [400] * ADDRESS_FAILURE_LIMIT + [429] * 5


def test_only_sign_ins_are_counted(clock):
    gradio = FakeGradio()
    guard = LoginGuard(gradio, clock=clock)

    async def attempts():
        for _ in range(ADDRESS_FAILURE_LIMIT + 1):
            assert (await post(guard, path="/gradio_api/upload"))[0] == 400
            assert (await post(guard, method="GET"))[0] == 400
        assert (await post(guard, path="/login/", password="right"))[0] == 200

    run_apart(attempts())


def test_sign_in_paths_and_client_addresses():
    scope = {"type": "http", "method": "POST", "path": "/studio/login", "root_path": "/studio"}
    assert is_sign_in(scope) and is_sign_in({**scope, "path": "/login/"})
    assert not is_sign_in({**scope, "path": "/studio/login/huggingface"})
    assert not is_sign_in({**scope, "type": "websocket"})
    assert client_address({"client": ("2001:db8::1", 1)}) == client_address({"client": ("2001:db8::ffff", 1)})
    assert client_address({"client": ("2001:db8::1", 1)}) != client_address({"client": ("2001:db8:0:1::1", 1)})
    assert client_address({"client": ("::ffff:10.0.0.1", 1)}) == "10.0.0.1"
    assert client_address({"client": ("10.0.0.1", 1)}) != client_address({"client": ("10.0.0.2", 1)})
    assert client_address({"client": None}) == "unknown"

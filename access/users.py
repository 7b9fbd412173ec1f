"""Users, password hashes and roles for ``--auth FILE`` and ``STUDIO_USERS``.

An entry is ``name:hash`` or ``name:hash:role``: one per line in a file, or
separated by whitespace or ``;`` in the environment variable. ``hash`` is made
by ``python -m access.users`` (scrypt, salted); plain passwords are refused, so
a leaked users file does not leak passwords. Roles: ``reviewer`` (the
default), ``lead`` and ``admin``; what each may do is in ``access.roles``.
A wrong password takes as long for an unknown name as for a known one, and repeated
failures lock a name (or a client address) out for a while: see ``access.login_guard``.

    python -m access.users            # asks for a password twice, prints its hash
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from access.login_guard import CONCURRENT_PASSWORD_CHECKS, NAME_FAILURE_LIMIT, FailureCounter
from access.roles import ROLE_NAMES

ROLES = ROLE_NAMES
ENV_VAR = "STUDIO_USERS"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_NAME_KEY_CHARS = 65
"""Characters of a typed name the failure limit keys on: longer than any valid name, and bounded in memory."""


class UsersError(ValueError):
    """A users file or STUDIO_USERS entry is malformed; the message names where."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<digest hex>`` for ``password``."""
    if not password:
        raise UsersError("an empty password cannot be hashed")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: str = "reviewer"


def _parse_entry(entry: str, where: str) -> User:
    parts = entry.strip().split(":")
    if len(parts) not in (2, 3):
        raise UsersError(f"{where}: expected 'name:hash' or 'name:hash:role'")
    name, password_hash = parts[0].strip(), parts[1].strip()
    role = parts[2].strip() if len(parts) == 3 else "reviewer"
    if not _NAME.match(name):
        raise UsersError(f"{where}: user name {name!r} must be 1-64 letters, digits or _ . @ -")
    if not password_hash.startswith("scrypt$") or password_hash.count("$") != 2:
        raise UsersError(f"{where}: the password must be a hash made by 'python -m access.users', not plain text")
    if role not in ROLES:
        raise UsersError(f"{where}: role {role!r} is not one of {ROLES}")
    return User(name, password_hash, role)


class Users:
    """The login table: ``authenticate`` for Gradio's ``auth=``, and roles for the handlers."""

    def __init__(self, users: list[User], clock: Callable[[], float] = time.monotonic):
        if not users:
            raise UsersError("no users given")
        names = [u.name for u in users]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UsersError(f"listed twice: {', '.join(twice)}")
        self._by_name = {u.name: u for u in users}
        self._unknown_name_hash = hash_password(secrets.token_urlsafe(16))
        self._name_failures = FailureCounter(NAME_FAILURE_LIMIT, clock=clock)
        self._password_checks = ThreadPoolExecutor(CONCURRENT_PASSWORD_CHECKS, thread_name_prefix="password-check")

    @classmethod
    def from_text(cls, text: str, source: str, separators: str = r"\n") -> Users:
        entries = [e for e in re.split(separators, text) if e.strip() and not e.lstrip().startswith("#")]
        return cls([_parse_entry(e, f"{source}, entry {i}") for i, e in enumerate(entries, 1)])

    @classmethod
    def from_file(cls, path: str | Path) -> Users:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsersError(f"{path}: cannot read the users file ({exc})") from None
        return cls.from_text(text, str(path))

    @classmethod
    def from_environment(cls, environ=os.environ) -> Users | None:
        value = environ.get(ENV_VAR, "").strip()
        return cls.from_text(value, ENV_VAR, r"[\s;]+") if value else None

    def password_matches(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s. An unknown name is checked against a hash of a random password,
        so that it takes as long as a known one: the time of a refusal does not tell which names exist."""
        user = self._by_name.get(name)
        matches = verify_password(password, user.password_hash if user else self._unknown_name_hash)
        return matches and user is not None

    async def authenticate(self, name: str, password: str) -> bool:
        """Gradio's ``auth=`` (a coroutine function, so Gradio awaits it rather than blocking its event loop).

        Refuses at once (429) a name with too many failed sign-ins, else checks the password in a worker
        thread, ``CONCURRENT_PASSWORD_CHECKS`` at once, so pages keep being answered during a burst."""
        key = name[:_NAME_KEY_CHARS]
        charged_at = self._name_failures.charge(key)
        loop = asyncio.get_running_loop()
        matches = await loop.run_in_executor(self._password_checks, self.password_matches, name, password)
        if matches:
            self._name_failures.refund(key, charged_at)
        return matches

    def role(self, name: str | None) -> str | None:
        user = self._by_name.get(name or "")
        return user.role if user else None

    def names(self) -> list[str]:
        return sorted(self._by_name)


def main() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        print(hash_password(password))
    except UsersError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

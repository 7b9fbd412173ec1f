"""Secrets: which values to hide, and hiding them in any text the page shows from a run.

Secrets (WANDB_API_KEY, HF_TOKEN, ...) reach a run only through its environment; a config that holds one is
refused (``runner.forms.check_config``) and any log text goes through ``redact``.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import re
from pathlib import Path

SECRET_NAMES = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN")
SECRET_NAME_PATTERN = re.compile(r"(TOKEN|API_KEY|SECRET|SECRET_KEY|ACCESS_KEY|PASSWORD)$")
MIN_SECRET_LENGTH = 8
REDACTED = "[redacted]"


def _is_secret_name(name: str) -> bool:
    return name in SECRET_NAMES or bool(SECRET_NAME_PATTERN.search(name))


def _stored_secrets() -> list[str]:
    """The wandb key in ~/.netrc and the Hugging Face token file: a login without an environment variable."""
    found = []
    try:
        entry = netrc.netrc().authenticators("api.wandb.ai")
        if entry and entry[2]:
            found.append(entry[2])
    except (OSError, netrc.NetrcParseError):
        pass
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    with contextlib.suppress(OSError):
        found.append((hf_home / "token").read_text().strip())
    return found


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """The values to hide: secret-named environment variables and stored logins, longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if _is_secret_name(k)} | set(_stored_secrets())
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every known secret value replaced by ``[redacted]``."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return text

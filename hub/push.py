"""One way to publish to the Hub, for snapshots (datasets) and detectors (models): a token from the caller or
``HF_TOKEN``, the repo created if needed (private by default), then one commit that only adds or replaces
files. It never deletes: the repo may hold files this studio did not write. No project imports."""

from __future__ import annotations

import os
from pathlib import Path

HUB_URL = "https://huggingface.co"


def hub_token(token: str | None, what: str) -> str:
    """``token`` or HF_TOKEN; PermissionError naming ``what`` needs it, before anything is built or sent."""
    token = token or os.environ.get("HF_TOKEN")
    if not token:
        raise PermissionError(f"No Hugging Face token: set HF_TOKEN to {what}.")
    return token


def repo_url(repo_id: str, repo_type: str) -> str:
    return f"{HUB_URL}/{repo_id}" if repo_type == "model" else f"{HUB_URL}/{repo_type}s/{repo_id}"


def commit_files(
    repo_id: str, repo_type: str, files: dict[str, Path | bytes], message: str, token: str, private: bool = True
) -> str:
    """``files`` (path in the repo -> a file or its bytes) committed to ``repo_id`` at once; the repo's URL."""
    from huggingface_hub import CommitOperationAdd, HfApi  # imported on use: the Hub client is slow to import

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    added = [CommitOperationAdd(path, content) for path, content in files.items()]
    api.create_commit(repo_id, added, commit_message=message, repo_type=repo_type)
    return repo_url(repo_id, repo_type)

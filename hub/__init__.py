"""Publishing to the Hugging Face Hub: one commit that adds files and deletes nothing (hub.push)."""

from hub.push import commit_files, hub_token

__all__ = ["commit_files", "hub_token"]

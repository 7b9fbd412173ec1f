"""What the Curate sub-tabs share: the reviewer's name, table and time formatting, and the components more
than one sub-tab reads or writes."""

from __future__ import annotations

import time
from dataclasses import dataclass

import gradio as gr

from ui.context import page_error


@dataclass(frozen=True)
class Shared:
    """Components at the top of the tab that several sub-tabs read or write."""

    banner: gr.Markdown
    saved_name: gr.BrowserState
    current_id: gr.State
    """The example in the review panel (Browse opens one there)."""
    browse_filter: gr.State
    """Browse's filter: the review queue 'filtered set' walks it."""
    reviewer_box: gr.Textbox
    counts: gr.Markdown


def when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def reviewer_name(request: gr.Request | None, typed: str | None) -> str:
    """The login name when auth is on (it cannot be typed over), else the name typed on the page; may be ''."""
    return (getattr(request, "username", None) or typed or "").strip()


def reviewer(request: gr.Request | None, typed: str | None) -> str:
    """The reviewer casting a vote: a name is required."""
    name = reviewer_name(request, typed)
    if not name:
        raise page_error("Type your name in the Reviewer box first.")
    return name


def frame(columns: list[str], rows: list[list]) -> dict:
    """A table for a gr.Dataframe, every cell as text, the headers shown even with no rows: as the plain
    {"headers", "data"} Gradio sends, since a pandas frame costs several times more to build and send
    (each review vote answers with two or three tables)."""
    return {"headers": columns, "data": [[str(v) for v in row] for row in rows]}

"""An event handler with its inputs and outputs, handed from one section of a tab to another.

Handlers of several outputs return ``{component: value}``: Gradio sends the values in the order of the event's
``outputs`` (what a gradio_client caller receives) and leaves an output missing from the dict unchanged, so no
handler returns an empty dict (``gr.skip()`` leaves them all). A handler of one output returns its value."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Handler(NamedTuple):
    """``event.then(*handler)`` chains it after an event; ``handler.fn(...)`` calls it from another handler,
    which adds the dict it returns to its own. The function's name is its API endpoint's name."""

    fn: Callable
    inputs: list
    outputs: list

"""An event handler with its inputs and outputs, handed from one section of a tab to another."""

from __future__ import annotations

from typing import Callable, NamedTuple


class Handler(NamedTuple):
    """``event.then(*handler)`` chains it after an event; ``handler.fn(...)`` calls it from another handler.
    The function's name is its API endpoint's name."""
    fn: Callable
    inputs: list
    outputs: list

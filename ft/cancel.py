"""Cancel means now: a SIGTERM ends a run within seconds wherever it is.

The app cancels a run by sending SIGTERM to its process group. The handler only sets a flag; the flag is
read in two places:
- between training steps (``ft.callbacks.StopOnSignal``): the step ends, a checkpoint is saved, the run stops;
- before every decoder layer's forward (``watch``): a training step, a prediction table, the test split's
  scoring or an audit fold's scoring raises ``RunCancelled`` within one layer's work, so no batch of long
  rows on a slow CPU (a forward of 32 x 256 tokens can take 15 s there) holds the cancel up.
The recipe that catches ``RunCancelled`` in a training step saves the last completed step (the weights and
the optimiser change only in the optimiser step, never in a forward), so resume loses at most one step.
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()


class RunCancelled(Exception):
    """A SIGTERM asked this process to stop; raised at the next decoder layer."""


def request(signum: int | None = None, frame=None) -> None:
    """Ask the run to stop (the SIGTERM handler)."""
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def reset() -> None:
    """Forget an earlier request (a process that trains several runs, such as the tests)."""
    _requested.clear()


def on_sigterm() -> None:
    """Turn SIGTERM into a cancel request from now on (in the main thread of a run's process)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request)


def _raise_if_requested(module, args) -> None:
    if _requested.is_set():
        raise RunCancelled("cancelled")


def watch(model) -> list:
    """Check for a cancel before every decoder layer of ``model`` runs; returns the hook handles.

    Decoder layers are found by their place in the module tree (``...layers.<i>``), so any
    transformers decoder-only model, under any PEFT wrapper, is covered.
    """
    handles = []
    for name, module in model.named_modules():
        parent, _, index = name.rpartition(".")
        if index.isdigit() and parent.endswith("layers"):
            handles.append(module.register_forward_pre_hook(_raise_if_requested))
    return handles

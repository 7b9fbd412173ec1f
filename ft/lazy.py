"""Libraries imported on first use, so that processes which never load a model start quickly.

torch, transformers, PEFT (which pulls in bitsandbytes and accelerate) and scikit-learn take about
four of the web app's eight seconds of imports, and most app processes (a Curate session, a reviewer, a
script calling the API) never load a model. A module names them once at the top, as with ``import``::

    peft = lazy("peft")

and ``peft.PeftModel`` imports peft then. An attribute read at import time (a base class, a default
argument) imports the library at once; ``tests/unit/test_architecture.py`` checks that importing
the app loads none of them.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """Stands for the module ``name`` and imports it when one of its attributes is first read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> LazyModule:
    """The module ``name``, imported when first used."""
    return LazyModule(name)

"""One trained tiny run for the Detect tests, trained once per test process and shared.

``trained_data_dir()`` is an app data directory whose ``runs/t`` is a completed run (300 rows,
2 epochs, ~30 s on 2 cores); the service tests and the browser test both use it.
"""
import atexit
import functools
import shutil
import tempfile
from pathlib import Path

RUN_ID = "t"


@functools.cache
def trained_data_dir() -> Path:
    from conftest import tiny_config
    from ft.train import train

    root = Path(tempfile.mkdtemp(prefix="detect-run-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    train(tiny_config(root, max_train_rows=300, epochs=2), run_id=RUN_ID)
    return root

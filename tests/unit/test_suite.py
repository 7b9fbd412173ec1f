"""The test suite's own guard: it refuses to start on a nearly full temp disk instead of failing test by test."""

import os
import subprocess
import sys

from helpers import ROOT


def test_a_nearly_full_disk_stops_the_suite_before_any_test_and_says_why():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/unit/test_config.py"],
        cwd=ROOT,
        env={**os.environ, "TESTS_MIN_FREE_GB": "1e9"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "GB free in" in output and "the tests want 1e+09 GB" in output
    assert "passed" not in output

"""Tests that drive the real page in Chromium (a package, so its conftest does not shadow tests/conftest.py)."""

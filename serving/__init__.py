"""Serving detectors: the live detector service behind the Detect tab, batch input and output, comparing two runs,
scoring a file from the command line."""

"""Loaded with `-p tests.bootstrap` (pyproject addopts) before Django's settings are read.

Each test session keeps its files (the SQLite test database, the embedded Redis socket, the
secret key) in a fresh temporary folder, so neither a running `intake.py start` on var/ nor
another test session is ever touched. tests/conftest.py removes it at the end."""

import os
import tempfile

if "INTAKE_VAR_DIR" not in os.environ:
    os.environ["INTAKE_VAR_DIR"] = tempfile.mkdtemp(prefix="intake-test-")
    os.environ["INTAKE_TEST_VAR_DIR_IS_TEMPORARY"] = "1"
# Quiet test processes (web, workers) unless asked otherwise.
os.environ.setdefault("LOG_LEVEL", "WARNING")

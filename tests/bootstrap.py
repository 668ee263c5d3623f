"""Loaded with `-p tests.bootstrap` (pyproject addopts) before Django's settings are read:
the tests keep their files (SQLite test database, embedded Redis socket) under var/test, so a
running `intake.py start` on var/ is never touched."""

import os
from pathlib import Path

os.environ.setdefault(
    "INTAKE_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test")
)
# Fast and quiet defaults for the test processes (web, workers) the tests start.
os.environ.setdefault("LOG_LEVEL", "WARNING")

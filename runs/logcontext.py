"""The run a log record belongs to: set while a worker executes a run's work
(runs.execution, runs.worker), read by the JSON log formatter (project/logjson.py), so that
every line logged meanwhile, by any module, carries the run's id.

A leaf module: the logging configuration imports it before Django's apps are ready."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

current_run_id: ContextVar[int | None] = ContextVar("intake_run_id", default=None)


@contextlib.contextmanager
def run_logging(run_id: int | None) -> Iterator[None]:
    """Within the block, log records carry `run_id` (None: leave it as it is)."""
    if run_id is None:
        yield
        return
    token = current_run_id.set(run_id)
    try:
        yield
    finally:
        current_run_id.reset(token)

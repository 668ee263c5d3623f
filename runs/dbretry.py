"""Transient database errors and retrying past them.

A connection the server dropped (a terminated backend, a restart or failover), a deadlock, a
lock or statement timeout: `OperationalError` and `InterfaceError` say nothing is wrong with
the work itself, so work that commits atomically is retried from its start on a new
connection. Errors about the data (`IntegrityError`, `DataError`, `ProgrammingError`) are
never retried: the same statement would fail the same way.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT = (OperationalError, InterfaceError)
# Tries in all, and the first pause between them (doubled each time, with jitter): enough to
# ride out a dropped connection or a server restart, short enough not to hold a worker long.
ATTEMPTS = 4
BACKOFF = 0.5


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


def reset_connection() -> None:
    """Let go of this thread's connection, broken or not, so the next query opens a new one.
    With psycopg's pool, also test the idle connections it holds: the event that broke this
    one (a restart, a terminated backend) may have broken them too."""
    connection.close()
    pool = getattr(connection, "pool", None)
    if pool is not None:
        try:
            pool.check()
        except Exception:
            logger.warning("Checking the database connection pool failed", exc_info=True)


def retry_transient(
    func: Callable[[], T], *, what: str, attempts: int = ATTEMPTS, backoff: float = BACKOFF
) -> T:
    """Call `func`, again on a new connection after a transient error, up to `attempts`
    times with exponential backoff. `func` must be safe to repeat: it commits whole or not
    at all, and a repeat finds what an earlier try committed (a COMMIT whose answer was lost
    may have happened). Inside a transaction nothing can be retried here: the error goes up
    to whoever owns the transaction."""
    for attempt in range(1, attempts + 1):
        try:
            return func()
        except TRANSIENT as exc:
            if connection.in_atomic_block or attempt == attempts:
                raise
            pause = backoff * 2 ** (attempt - 1) * (1 + random.random() / 2)
            logger.warning(
                "Database error during %s (try %d of %d), retrying in %.1f s: %s",
                what,
                attempt,
                attempts,
                pause,
                exc,
            )
            reset_connection()
            time.sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises

"""Riding out a Redis outage in the long-lived processes.

Redis holds the queues and carries the live events; runs, their state and their events live in
the database. A worker that loses Redis therefore has nothing to give up: it can keep working
on what it holds and wait for Redis to return. rq does not: its worker loop quits on the first
connection error outside the dequeue (a heartbeat while a job runs, registry maintenance), and
a work horse that cannot record its result exits with an error. `OutageRetry` on the worker's
connection makes every one of those calls wait for Redis instead, so rq's code carries on
unchanged when Redis is back. `REDIS` says once per process that Redis is gone and once that it
is back, however many clients and threads run into it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis.backoff import ExponentialBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

T = TypeVar("T")

# While Redis is unreachable, a waiting call tries again at most this often (seconds), so it
# notices the return within about that long.
RETRY_CAP = 1.0
# How often a process that is still waiting says so again (seconds).
REMIND_EVERY = 60.0


class Outage:
    """One process's view of whether Redis is reachable, for logging once per outage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None
        self.reminded_at = 0.0
        # Called (in the thread that noticed) when an outage ends.
        self.on_recovery: list[Callable[[], None]] = []
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A work horse is forked from a worker whose threads (rq's pub/sub listener) may
        # hold the lock at that instant; the horse starts with a fresh one, and the parent's
        # recovery callbacks are the parent's business.
        self._lock = threading.Lock()
        self.on_recovery = []

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, *, waiting: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if self.since is None:
                self.since = self.reminded_at = now
                then = "waits for it to come back" if waiting else "carries on without it"
                logger.warning(
                    "Redis is unreachable (%s); this process (pid %s) %s.",
                    describe(exc),
                    os.getpid(),
                    then,
                )
            elif waiting and now - self.reminded_at >= REMIND_EVERY:
                self.reminded_at = now
                logger.warning(
                    "Redis is still unreachable after %.0f s (%s); pid %s still waits.",
                    now - self.since,
                    describe(exc),
                    os.getpid(),
                )

    def recovered(self) -> None:
        with self._lock:
            if self.since is None:
                return
            gone_for = time.monotonic() - self.since
            logger.warning("Redis is back after %.1f s; pid %s carries on.", gone_for, os.getpid())
            self.since = None
        for callback in list(self.on_recovery):
            callback()


REDIS = Outage()

# Set when this process is stopping: from then on nothing waits for Redis, so a stop during an
# outage is not held up by it.
STOPPING = threading.Event()


class OutageRetry(Retry):
    """A redis-py retry policy that retries connection errors and timeouts until Redis answers
    again (or the process is stopping), trying at most every RETRY_CAP seconds.

    Installed on a worker's connection (`wait_out_outages`), it turns every Redis call rq makes
    into one that waits out an outage. A single failure is not an outage: after Redis restarts,
    each pooled connection fails once and the retry reconnects at once.
    """

    def __init__(self) -> None:
        super().__init__(ExponentialBackoff(cap=RETRY_CAP, base=0.05), retries=-1)

    def call_with_retry(  # type: ignore[override]
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        self._backoff.reset()
        failures = 0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                if STOPPING.is_set():
                    raise
                if failures > 1:
                    REDIS.failed(error, waiting=True)
                time.sleep(self._backoff.compute(failures))
            else:
                if failures > 1:
                    REDIS.recovered()
                return result


def wait_out_outages(client: Any) -> None:
    """Make every call on this redis-py client (and on its connection pool's connections)
    wait for Redis through an outage instead of raising."""
    client.set_retry(OutageRetry())


def describe(exc: BaseException) -> str:
    """An exception's message for a log line that goes on after it."""
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")

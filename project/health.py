"""Is this Intake able to work? The database, Redis and the RQ workers, each checked with a
bound on how long it may take, so that a dead part is reported within about CHECK_TIMEOUT
seconds instead of hanging the caller (a load balancer's probe, an operator's curl).

`check_health()` is the one function behind `/healthz` (project/views.py) and the JSON API's
health endpoint; `live_worker_count()` also feeds `/metrics`. It lives in project/ because it
wires the parts together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, Worker

from project.settings import redis_kwargs
from runs.queue import QUEUE_NAME

# Seconds each check may take before it is reported as failed.
CHECK_TIMEOUT = 1.5
# A worker that has not beaten for longer than this is taken for dead. An idle RQ worker beats
# once per dequeue wait (its worker_ttl less 15 s), and RQ lets its key expire worker_ttl + 60 s
# after the last beat: the same limit, so an idle worker is never called dead.
WORKER_ALIVE_SECONDS = 420 + 60
# A check's detail (an exception's message) is cut to this many characters.
DETAIL_MAX_CHARS = 300


@dataclass(frozen=True)
class Check:
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "latencyMs": self.latency_ms, "detail": self.detail}


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    checks: dict[str, Check] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """camelCase, as every JSON Intake sends."""
        return {
            "ok": self.ok,
            "status": "ok" if self.ok else "unavailable",
            "checks": {name: check.as_json() for name, check in self.checks.items()},
        }


class CheckFailed(Exception):
    """A check reached its part, and the answer is bad (no live worker)."""


def health_redis() -> redis.Redis:
    """A client of REDIS_URL that gives up quickly: no retries, short socket timeouts.
    (The workers' own connections wait out an outage, runs.outage; a probe must not.)"""
    kwargs = redis_kwargs(settings.REDIS_URL)
    kwargs.update(
        socket_connect_timeout=CHECK_TIMEOUT,
        socket_timeout=CHECK_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return redis.Redis(**kwargs)


def live_worker_count(client: redis.Redis, queue_name: str = QUEUE_NAME) -> int:
    """RQ workers registered on the queue that beat within WORKER_ALIVE_SECONDS. A worker
    killed outright stays registered until RQ cleans it up: its last beat tells."""
    keys = list(Worker.all_keys(queue=Queue(queue_name, connection=client)))
    if not keys:
        return 0
    with client.pipeline(transaction=False) as pipeline:
        for key in keys:
            pipeline.hget(key, "last_heartbeat")
        beats = pipeline.execute()
    now = datetime.now(UTC)
    alive = 0
    for raw in beats:
        if not raw:
            continue  # its key expired: the worker is gone
        try:
            beat = datetime.fromisoformat(raw.decode()).replace(tzinfo=UTC)
        except ValueError:
            continue
        if (now - beat).total_seconds() <= WORKER_ALIVE_SECONDS:
            alive += 1
    return alive


def _check_database() -> str:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # This runs on a thread of its own: give its connection back (to the pool) now.
        connections.close_all()
    return ""


def _check_redis() -> str:
    with health_redis() as client:
        client.ping()
    return ""


def _check_workers() -> str:
    with health_redis() as client:
        count = live_worker_count(client)
    if not count:
        raise CheckFailed(
            f"no live RQ worker on the {QUEUE_NAME!r} queue: runs wait until one starts"
        )
    return f"{count} live"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "redis": _check_redis,
    "workers": _check_workers,
}

# At most one check of each kind in flight per process: a check stuck on a dead part (a
# database connect that ignores our timeout) is not started again by every probe that follows,
# so a probing load balancer cannot pile up threads.
_in_flight: dict[str, threading.Lock] = {name: threading.Lock() for name in CHECKS}


class _Running:
    """One check running on a thread of its own: its detail or exception, and when it
    returned (its latency is its own, not the time spent waiting for the checks before it)."""

    def __init__(self, name: str, func: Callable[[], str], lock: threading.Lock) -> None:
        self.began = time.monotonic()
        self.ended: float | None = None
        self.detail = ""
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._func = func
        self._lock = lock
        threading.Thread(target=self._run, name=f"health-{name}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.detail = self._func()
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended = time.monotonic()
            self._done.set()
            self._lock.release()

    def result(self) -> Check:
        if not self._done.wait(max(0.0, self.began + CHECK_TIMEOUT - time.monotonic())):
            latency = round((time.monotonic() - self.began) * 1000, 1)
            return Check(
                ok=False, latency_ms=latency, detail=f"no answer within {CHECK_TIMEOUT:g} s"
            )
        latency = round(((self.ended or self.began) - self.began) * 1000, 1)
        if self.error is not None:
            return Check(ok=False, latency_ms=latency, detail=_describe(self.error))
        return Check(ok=True, latency_ms=latency, detail=self.detail)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, CheckFailed):
        text = f"{type(exc).__name__}: {text}"
    return text[:DETAIL_MAX_CHARS]


def check_health() -> HealthReport:
    """Check the database (SELECT 1), Redis (PING) and that a worker is alive, at once, each
    within CHECK_TIMEOUT seconds; ok when all three are."""
    running: dict[str, _Running | Check] = {}
    for name, func in CHECKS.items():
        lock = _in_flight[name]
        if lock.acquire(blocking=False):
            running[name] = _Running(name, func, lock)
        else:
            running[name] = Check(
                ok=False, latency_ms=0.0, detail="the previous check has not returned yet"
            )
    checks = {
        name: item if isinstance(item, Check) else item.result() for name, item in running.items()
    }
    return HealthReport(ok=all(check.ok for check in checks.values()), checks=checks)

"""The RQ worker class Intake runs (settings.RQ["WORKER_CLASS"])."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string
from rq import Worker, worker_registration

from runs import queue as queue_module
from runs import tasks
from runs.logcontext import run_logging
from runs.outage import REDIS, STOPPING, wait_out_outages

logger = logging.getLogger(__name__)

# How long a stopping worker waits for its scheduler process before killing it (seconds).
SCHEDULER_STOP_TIMEOUT = 5.0


class IntakeWorker(Worker):
    """rq's forking worker, made to ride out a Redis outage.

    Every Redis call of a worker that works (not of the read-only copies that dashboards
    build) waits for Redis through an outage (runs.outage): the worker loop, its heartbeats
    while a job runs, the work horse recording its result, the scheduler process. After an
    outage the worker registers itself again, since Redis may have come back empty. On a stop
    request nothing waits for Redis any more, so a stop during an outage is quick.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        connection = kwargs.get("connection")
        if connection is not None and kwargs.get("prepare_for_work", True):
            wait_out_outages(connection)
        super().__init__(*args, **kwargs)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        warm_up()
        REDIS.on_recovery.append(self._register_again)
        return super().work(*args, **kwargs)

    def execute_job(self, job, queue):  # type: ignore[no-untyped-def]
        # RQ's own lines about a run's job (started, completed, failed), in the worker and in
        # its work horse (forked inside this block), carry the run's id in JSON logs.
        with run_logging(queue_module.run_id_of(job)):
            return super().execute_job(job, queue)

    def fork_work_horse(self, job, queue):  # type: ignore[no-untyped-def]
        # A forked work horse inherits the parent's open database connections; two processes
        # talking over one socket corrupt each other's conversation. Close them first so each
        # horse opens its own.
        connections.close_all()
        return super().fork_work_horse(job, queue)

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):  # type: ignore[no-untyped-def]
        # The run hears at once what became of its work (a part retried, or the run ended),
        # rather than from the stale check minutes later.
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        tasks.work_horse_died(job, ret_val)

    def request_stop(self, signum: int, frame: Any) -> None:
        STOPPING.set()
        super().request_stop(signum, frame)

    def set_shutdown_requested_date(self) -> None:
        # Informational only; rq calls it from the signal handler, where an error would
        # surface in whatever the worker was doing (waiting for its busy horse).
        with contextlib.suppress(redis.RedisError):
            super().set_shutdown_requested_date()

    def maintain_heartbeats(self, job, execution):  # type: ignore[no-untyped-def]
        # Raises only once stopping (otherwise it waits for Redis): keep waiting for the horse
        # rather than leave it running on its own.
        try:
            super().maintain_heartbeats(job, execution)
        except redis.RedisError as exc:
            logger.warning("Worker %s: heartbeat not recorded (%s)", self.name, exc)

    def stop_scheduler(self) -> None:
        # rq waits for its scheduler process without a limit; during an outage that process
        # waits for Redis and would hold the stop up for as long.
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.pid:
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(SCHEDULER_STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join()

    def teardown(self) -> None:
        try:
            super().teardown()
        except redis.RedisError as exc:
            # Stopping while Redis is unreachable: the worker's key expires by itself.
            logger.warning("Worker %s: could not deregister from Redis (%s)", self.name, exc)

    def _register_again(self) -> None:
        """After an outage: put this worker back into Redis's worker registry (a Redis that
        restarted without its data has forgotten it) so `Worker.all()` and the dashboards see
        it. Runs in whichever thread noticed that Redis is back."""
        if self.is_horse or self.birth_date is None:
            return
        self.last_heartbeat = self.last_heartbeat or self.birth_date
        try:
            with self.connection.pipeline() as pipeline:
                pipeline.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
                pipeline.expire(self.key, self.worker_ttl + 60)
                worker_registration.register(self, pipeline)
                pipeline.execute()
        except redis.RedisError as exc:
            logger.warning("Worker %s: could not register again (%s)", self.name, exc)


def warm_up() -> None:
    """Run the INTAKE_WORKER_WARM_UP hooks, once, in the worker before it forks any work horse.

    Every job runs in a work horse forked from the worker, so whatever a job would load on
    first use (modules imported lazily, tables built on demand) is loaded again by every
    horse; loaded here, the horses inherit it (one horse per chunk: docs/performance.md has
    what it saves). A hook must not leave a database connection open.

    Then what the worker holds is frozen out of the garbage collector: a horse's first full
    collection would otherwise walk every object it inherited and, by touching their headers,
    copy each page holding one out of the shared memory, per horse (docs/performance.md)."""
    for path in settings.INTAKE_WORKER_WARM_UP:
        import_string(path)()
    _prepare_connections()
    connections.close_all()
    gc.collect()  # what the hooks left as garbage goes now, not frozen forever
    gc.freeze()


def _prepare_connections() -> None:
    """What a PostgreSQL connection is opened with, prepared without opening one (a horse
    must not inherit a connection or a pool): psycopg's pool, which Django imports when a
    pooled database's first connection is opened, and the adapters Django builds for the
    first (its connection parameters). Every work horse opens its own connection, and would
    build them again before the run's first query."""
    for connection in connections.all():
        if connection.vendor != "postgresql":
            continue
        if connection.settings_dict.get("OPTIONS", {}).get("pool"):
            import psycopg_pool  # noqa: F401
        connection.get_connection_params()

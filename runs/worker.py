"""The RQ worker class Intake runs (settings.RQ["WORKER_CLASS"])."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string
from rq import Worker

from runs import tasks


class IntakeWorker(Worker):
    def work(self, *args: Any, **kwargs: Any) -> bool:
        warm_up()
        return super().work(*args, **kwargs)

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


def warm_up() -> None:
    """Run the INTAKE_WORKER_WARM_UP hooks, once, in the worker before it forks any work horse.

    Every job runs in a work horse forked from the worker, so whatever a job would load on
    first use (modules imported lazily, tables built on demand) is loaded again by every
    horse; loaded here, the horses inherit it. In an ingest that was ~3 % of the chunks' CPU
    (one horse per chunk). A hook must not leave a database connection open."""
    for path in settings.INTAKE_WORKER_WARM_UP:
        import_string(path)()
    connections.close_all()

"""The RQ worker class Intake runs (settings.RQ["WORKER_CLASS"])."""

from __future__ import annotations

from django.db import connections
from rq import Worker


class IntakeWorker(Worker):
    def fork_work_horse(self, job, queue):  # type: ignore[no-untyped-def]
        # A forked work horse inherits the parent's open database connections; two processes
        # talking over one socket corrupt each other's conversation. Close them first so each
        # horse opens its own.
        connections.close_all()
        return super().fork_work_horse(job, queue)

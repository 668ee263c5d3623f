"""`manage.py cron`: Intake's scheduler process (the start command runs one).

It does two things on timers, until SIGTERM or Ctrl-C:

- the stale-run check (`runs.stale.run_reap_stale`) every INTAKE_REAPER_INTERVAL seconds, in
  this process: it needs the database only, so runs whose worker died are ended even when no
  worker is alive (a queued reaper job would wait for one) and while Redis is down;
- RQ's cron schedule from project/cron.py (the daily payload cleanup, the due-schedules tick
  every minute), enqueued by rq's CronScheduler. rq's own loop (`manage.py rqcron`) dies on
  the first Redis error; this one says once that Redis is unreachable, keeps the stale-run
  check going, and carries on with the schedule when Redis is back.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

import django_rq
import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections
from django_rq.cron import DjangoCronScheduler
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.exceptions import SchedulerNotFound

from runs import stale
from runs.outage import REDIS

logger = logging.getLogger("project.cron")

CONFIG = "project.cron"
# While Redis is unreachable, try the schedule again this often (seconds).
REDIS_RETRY_SECONDS = 2.0


class CronLoop:
    def __init__(self, scheduler: DjangoCronScheduler) -> None:
        self.scheduler = scheduler
        self.stop = threading.Event()
        self.registered = False
        self.next_reap = 0.0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if time.monotonic() >= self.next_reap:
                    self.next_reap = time.monotonic() + settings.INTAKE_REAPER_INTERVAL
                    reap()
                wait = min(self.schedule(), self.next_reap - time.monotonic())
                self.stop.wait(max(0.0, wait))
        finally:
            self.deregister()

    def schedule(self) -> float:
        """Enqueue the RQ cron jobs that are due; the seconds until there is more to do."""
        try:
            if not self.registered:
                self.scheduler.register_birth()
                self.registered = True
            if self.scheduler.enqueue_jobs():
                self.scheduler.save()
            # Also puts the scheduler back into a Redis that came back empty.
            self.scheduler.heartbeat()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            REDIS.failed(exc, waiting=False)
            return REDIS_RETRY_SECONDS
        REDIS.recovered()
        return self.scheduler.calculate_sleep_interval()

    def deregister(self) -> None:
        if not self.registered:
            return
        # Redis down, or it forgot us: the registry entry expires by itself.
        with contextlib.suppress(redis.RedisError, SchedulerNotFound):
            self.scheduler.register_death()


def reap() -> None:
    """One stale-run check. A failure (the database unreachable) is logged, and the next
    check comes at the next interval."""
    try:
        stale.run_reap_stale()  # logs each run it ends
    except Exception:
        logger.exception("The stale-run check failed; trying again in %s s", _interval())
    finally:
        # Between checks this process holds no database connection (nor a pool slot).
        connections.close_all()


def _interval() -> int:
    return int(settings.INTAKE_REAPER_INTERVAL)


class Command(BaseCommand):
    help = (
        "Run Intake's scheduled work until SIGTERM or Ctrl-C: end stale runs every "
        "INTAKE_REAPER_INTERVAL seconds in this process (no worker or Redis needed), and "
        "enqueue the RQ cron jobs of project/cron.py (the daily payload cleanup, the due "
        "schedules every minute). Survives Redis outages. Run one per installation (more are "
        "harmless)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        pass

    def handle(self, *args: Any, **options: Any) -> None:
        level = logging.DEBUG if options["verbosity"] >= 2 else logging.INFO
        scheduler = DjangoCronScheduler(logging_level=level)
        scheduler.load_config_from_file(CONFIG)
        if scheduler.connection is None:  # no RQ cron job configured
            scheduler.connection = django_rq.get_connection("default")
        # One try per call: the loop retries itself, and redis-py's default retries would
        # hold each attempt (and the stale-run check behind it) for seconds.
        scheduler.connection.set_retry(Retry(NoBackoff(), 0))

        loop = CronLoop(scheduler)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            loop.stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, request_stop)
        logger.info(
            "Cron started: the stale-run check every %s s, and %d RQ cron job(s) from %s.",
            _interval(),
            len(scheduler.get_jobs()),
            CONFIG,
        )
        loop.run()
        logger.info("Cron stopped.")

"""`manage.py relay_events`: publish the outbox to the Redis Stream until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from runs.relay import Relay

logger = logging.getLogger("runs.relay")


class Command(BaseCommand):
    help = (
        "Publish the events the outbox holds to the Redis Stream INTAKE_EVENTS_STREAM "
        "(XADD MAXLEN ~ INTAKE_EVENTS_MAXLEN), in order, and mark them published; poll every "
        "INTAKE_OUTBOX_POLL_SECONDS when idle; prune published rows after "
        "INTAKE_OUTBOX_KEEP_HOURS. Runs until SIGTERM or Ctrl-C; safe to restart (what was "
        "not marked is published again) and to run twice (one publishes, the other waits). "
        "`manage.py start` runs one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="publish what is pending now and exit (instead of running until stopped)",
        )

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5
        )
        relay = Relay(client)
        if once:
            try:
                while relay.relay_once():
                    pass
                if not relay.held:
                    self.stderr.write("Another relay holds the lock; nothing published.")
            finally:
                relay.release_lock()
            self.stdout.write(f"Published {relay.published} events.")
            return

        def request_stop(signum: int, frame: FrameType | None) -> None:
            relay.stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, request_stop)
        logger.info(
            "Event relay started: publishing to %s (about %s entries kept).",
            settings.INTAKE_EVENTS_STREAM,
            settings.INTAKE_EVENTS_MAXLEN,
        )
        relay.run()
        logger.info("Event relay stopped after publishing %d events.", relay.published)

"""`manage.py consume_events`: read Intake's event stream as a member of a consumer group and
print each event once, as a line of JSON (runs.consumer; docs/events.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.consumer import EventConsumer


class Command(BaseCommand):
    help = (
        "Read the event stream (INTAKE_EVENTS_STREAM) as a member of a consumer group "
        "(XREADGROUP), print each event once as a line of JSON (an eventId handled before is "
        "skipped: the relay may deliver twice) and acknowledge it (XACK). Starts with what was "
        "delivered to this consumer and not acknowledged. Runs until Ctrl-C, --count events "
        "or, with --drain, the first wait that brings nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--group", default="intake-consumers", help="consumer group (default: %(default)s)"
        )
        parser.add_argument(
            "--consumer",
            default=f"{socket.gethostname()}-{os.getpid()}",
            help="this consumer's name in the group (default: host-pid); reuse it after a "
            "crash to get back what it had not acknowledged",
        )
        parser.add_argument(
            "--count",
            type=int,
            default=None,
            help="stop after handling this many events (default: run until stopped)",
        )
        parser.add_argument(
            "--block",
            type=int,
            default=5000,
            help="milliseconds each read waits for new events (default: %(default)s)",
        )
        parser.add_argument(
            "--drain",
            action="store_true",
            help="stop when a read has waited --block milliseconds and got nothing",
        )
        parser.add_argument(
            "--from",
            dest="start",
            choices=["first", "new"],
            default="first",
            help="where a group that does not exist yet starts: the oldest event the "
            "stream keeps, or only new ones (default: %(default)s)",
        )

    def handle(
        self,
        *args: Any,
        group: str,
        consumer: str,
        count: int | None,
        block: int,
        drain: bool,
        start: str,
        **options: Any,
    ) -> None:
        if (count is not None and count < 1) or block < 1:
            raise CommandError("--count and --block take a positive number.")
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=block / 1000 + 10, socket_connect_timeout=5
        )

        def show(event: dict[str, Any]) -> None:
            self.stdout.write(json.dumps(event, separators=(",", ":")))
            self.stdout.flush()

        reader = EventConsumer(client, group=group, name=consumer, handle=show)
        stopping = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, request_stop)
        try:
            reader.ensure_group("0" if start == "first" else "$")
            while not stopping and (count is None or reader.handled < count):
                wanted = 100 if count is None else min(100, count - reader.handled)
                waited = not reader.backlog  # a read of the backlog does not wait
                if not reader.poll(count=wanted, block_ms=block) and drain and waited:
                    break
        except redis.RedisError as exc:
            raise CommandError(f"Redis at {settings.REDIS_URL} failed: {exc}") from exc
        if options["verbosity"] >= 1:
            self.stderr.write(
                f"Handled {reader.handled} events ({reader.duplicates} duplicates skipped)."
            )

"""The outbox relay: publishes the outbox's rows (runs.outbox) to the Redis Stream, in order,
and marks them published. `manage.py relay_events` runs it; `manage.py start` supervises one.

Each round reads the oldest unpublished rows, appends them to the stream in one pipeline
(XADD … MAXLEN ~ INTAKE_EVENTS_MAXLEN), then marks them published. A relay that dies between
the two publishes those rows again when it (or another) comes back: delivery is at least
once, and consumers dedupe by eventId (docs/events.md).

Only the holder of a Redis lock publishes, so two relays (a restart overlapping the old
process, a second machine) neither interleave nor publish a row twice while the holder is
alive; the lock expires LOCK_SECONDS after a holder that died, and another takes over.
Published rows are deleted after INTAKE_OUTBOX_KEEP_HOURS.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone
from redis.exceptions import LockError

from runs.models import OutboxEvent
from runs.outage import REDIS

logger = logging.getLogger(__name__)

# A lock not renewed for this long is free again (its holder died); each round renews it.
LOCK_SECONDS = 10
# How often old published rows are pruned, and how many one DELETE takes at most.
PRUNE_EVERY_SECONDS = 300.0
PRUNE_SLICE = 10_000
# After a failure (Redis or the database unreachable), wait this long before trying again.
RETRY_SECONDS = 2.0


def pending_events(limit: int) -> list[OutboxEvent]:
    """The oldest unpublished rows, in the order they were written."""
    return list(OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")[:limit])


def publish(client: redis.Redis, events: list[OutboxEvent]) -> None:
    """Append the events to the stream, in order, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(
            settings.INTAKE_EVENTS_STREAM,
            event.envelope(),  # type: ignore[arg-type]
            maxlen=settings.INTAKE_EVENTS_MAXLEN,
            approximate=True,
        )
    pipe.execute()


def mark_published(events: list[OutboxEvent]) -> int:
    return OutboxEvent.objects.filter(
        id__in=[e.pk for e in events], published_at__isnull=True
    ).update(published_at=timezone.now())


def prune_published(*, now: Any = None) -> int:
    """Delete the rows published more than INTAKE_OUTBOX_KEEP_HOURS ago, a slice at a time
    (one short statement each, however many there are). Returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.INTAKE_OUTBOX_KEEP_HOURS)
    old = OutboxEvent.objects.filter(published_at__lt=cutoff)
    deleted = 0
    while True:
        ids = list(old.order_by("published_at").values_list("id", flat=True)[:PRUNE_SLICE])
        if not ids:
            return deleted
        deleted += OutboxEvent.objects.filter(id__in=ids).delete()[0]


def outbox_lag_seconds() -> float:
    """How old the oldest unpublished event is, in seconds (0 when there is none): the
    relay's lag, for monitoring."""
    oldest = (
        OutboxEvent.objects.filter(published_at__isnull=True)
        .order_by("id")
        .values_list("occurred_at", flat=True)
        .first()
    )
    return max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0


class Relay:
    """One relay process's loop (or a test's thread): `run()` until `stop` is set."""

    def __init__(self, client: redis.Redis, *, stop: threading.Event | None = None) -> None:
        self.client = client
        self.stop = stop or threading.Event()
        self.lock = client.lock(
            f"{settings.INTAKE_EVENTS_STREAM}:relay-lock", timeout=LOCK_SECONDS, blocking=False
        )
        self.held = False
        self.pruned_at = 0.0
        self.published = 0

    def hold_lock(self) -> bool:
        """Take the lock, or renew it when held; False when another relay holds it."""
        if self.held:
            try:
                self.lock.reacquire()
                return True
            except LockError:
                # It expired (this process stalled longer than LOCK_SECONDS): take it afresh,
                # if nobody else did meanwhile.
                self.held = False
        self.held = bool(self.lock.acquire())
        return self.held

    def release_lock(self) -> None:
        if self.held:
            self.held = False
            with contextlib.suppress(LockError, redis.RedisError):
                self.lock.release()

    def relay_once(self) -> int:
        """One round: publish and mark up to INTAKE_OUTBOX_BATCH rows if this relay holds the
        lock. Returns how many it published."""
        if not self.hold_lock():
            return 0
        events = pending_events(settings.INTAKE_OUTBOX_BATCH)
        if not events:
            return 0
        publish(self.client, events)
        mark_published(events)
        self.published += len(events)
        return len(events)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                wait = self._round()
                if wait:
                    self.stop.wait(wait)
        finally:
            self.release_lock()

    def _round(self) -> float:
        """One round and its housekeeping; the seconds to wait before the next (0: go on)."""
        try:
            count = self.relay_once()
            REDIS.recovered()
            if self.held and time.monotonic() - self.pruned_at >= PRUNE_EVERY_SECONDS:
                self.pruned_at = time.monotonic()
                pruned = prune_published()
                if pruned:
                    logger.info("Pruned %d published outbox rows.", pruned)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            REDIS.failed(exc, waiting=False)
            self.held = False
            return RETRY_SECONDS
        except DatabaseError:
            logger.exception("The outbox relay could not read or mark events; trying again.")
            connections.close_all()
            return RETRY_SECONDS
        return 0.0 if count >= settings.INTAKE_OUTBOX_BATCH else settings.INTAKE_OUTBOX_POLL_SECONDS

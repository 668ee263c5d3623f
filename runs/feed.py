"""The live feed's publishing side and django-eventstream's hooks: RunEvent rows published
over Redis pub/sub, and read back for replay.

- Workers publish through Redis pub/sub (EVENTSTREAM_REDIS); the ASGI web process's listener
  (runs/stream.py) hands each event to the streams of that run's channel, `run-<id>`.
  Publishing never holds a run up: short timeouts, and while Redis is unreachable `Publisher`
  skips it (the events are stored; the streams read them from the database meanwhile).
- Replay on reconnect (Last-Event-ID, `?after=`) reads RunEvent rows: `RunEventStorage` is the
  storage django-eventstream asks, so no event is kept twice.
- Idle streams hold no database connection: each database touch here closes its connection
  afterwards (with psycopg's pool, that returns it to the pool).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django_eventstream.channelmanager import ChannelManagerBase
from django_eventstream.event import Event
from django_eventstream.storage import StorageBase

from runs.outage import describe

logger = logging.getLogger(__name__)

# The pub/sub channel django-eventstream's send_event publishes on; Publisher writes it the
# way send_event does, and the web processes' listeners read it (see pubsub_channel).
PUBSUB_CHANNEL = "events_channel"
# Every RunEvent goes out as the SSE default event type, so a plain EventSource `onmessage`
# sees it; the envelope's `type` says what happened.
SSE_EVENT_NAME = "message"


def pubsub_channel() -> str:
    """The pub/sub channel of this Redis db. Channels are server-wide, whatever the db: an
    Intake sharing the Redis server under another db number would otherwise get this one's
    events in its streams of runs with the same ids (and take them as its own when their
    seq comes next). Db 0 keeps the library's name."""
    db = int(settings.EVENTSTREAM_REDIS.get("db", 0))
    return f"{PUBSUB_CHANNEL}:{db}" if db else PUBSUB_CHANNEL


def channel_for(run_id: int) -> str:
    return f"run-{run_id}"


def run_id_for(channel: str) -> int | None:
    prefix, _, number = channel.partition("-")
    if prefix != "run" or not number.isdigit():
        return None
    return int(number)


@contextmanager
def short_lived_connection() -> Iterator[None]:
    """Close this thread's database connection when done, unless a transaction is open."""
    try:
        yield
    finally:
        if not connection.in_atomic_block:
            connection.close()


def encode(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, cls=DjangoJSONEncoder, separators=(",", ":"))


def broadcast(envelope: dict[str, Any]) -> None:
    """Publish a committed event to every web process. Called from transaction.on_commit.

    Never raises and never waits long: the event is already stored, and subscribers catch up
    from the database (replay on reconnect, and the degraded-mode re-reads), so while Redis is
    unreachable a run goes on at full speed without pushing its events."""
    PUBLISHER.publish(channel_for(envelope["runId"]), encode(envelope), int(envelope["id"]))


class Publisher:
    """Publishes events on the pub/sub channel the web processes' listeners read, as
    django-eventstream's send_event does, but on a connection of its own with short timeouts
    and no retries (redis-py's default retries took seconds per event with Redis down), and
    with a circuit breaker: after a failure it skips publishing, and a background thread
    pings Redis every PROBE_SECONDS until it answers, so no run waits on a dead connection
    and pushing resumes as soon as Redis is back (not after a fixed pause, which left the
    events of the first seconds after a restart to the streams' next gap fill). It then
    pushes the latest skipped event of each run, so open streams fill the gap from the
    database at once. It says so once per outage, not once per event."""

    TIMEOUT = 0.5  # seconds, to connect and for the answer
    PROBE_SECONDS = 0.25

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._probing = False
        # The latest message not pushed, per channel: re-pushed when Redis is back.
        self._missed: dict[str, str] = {}
        self.skipped = 0
        ref = weakref.ref(self)

        def after_fork() -> None:
            publisher = ref()
            if publisher is not None:
                publisher._after_fork()

        os.register_at_fork(after_in_child=after_fork)

    def _after_fork(self) -> None:
        # The probe thread (and a lock it may hold) stays in the parent: the child's next
        # skipped publish starts a probe of its own.
        self._lock = threading.Lock()
        self._probing = False

    def _redis(self) -> Any:
        # redis-py's pool notices a fork and reconnects, so one client serves every process.
        if self._client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            kwargs = {
                **settings.EVENTSTREAM_REDIS,
                "socket_timeout": self.TIMEOUT,
                "socket_connect_timeout": self.TIMEOUT,
                "retry": Retry(NoBackoff(), 0),
            }
            self._client = redis.Redis(**kwargs)
        return self._client

    def publish(self, channel: str, data: str, event_id: int) -> bool:
        """True when the event went out on Redis; False when it was skipped or failed."""
        fields = {"channel": channel, "event_type": SSE_EVENT_NAME, "data": data}
        message = json.dumps({**fields, "pub_id": str(event_id)})
        return self._publish(channel, message)

    def _publish(self, channel: str, message: str) -> bool:
        with self._lock:
            if self._down_since is not None:
                self._skip(channel, message)
                return False
        try:
            self._redis().publish(pubsub_channel(), message)
        except Exception as exc:
            with self._lock:
                first = self._down_since is None
                if first:
                    self._down_since = time.monotonic()
                self._skip(channel, message)
            if first:
                logger.warning(
                    "Live events are not pushed: Redis is unreachable (%s). They are stored; "
                    "open pages read them from the database meanwhile. Checking every %g s.",
                    describe(exc),
                    self.PROBE_SECONDS,
                )
            return False
        return True

    def _skip(self, channel: str, message: str) -> None:
        """Under the lock: count a skipped event and make sure a probe is running."""
        self.skipped += 1
        self._missed[channel] = message
        if not self._probing:
            self._probing = True
            threading.Thread(target=self._probe, name="intake-publish-probe", daemon=True).start()

    def _probe(self) -> None:
        while True:
            time.sleep(self.PROBE_SECONDS)
            try:
                self._redis().ping()
            except Exception:
                continue
            with self._lock:
                since, self._down_since = self._down_since, None
                missed, self._missed = self._missed, {}
                skipped, self.skipped = self.skipped, 0
                self._probing = False
            for message in missed.values():
                try:
                    self._redis().publish(pubsub_channel(), message)
                except Exception:
                    break  # down again: the next event notices and probes anew
            if since is not None:
                logger.warning(
                    "Live events are pushed again, after %.0f s (%d were not pushed meanwhile).",
                    time.monotonic() - since,
                    skipped,
                )
            return


PUBLISHER = Publisher()


def warm_up() -> None:
    """Worker warm-up hook (settings.INTAKE_WORKER_WARM_UP): publishing imports redis on
    first use, which every work horse would pay again."""
    import redis  # noqa: F401


class RunEventStorage(StorageBase):
    """django-eventstream storage over RunEvent rows."""

    def append_event(self, channel: str, event_type: str, data: str) -> Event:
        # runs.transitions.publish_event has already written the row in its transaction (this
        # runs after commit); adopt its id rather than store the event a second time.
        return Event(channel, event_type, data, id=int(json.loads(data)["id"]))

    def get_events(self, channel: str, last_id: int, limit: int = 100) -> list[Event]:
        from runs.models import RunEvent

        run_id = run_id_for(channel)
        if run_id is None:
            return []
        with short_lived_connection():
            rows = list(
                RunEvent.objects.filter(run_id=run_id, id__gt=int(last_id)).order_by("id")[:limit]
            )
        return [Event(channel, SSE_EVENT_NAME, encode(row.envelope()), id=row.pk) for row in rows]

    def get_current_id(self, channel: str) -> int:
        from runs.models import RunEvent

        run_id = run_id_for(channel)
        if run_id is None:
            return 0
        with short_lived_connection():
            last = (
                RunEvent.objects.filter(run_id=run_id).order_by("-id").values_list("id", flat=True)
            )
            return last.first() or 0


class RunChannelManager(ChannelManagerBase):
    """One channel per run; only the run's owner may read it."""

    def get_channels_for_request(self, request: Any, view_kwargs: dict[str, Any]) -> set[str]:
        return {view_kwargs["channel"]}

    def can_read_channel(self, user: Any, channel: str) -> bool:
        from runs.models import IngestionRun

        run_id = run_id_for(channel)
        if user is None or run_id is None:
            return False
        with short_lived_connection():
            return IngestionRun.objects.filter(pk=run_id, owner_id=user.pk).exists()

    def is_channel_reliable(self, channel: str) -> bool:
        return True

"""The live feed: RunEvent rows delivered over SSE by django-eventstream.

- Workers publish through Redis pub/sub (EVENTSTREAM_REDIS); the ASGI web process's listener
  hands each event to the streams of that run's channel, `run-<id>`. Publishing never holds a
  run up: short timeouts, and while Redis is unreachable `Publisher` skips it (the events are
  stored; the streams read them from the database meanwhile).
- Replay on reconnect (Last-Event-ID, `?after=`) reads RunEvent rows: `RunEventStorage` is the
  storage django-eventstream asks, so no event is kept twice.
- django-eventstream's Redis listener dies silently when its connection drops and never
  resubscribes; `ResilientRedisListener` replaces it, tries to reconnect every fraction of a
  second, and meanwhile makes every open stream re-read its run's events from the database
  every few seconds.
- Idle streams hold no database connection: each database touch here closes its connection
  afterwards (with psycopg's pool, that returns it to the pool).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
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

# The pub/sub channel django-eventstream's send_event publishes on (fixed by the library; its
# listener and ours read it, and Publisher writes it the way send_event does).
PUBSUB_CHANNEL = "events_channel"
# Every RunEvent goes out as the SSE default event type, so a plain EventSource `onmessage`
# sees it; the envelope's `type` says what happened.
SSE_EVENT_NAME = "message"
# While Redis is unreachable, open streams re-read their run's events this often.
DEGRADED_POLL_SECONDS = 2.0
# While Redis is unreachable, the web process's listener tries to subscribe again this often,
# each try giving up after RECONNECT_TIMEOUT.
RECONNECT_SECONDS = 0.25
RECONNECT_TIMEOUT = 1.0


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
            self._redis().publish(PUBSUB_CHANNEL, message)
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
                    self._redis().publish(PUBSUB_CHANNEL, message)
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
        # runs.services.publish_event has already written the row in its transaction (this
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


class ResilientRedisListener:
    """Subscribes the web process to the events pub/sub channel and keeps it subscribed.

    Stands in for django_eventstream.views.RedisListener (same `start()` coroutine), which
    ends for good on the first connection error: after a Redis restart, live delivery would
    stop until the web process restarts. While disconnected it wakes every stream to re-read
    its events from the database, and once (re)subscribed it does so once more to fill the
    gap.
    """

    def __init__(self) -> None:
        self.connected = False
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._coalescer: Coalescer | None = None

    async def start(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._task = asyncio.current_task()  # keep a strong reference to ourselves
        # No redis-py retries: with its default backoff one failed subscribe took ~5 s, so
        # the listener came back (and degraded-mode re-reads ran) seconds late.
        kwargs = {
            **settings.EVENTSTREAM_REDIS,
            "socket_connect_timeout": RECONNECT_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),
        }
        was_down = False
        last_wake = 0.0
        while True:
            client = Redis(**kwargs)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(PUBSUB_CHANNEL)
                self.connected = True
                if was_down:
                    self.reconnects += 1
                    logger.warning("Event listener resubscribed to Redis")
                    was_down = False
                # Fill the gap from the database: a stream registers, replays and waits
                # before this subscription is live (the process's first stream starts this
                # listener), so an event published meanwhile reached no one.
                wake_all_streams()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        await pubsub.ping()  # a dead connection raises here
                        continue
                    if message.get("type") == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not was_down:
                    logger.warning("Event listener lost Redis (%s); reconnecting", exc)
                    last_wake = 0.0
                was_down = True
            finally:
                self.connected = False
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:
                    pass
            # Degraded mode: streams re-read from the database every DEGRADED_POLL_SECONDS
            # (at once on the loss), while subscribing is tried every RECONNECT_SECONDS.
            now = time.monotonic()
            if now - last_wake >= DEGRADED_POLL_SECONDS:
                wake_all_streams()
                last_wake = now
            await asyncio.sleep(RECONNECT_SECONDS)

    def _dispatch(self, raw: bytes | str) -> None:
        try:
            data = json.loads(raw)
            # Parsed once here rather than in every stream: streams order by seq and end
            # after a terminal event.
            envelope = json.loads(data["data"])
            event = LiveEvent(
                data["channel"],
                int(data["pub_id"]),
                int(envelope["seq"]),
                data["data"],
                bool(envelope["run"]["terminal"]),
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring a malformed event on %s", PUBSUB_CHANNEL)
            return
        if self._coalescer is None:
            self._coalescer = Coalescer()
        self._coalescer.add(event)


class LiveEvent:
    """One event as the listener received it, its SSE frame built once for every stream."""

    __slots__ = ("channel", "id", "seq", "data", "terminal", "frame")

    def __init__(self, channel: str, event_id: int, seq: int, data: str, terminal: bool) -> None:
        self.channel = channel
        self.id = event_id
        self.seq = seq
        self.data = data
        self.terminal = terminal
        self.frame = _sse(f"{channel}:{event_id}", data)


class Delivery:
    """Events of one channel handed to its streams together, with the two ways a stream
    writes them built once for all streams: each as its own `message` frame, or (for
    streams that asked for batches) as one `batch` frame."""

    __slots__ = ("events", "_frames", "_batch")

    def __init__(self, events: list[LiveEvent]) -> None:
        self.events = events
        self._frames: str | None = None
        self._batch: str | None = None

    def frames(self, batched: bool) -> str:
        if batched:
            if self._batch is None:
                self._batch = batch_frames(self.events)
            return self._batch
        if self._frames is None:
            self._frames = "".join(event.frame for event in self.events)
        return self._frames


def batch_frames(events: list[LiveEvent]) -> str:
    """One `batch` SSE event carrying `events` (in order) as a JSON array, its id the last
    one's, so a reconnect resumes after it; a single event stays a plain `message`."""
    if len(events) == 1:
        return events[0].frame
    last = events[-1]
    body = ",".join(event.data for event in events)
    return f"event: {BATCH_EVENT_NAME}\nid: {last.channel}:{last.id}\ndata: [{body}]\n\n"


class Coalescer:
    """Hands each channel's events to its streams at most COALESCE_RATE times a second, after
    up to COALESCE_BURST deliveries at once (a token bucket per channel): a run emitting
    hundreds of per-item events a second wakes each of its streams a few times a second, with
    every event since the last delivery, instead of once per event per stream, while events
    at a steady few per second go out the moment they arrive. Runs on the loop's thread."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, when)
        self._held: dict[str, list[LiveEvent]] = {}

    def add(self, event: LiveEvent) -> None:
        from django_eventstream.views import get_listener_manager

        channel = event.channel
        held = self._held.get(channel)
        if held is not None:  # a delivery is due: this event goes with it
            held.append(event)
            return
        manager = get_listener_manager()
        if channel not in manager.listeners_by_channel:
            return  # nobody watches: a stream opened later replays it from the database
        now = time.monotonic()
        tokens = self._tokens(channel, now)
        if tokens >= 1.0:
            self._buckets[channel] = (tokens - 1.0, now)
            fan_out(manager, channel, Delivery([event]))
            return
        self._held[channel] = [event]
        loop = asyncio.get_running_loop()
        loop.call_later((1.0 - tokens) / COALESCE_RATE, self._deliver, channel)

    def _tokens(self, channel: str, now: float) -> float:
        tokens, when = self._buckets.get(channel, (COALESCE_BURST, now))
        return min(COALESCE_BURST, tokens + (now - when) * COALESCE_RATE)

    def _deliver(self, channel: str) -> None:
        from django_eventstream.views import get_listener_manager

        events = self._held.pop(channel, None)
        now = time.monotonic()
        self._buckets[channel] = (max(0.0, self._tokens(channel, now) - 1.0), now)
        if len(self._buckets) > 1000:  # forget channels whose bucket has refilled
            self._buckets = {
                name: bucket
                for name, bucket in self._buckets.items()
                if self._tokens(name, now) < COALESCE_BURST
            }
        if events:
            fan_out(get_listener_manager(), channel, Delivery(events))


def fan_out(manager: Any, channel: str, delivery: Delivery) -> None:
    """Queue `delivery` for every stream of its channel and wake them.

    Stands in for ListenerManager.add_to_queues, which wakes each stream through
    call_soon_threadsafe (a write to the loop's self-pipe per stream) although the Redis
    listener already runs on the loop's thread, and keeps at most 10 events per stream, so a
    burst made every stream re-read the database for itself. Here a stream holds up to
    STREAM_QUEUE deliveries (references to this one shared delivery) and takes them all at
    once when it wakes."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with manager.lock:
        listeners = manager.listeners_by_channel.get(channel, ())
        for listener in listeners:
            items = listener.channel_items.get(channel)
            if items is None:
                items = listener.channel_items[channel] = []
            if len(items) < STREAM_QUEUE:
                items.append(delivery)
            else:
                listener.overflow = True  # the stream re-reads the database instead
            if listener.loop is loop:
                listener.aevent.set()
            elif listener.loop is not None:
                listener.wake_threadsafe()


# --- the stream -----------------------------------------------------------------------------

KEEPALIVE_SECONDS = 15.0
REPLAY_BATCH = 200
# Deliveries queued per stream before it falls back to re-reading the database.
STREAM_QUEUE = 200
# A run's events reach its streams at most this often a second, after this many at once.
COALESCE_RATE = 10.0
COALESCE_BURST = 3.0
# The SSE event type of several events sent as one (streams that ask with `?batch=1`).
BATCH_EVENT_NAME = "batch"


def release_request_thread() -> None:
    """Let the thread Django's ASGI handler keeps for this request go.

    The handler runs each request in an asgiref ThreadSensitiveContext whose one-thread
    executor (created by the first sync middleware or sync ORM call of the request) lives
    until the response ends: for an SSE stream, as long as the watcher watches, so every
    open stream held an idle OS thread. A stream needs it no more once its body is being
    sent; anything sync later in the request (the response's close) gets a fresh one, which
    the context shuts down as before."""
    from asgiref.sync import SyncToAsync

    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)


def _replay(run_id: int, after_id: int) -> tuple[list[LiveEvent], int]:
    """Events of the run after `after_id`, in order; and the seq of the event `after_id`
    itself (0 when there is none), which the stream continues from."""
    from runs.models import RunEvent

    channel = channel_for(run_id)
    with short_lived_connection():
        rows = list(
            RunEvent.objects.filter(run_id=run_id, id__gt=after_id).order_by("id")[:REPLAY_BATCH]
        )
        base = (
            RunEvent.objects.filter(run_id=run_id, id__lte=after_id)
            .order_by("-id")
            .values_list("seq", flat=True)
            .first()
        )
    return [
        LiveEvent(
            channel, row.pk, row.seq, encode(row.envelope()), bool(row.snapshot.get("terminal"))
        )
        for row in rows
    ], base or 0


def _sse(event_id: str, data: str) -> str:
    return f"event: {SSE_EVENT_NAME}\nid: {event_id}\ndata: {data}\n\n"


async def stream_run_events(
    run_id: int, *, after_id: int, user_id: int, batched: bool = False
) -> AsyncIterator[str]:
    """The SSE body for one run's channel: replay from the database after `after_id`, then
    live events from the web process's listener, strictly in the run's `seq` order.

    Why not django-eventstream's own stream: it writes live events in pub/sub arrival order,
    and two processes publishing for one run (the web process's abort, a worker's progress)
    can arrive out of commit order; it also re-sends a live event its database replay already
    sent. Here an event whose seq is not the next one is never written: a duplicate is
    dropped, and a gap is filled by re-reading the database, where every event before a
    published one is already committed (publish_event numbers a run's events under its row
    lock, in commit order).

    With `batched`, events that arrive together (a burst, coalesced by the listener; a
    replay) go out as one `batch` event whose data is the array of their envelopes; a lone
    event is a `message` as always.

    The stream ends after the event that reports the run terminal (a run's last event); a
    client that reconnects after it is answered 204 by the view, which stops EventSource.
    """
    from asgiref.sync import sync_to_async
    from django_eventstream.views import Listener, get_listener_manager

    release_request_thread()
    channel = channel_for(run_id)
    # The loop's shared thread pool, not this request's own thread (released above): the
    # replay needs no thread affinity, it closes its connection before it returns.
    replay = sync_to_async(_replay, thread_sensitive=False)
    listener = Listener()
    listener.user_id = user_id
    listener.channels = {channel}
    listener.assign_loop()
    manager = get_listener_manager()
    manager.add_listener(listener)  # also starts this process's Redis listener if needed

    last_id = after_id
    last_seq = 0
    ended = False

    def frames(events: list[LiveEvent]) -> str:
        if batched:
            return batch_frames(events)
        return "".join(event.frame for event in events)

    async def catch_up() -> str:
        nonlocal last_id, last_seq, ended
        chunks = []
        while True:
            events, base_seq = await replay(run_id, last_id)
            if last_seq == 0:
                last_seq = base_seq
            if events:
                chunks.append(frames(events))
                last = events[-1]
                last_id, last_seq = last.id, last.seq
                ended = ended or any(event.terminal for event in events)
            if len(events) < REPLAY_BATCH:
                return "".join(chunks)

    try:
        # Padding first: some proxies and browsers hold back the first bytes of a stream.
        yield ":" + " " * 2048 + "\n\nevent: stream-open\ndata:\n\n"
        body = await catch_up()
        if body:
            yield body
        while not ended:
            if not listener.aevent.is_set():
                # A timeout scope rather than wait_for: no task per wait.
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        await listener.aevent.wait()
                except TimeoutError:
                    yield "event: keep-alive\ndata:\n\n"
                    continue
            with manager.lock:
                items = listener.channel_items.pop(channel, [])
                reread = listener.overflow
                listener.channel_items = {}
                listener.overflow = False
                listener.aevent.clear()
            chunks = []
            for delivery in items:
                events = delivery.events
                if events[0].seq == last_seq + 1 and _consecutive(events):
                    chunks.append(delivery.frames(batched))  # shared by every stream
                else:
                    # Drop what was sent already (replayed, or delivered twice); a gap, or
                    # events out of order, are read from the database in order instead.
                    events = [event for event in events if event.seq > last_seq]
                    if not events:
                        continue
                    if events[0].seq != last_seq + 1 or not _consecutive(events):
                        reread = True
                        break
                    chunks.append(frames(events))
                last = events[-1]
                last_id, last_seq = last.id, last.seq
                if last.terminal:
                    ended = True
                    break
            if reread and not ended:
                chunks.append(await catch_up())
            body = "".join(chunks)
            if body:
                yield body
    finally:
        manager.remove_listener(listener)


def _consecutive(events: list[LiveEvent]) -> bool:
    return all(b.seq == a.seq + 1 for a, b in zip(events, events[1:], strict=False))


def wake_all_streams() -> None:
    """Make every open stream re-read its channel from storage (django-eventstream treats an
    overflowed listener that way), so nothing published meanwhile is missed."""
    from django_eventstream.views import get_listener_manager

    manager = get_listener_manager()
    with manager.lock:
        listeners = {
            listener for group in manager.listeners_by_channel.values() for listener in group
        }
        for listener in listeners:
            listener.overflow = True
    for listener in listeners:
        if listener.loop is not None:
            listener.wake_threadsafe()


def install_resilient_listener() -> None:
    from django_eventstream import views

    manager = views.get_listener_manager()
    if manager.redis_listener is not None and not isinstance(
        manager.redis_listener, ResilientRedisListener
    ):
        manager.redis_listener = ResilientRedisListener()

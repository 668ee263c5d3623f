"""The live feed in the web process: from Redis pub/sub to each watcher's SSE stream.

- `ResilientRedisListener` subscribes the web process to the events runs.feed publishes, and
  hands each one (its frame built once) to the `Coalescer`, which fans it out to the streams
  of that run's channel (`fan_out`). django-eventstream's own listener dies silently when its
  connection drops and never resubscribes; this one tries to reconnect every fraction of a
  second, and meanwhile makes every open stream re-read its run's events from the database
  every few seconds.
- `stream_run_events` is one watcher's SSE body: a replay from the database, then live
  events in the run's `seq` order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import StreamingHttpResponse

from runs.feed import (
    SSE_EVENT_NAME,
    channel_for,
    encode,
    pubsub_channel,
    short_lived_connection,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# While Redis is unreachable, open streams re-read their run's events this often.
DEGRADED_POLL_SECONDS = 2.0
# While Redis is unreachable, the web process's listener tries to subscribe again this often,
# each try giving up after RECONNECT_TIMEOUT.
RECONNECT_SECONDS = 0.25
RECONNECT_TIMEOUT = 1.0


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
                await pubsub.subscribe(pubsub_channel())
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
            logger.warning("Ignoring a malformed event on %s", pubsub_channel())
            return
        if self._coalescer is None:
            self._coalescer = Coalescer()
        self._coalescer.add(event)


class LiveEvent:
    """One event as the listener received it, its SSE frame built (and encoded) once for every
    stream."""

    __slots__ = ("channel", "id", "seq", "data", "terminal", "frame")

    def __init__(self, channel: str, event_id: int, seq: int, data: str, terminal: bool) -> None:
        self.channel = channel
        self.id = event_id
        self.seq = seq
        self.data = data
        self.terminal = terminal
        self.frame = _sse(f"{channel}:{event_id}", data).encode()


class Delivery:
    """Events of one channel handed to its streams together, with the two ways a stream
    writes them built once for all streams: each as its own `message` frame, or (for
    streams that asked for batches) as one `batch` frame."""

    __slots__ = ("events", "consecutive", "_frames", "_batch")

    def __init__(self, events: list[LiveEvent]) -> None:
        self.events = events
        # Checked once here for every stream it goes to.
        self.consecutive = len(events) == 1 or _consecutive(events)
        self._frames: bytes | None = None
        self._batch: bytes | None = None

    def frames(self, batched: bool) -> bytes:
        if batched:
            if self._batch is None:
                self._batch = batch_frames(self.events)
            return self._batch
        if self._frames is None:
            self._frames = b"".join(event.frame for event in self.events)
        return self._frames


def batch_frames(events: list[LiveEvent]) -> bytes:
    """One `batch` SSE event carrying `events` (in order) as a JSON array, its id the last
    one's, so a reconnect resumes after it; a single event stays a plain `message`."""
    if len(events) == 1:
        return events[0].frame
    last = events[-1]
    body = ",".join(event.data for event in events)
    return f"event: {BATCH_EVENT_NAME}\nid: {last.channel}:{last.id}\ndata: [{body}]\n\n".encode()


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
# Padding first: some proxies and browsers hold back the first bytes of a stream.
STREAM_OPEN = b":" + b" " * 2048 + b"\n\nevent: stream-open\ndata:\n\n"
KEEP_ALIVE = b"event: keep-alive\ndata:\n\n"


class EventStreamResponse(StreamingHttpResponse):
    """The SSE response of `stream_run_events`, whose body is bytes already: Django's ASGI
    handler takes its parts straight from the generator, not through StreamingHttpResponse's
    two wrapping async generators (one converting each part to bytes), which every delivery
    to every watcher passed through."""

    def __init__(self, body: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(body, content_type="text/event-stream", **kwargs)
        self.sse_body = body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.sse_body


class StreamingASGIHandler(ASGIHandler):
    """Django's ASGI handler, with a cheaper way to cut a response part no larger than a
    body message: a stream hands it one part per delivery, and Django's own chunk_bytes
    (a generator, sliced) ran for each delivery to each watcher."""

    @classmethod
    def chunk_bytes(cls, data: Sequence[_T]) -> Iterator[tuple[Sequence[_T], bool]]:
        if 0 < len(data) <= cls.chunk_size:
            return iter(((data, True),))
        return super().chunk_bytes(data)


def release_request_thread() -> None:
    """Let the thread Django's ASGI handler keeps for this request go.

    The handler runs each request in an asgiref ThreadSensitiveContext whose one-thread
    executor (created by the first sync middleware or sync ORM call of the request) lives
    until the response ends: for an SSE stream, as long as the watcher watches, so every
    open stream held an idle OS thread. A stream needs it no more once its body is being
    sent. What the handler still runs in that context afterwards (the response's close, or
    the request_finished signal of a watcher gone) goes to `ReleasedExecutor`: had the
    context no executor, it would start a thread for that one call, and another to join it
    when the request ends, and every stream of a run ends at once, on its terminal event."""
    from asgiref.sync import SyncToAsync

    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executors = SyncToAsync.context_to_thread_executor
    executor = executors.pop(context, None)
    if executor is not None and not isinstance(executor, ReleasedExecutor):
        executor.shutdown(wait=False)
    executors[context] = ReleasedExecutor(context)


class ReleasedExecutor(Executor):
    """The thread-sensitive executor of a request whose own thread was released: runs the
    calls on one thread that every such request of the process shares, and is never shut
    down. Its first call removes it from its context, so that the context's end finds no
    executor to join (asgiref joins one in a thread of its own); a later call in the same
    context gets a fresh executor of its own, as in any request."""

    def __init__(self, context: Any) -> None:
        self._context = weakref.ref(context)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        from asgiref.sync import SyncToAsync

        context = self._context()
        if context is not None:
            executors = SyncToAsync.context_to_thread_executor
            if executors.get(context) is self:
                del executors[context]
        return _released_pool().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The shared thread serves other requests: nothing to shut down."""


_RELEASED_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _released_pool() -> ThreadPoolExecutor:
    """This process's one thread for released requests' remaining sync calls (a pool made
    before a fork has no thread in the child)."""
    global _RELEASED_POOL
    pid = os.getpid()
    if _RELEASED_POOL is None or _RELEASED_POOL[0] != pid:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-released-request")
        _RELEASED_POOL = (pid, pool)
    return _RELEASED_POOL[1]


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
) -> AsyncIterator[bytes]:
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
    listener.aevent = Wake()
    listener.user_id = user_id
    listener.channels = {channel}
    listener.assign_loop()
    listener.wrote = True
    listener.keep_alive = False
    manager = get_listener_manager()
    start_keep_alives(manager)
    manager.add_listener(listener)  # also starts this process's Redis listener if needed

    last_id = after_id
    last_seq = 0
    ended = False

    def frames(events: list[LiveEvent]) -> bytes:
        if batched:
            return batch_frames(events)
        return b"".join(event.frame for event in events)

    async def catch_up() -> bytes:
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
                return b"".join(chunks)

    try:
        yield STREAM_OPEN
        body = await catch_up()
        if body:
            yield body
        while not ended:
            if not listener.aevent.is_set():
                # No timeout here: the loop's keep-alive timer wakes a stream left idle.
                await listener.aevent.wait()
            with manager.lock:
                # The listener's only channel: popping it leaves channel_items empty.
                items = listener.channel_items.pop(channel, ())
                reread = listener.overflow
                keep_alive = listener.keep_alive
                listener.overflow = False
                listener.keep_alive = False
                listener.aevent.clear()
            chunks = []
            for delivery in items:
                events = delivery.events
                if events[0].seq == last_seq + 1 and delivery.consecutive:
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
            body = b"".join(chunks)
            if body:
                listener.wrote = True
                yield body
            elif keep_alive:
                yield KEEP_ALIVE
    finally:
        manager.remove_listener(listener)


class Wake:
    """What a stream waits on between deliveries (Listener.aevent's interface): an
    asyncio.Event for one waiter, without the waiters' deque and loop checks that every
    delivery to every stream went through."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if not self._set:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return True


# The event loops whose keep-alive timer runs: one per web process (tests start several).
_KEEP_ALIVE_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def start_keep_alives(manager: Any) -> None:
    """Start this loop's keep-alive timer, unless it runs: one timer for every stream of
    the loop, rather than a timeout armed and cancelled around each wait of each stream
    (every delivery to every watcher paid for both)."""
    loop = asyncio.get_running_loop()
    if loop not in _KEEP_ALIVE_LOOPS:
        _KEEP_ALIVE_LOOPS.add(loop)
        loop.call_later(KEEPALIVE_SECONDS / 2, _keep_alive_tick, manager, loop)


def _keep_alive_tick(manager: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Every half KEEPALIVE_SECONDS, wake each stream of `loop` that wrote nothing since
    the previous tick to write a keep-alive: an idle stream writes at least every
    KEEPALIVE_SECONDS, as proxies that close silent connections need."""
    with manager.lock:
        listeners = [
            listener
            for group in manager.listeners_by_channel.values()
            for listener in group
            if listener.loop is loop
        ]
    for listener in listeners:
        if listener.wrote:
            listener.wrote = False
        else:
            listener.keep_alive = True
            listener.aevent.set()
    loop.call_later(KEEPALIVE_SECONDS / 2, _keep_alive_tick, manager, loop)


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

"""The live feed in the web process: from the listener (runs.listener) to each watcher's
SSE stream.

- The `Coalescer` takes each event the listener receives (its frame built once) and fans it
  out to the streams of that run's channel (`fan_out`), bursts batched.
- `stream_run_events` is one watcher's SSE body: a replay from the database, then live
  events in the run's `seq` order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from project.streaming import DirectWriter, chunked, release_request_thread
from runs.feed import (
    SSE_EVENT_NAME,
    channel_for,
    encode,
    short_lived_connection,
)

logger = logging.getLogger(__name__)


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

    __slots__ = ("events", "consecutive", "direct", "_frames", "_batch", "_chunks")

    def __init__(self, events: list[LiveEvent]) -> None:
        self.events = events
        # Checked once here for every stream it goes to.
        self.consecutive = len(events) == 1 or _consecutive(events)
        # Whether fan_out may write it to a waiting stream's connection itself: a terminal
        # event goes through the stream, which ends after it.
        self.direct = self.consecutive and not any(event.terminal for event in events)
        self._frames: bytes | None = None
        self._batch: bytes | None = None
        self._chunks: dict[bool, bytes] = {}

    def frames(self, batched: bool) -> bytes:
        if batched:
            if self._batch is None:
                self._batch = batch_frames(self.events)
            return self._batch
        if self._frames is None:
            self._frames = b"".join(event.frame for event in self.events)
        return self._frames

    def chunk(self, batched: bool) -> bytes:
        """`frames(batched)` framed for a DirectWriter, once for every stream."""
        chunk = self._chunks.get(batched)
        if chunk is None:
            chunk = self._chunks[batched] = chunked(self.frames(batched))
        return chunk


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
    """Write `delivery` to every stream of its channel that waits for exactly it, and
    queue it for the others and wake them.

    A stream waiting on this loop with nothing queued, whose next event is this delivery's
    first, gets the delivery's frames written to its connection here (stream_run_events
    says which streams wait, and they take their place in the run from the stream's state):
    one write per watcher, with no wake-up of the watcher's task, its generator, Django's
    send loop or the server's `send`. Any other stream (behind, woken already, on another
    loop, under a server DirectWriter cannot write to, or whose client reads slowly) gets it
    queued as below, and writes it in order itself.

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
    first_seq = delivery.events[0].seq
    last = delivery.events[-1]
    with manager.lock:
        listeners = manager.listeners_by_channel.get(channel, ())
        for listener in listeners:
            items = listener.channel_items.get(channel)
            if (
                delivery.direct
                and not items
                and getattr(listener, "waiting", False)
                and listener.loop is loop
                and listener.last_seq + 1 == first_seq
                and not listener.aevent.is_set()
                and listener.writer.write(delivery.chunk(listener.batched))
            ):
                listener.last_id, listener.last_seq = last.id, last.seq
                listener.wrote = True
                continue
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
    run_id: int,
    *,
    after_id: int,
    user_id: int,
    batched: bool = False,
    writer: DirectWriter | None = None,
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

    `writer`, attached to the client's connection by the web process's ASGI handler, lets
    fan_out write live events itself while this stream waits for them (see fan_out): the
    stream's place in the run (`last_id`, `last_seq`) lives on its listener, where both
    read and move it.
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
    listener.batched = batched
    listener.writer = writer or DirectWriter()
    # True only while this generator waits for a wake-up, having written everything before
    # (Django's send loop resumes it only once its last part was handed to the server).
    listener.waiting = False
    listener.last_id = after_id
    listener.last_seq = 0
    manager = get_listener_manager()
    start_keep_alives(manager)
    manager.add_listener(listener)  # also starts this process's Redis listener if needed

    ended = False

    def frames(events: list[LiveEvent]) -> bytes:
        if batched:
            return batch_frames(events)
        return b"".join(event.frame for event in events)

    async def catch_up() -> bytes:
        nonlocal ended
        chunks = []
        while True:
            events, base_seq = await replay(run_id, listener.last_id)
            if listener.last_seq == 0:
                listener.last_seq = base_seq
            if events:
                chunks.append(frames(events))
                last = events[-1]
                listener.last_id, listener.last_seq = last.id, last.seq
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
                listener.waiting = True
                try:
                    await listener.aevent.wait()
                finally:
                    listener.waiting = False
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
                if events[0].seq == listener.last_seq + 1 and delivery.consecutive:
                    chunks.append(delivery.frames(batched))  # shared by every stream
                else:
                    # Drop what was sent already (replayed, or delivered twice); a gap, or
                    # events out of order, are read from the database in order instead.
                    events = [event for event in events if event.seq > listener.last_seq]
                    if not events:
                        continue
                    if events[0].seq != listener.last_seq + 1 or not _consecutive(events):
                        reread = True
                        break
                    chunks.append(frames(events))
                last = events[-1]
                listener.last_id, listener.last_seq = last.id, last.seq
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

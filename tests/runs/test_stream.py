"""The send path of an SSE stream in the web process (runs/stream.py), without a server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from django.core.handlers.asgi import ASGIHandler

from project import streaming
from runs import stream


def test_each_event_reaches_the_asgi_server_as_the_one_frame_built_for_every_stream():
    """An event's SSE frame is encoded once, when the listener receives it; every watcher's
    stream hands that same bytes object to the ASGI server, with no per-watcher copy or
    conversion on the way (Django's ASGI handler takes the parts straight from the stream)."""
    event = stream.LiveEvent("run-7", 41, 3, '{"id":41,"seq":3}', False)
    delivery = stream.Delivery([event])

    async def body() -> AsyncIterator[bytes]:
        yield stream.STREAM_OPEN
        yield delivery.frames(batched=False)

    async def watch() -> list[Any]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        gen = body()
        response = streaming.EventStreamResponse(gen)
        assert aiter(response) is gen
        await ASGIHandler().send_response(response, send)
        assert sent[0]["type"] == "http.response.start"
        assert (b"Content-Type", b"text/event-stream") in sent[0]["headers"]
        return [message.get("body") for message in sent[1:]]

    first, second = asyncio.run(watch()), asyncio.run(watch())
    assert first[1] is event.frame and second[1] is event.frame
    assert event.frame == b'event: message\nid: run-7:41\ndata: {"id":41,"seq":3}\n\n'
    assert first[0] is stream.STREAM_OPEN and first[-1] in (None, b"")


def test_a_batch_of_events_is_one_frame_encoded_once_per_delivery():
    events = [stream.LiveEvent("run-7", 40 + i, i, f'{{"seq":{i}}}', False) for i in (1, 2)]
    delivery = stream.Delivery(events)
    batch = delivery.frames(batched=True)
    assert delivery.frames(batched=True) is batch
    assert batch == b'event: batch\nid: run-7:42\ndata: [{"seq":1},{"seq":2}]\n\n'
    assert delivery.frames(batched=False) == events[0].frame + events[1].frame


def test_an_idle_stream_writes_keep_alives_and_a_busy_one_does_not(monkeypatch, redis_client):
    """One timer per event loop keeps idle streams alive (proxies close silent
    connections); a stream that wrote since the timer's last tick is left alone.

    The test ticks the timer itself, between deliveries it waits for, rather than racing
    the loop's timer against sleeps: on a loaded machine a stream's replay (a thread) can
    answer after two deliveries, or two ticks, instead of between them."""
    from django_eventstream.views import get_listener_manager

    # Longer than the test can take: the loop's own timer is armed but never fires.
    monkeypatch.setattr(stream, "KEEPALIVE_SECONDS", 3600.0)
    monkeypatch.setattr(stream, "_replay", lambda run_id, after_id: ([], 0))

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        armed: list[float] = []
        call_later = loop.call_later

        def record(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            if callback is stream._keep_alive_tick:
                armed.append(delay)
            return call_later(delay, callback, *args)

        monkeypatch.setattr(loop, "call_later", record)
        idle = stream.stream_run_events(9_000_001, after_id=0, user_id=1)
        busy = stream.stream_run_events(9_000_002, after_id=0, user_id=1)
        assert await anext(idle) == stream.STREAM_OPEN
        assert await anext(busy) == stream.STREAM_OPEN
        assert armed == [1800.0]  # one timer for the loop's streams, every half interval

        parts: dict[str, asyncio.Queue[bytes]] = {"idle": asyncio.Queue(), "busy": asyncio.Queue()}

        async def read(gen: AsyncIterator[bytes], name: str) -> None:
            async for part in gen:
                parts[name].put_nowait(part)

        async def next_part(name: str) -> bytes:
            return await asyncio.wait_for(parts[name].get(), timeout=30)

        readers = [
            asyncio.create_task(read(idle, "idle")),
            asyncio.create_task(read(busy, "busy")),
        ]
        manager = get_listener_manager()
        sent: dict[int, int] = {}

        def send(run_id: int) -> bytes:
            seq = sent[run_id] = sent.get(run_id, 0) + 1  # each run's events in sequence
            event = stream.LiveEvent(f"run-{run_id}", seq, seq, f'{{"seq":{seq}}}', False)
            stream.fan_out(manager, event.channel, stream.Delivery([event]))
            return event.frame

        try:
            # Both streams write once (and so wait on their wake-ups from here on).
            frames = send(9_000_001), send(9_000_002)
            assert (await next_part("idle"), await next_part("busy")) == frames
            for tick in range(1, 6):
                frame = send(9_000_002)  # the busy run writes between every two ticks
                assert await next_part("busy") == frame
                stream._keep_alive_tick(manager, loop)
                if tick >= 2:  # the first tick found that the idle stream had written
                    assert await next_part("idle") == stream.KEEP_ALIVE
                    # Both streams were woken (or not) by the same tick, and the idle one
                    # has written: a keep-alive of the busy one would be queued by now.
                    assert parts["busy"].empty()
            assert armed == [1800.0] * 6  # each tick arms the next
            # Once it is silent for a whole tick, the busy stream is kept alive too.
            stream._keep_alive_tick(manager, loop)
            assert await next_part("busy") == stream.KEEP_ALIVE
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    asyncio.run(watch())


def test_events_published_under_one_redis_db_reach_only_that_dbs_listeners(settings, redis_client):
    """Pub/sub channels are server-wide whatever the db: an Intake under another db number
    of the same Redis server must not get this one's events (nor the reverse)."""
    from runs import feed

    ours = dict(settings.EVENTSTREAM_REDIS)
    theirs = {**ours, "db": 15}
    assert ours.get("db", 0) != 15
    listeners = []
    for kwargs in (ours, theirs):
        settings.EVENTSTREAM_REDIS = kwargs
        pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(feed.pubsub_channel())
        listeners.append(pubsub)
    try:
        settings.EVENTSTREAM_REDIS = theirs
        assert feed.Publisher().publish("run-1", '{"id":1}', 1)
        heard = [next_message(pubsub, timeout=2) for pubsub in listeners]
        assert heard[0] is None
        assert heard[1] is not None and b'"pub_id": "1"' in heard[1]["data"]
    finally:
        for pubsub in listeners:
            pubsub.close()


def next_message(pubsub: Any, timeout: float) -> dict[str, Any] | None:
    """The next published message (get_message answers None for the subscription's own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            return dict(message)
    return None


def test_the_web_handler_sends_a_part_whole_and_still_cuts_a_large_one():
    """The web process's handler (project/asgi.py) hands a stream's part to the server as
    it is, one body message, and cuts one larger than a message as Django does."""
    handler = streaming.StreamingASGIHandler
    part = b"x" * 300
    assert list(handler.chunk_bytes(part)) == [(part, True)]
    assert list(handler.chunk_bytes(part))[0][0] is part
    large = bytes(range(256)) * (handler.chunk_size // 128)
    assert list(handler.chunk_bytes(large)) == list(ASGIHandler.chunk_bytes(large))
    assert len(list(handler.chunk_bytes(large))) == 2
    assert list(handler.chunk_bytes(b"")) == [(b"", True)]

    async def send_all() -> list[bytes]:
        sent: list[bytes] = []

        async def body() -> AsyncIterator[bytes]:
            yield part
            yield large

        async def send(message: dict[str, Any]) -> None:
            sent.append(message.get("body", b""))

        await handler().send_response(streaming.EventStreamResponse(body()), send)
        return sent

    assert b"".join(asyncio.run(send_all())) == part + large


def test_a_stream_waits_until_woken_and_a_wake_before_the_wait_is_kept():
    async def run() -> list[str]:
        wake = stream.Wake()
        seen: list[str] = []
        wake.set()  # before anyone waits: the next wait returns at once
        await asyncio.wait_for(wake.wait(), 1)
        seen.append("kept")
        wake.clear()
        waiter = asyncio.ensure_future(wake.wait())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        wake.set()
        wake.set()  # twice before it runs: one wake
        await asyncio.wait_for(waiter, 1)
        seen.append("woken")
        wake.clear()
        cancelled = asyncio.ensure_future(wake.wait())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        wake.set()  # a cancelled waiter is not woken
        assert wake.is_set()
        return seen

    assert asyncio.run(run()) == ["kept", "woken"]


def test_a_delivery_says_once_whether_its_events_follow_each_other():
    def events(*seqs: int) -> list[stream.LiveEvent]:
        return [stream.LiveEvent("run-7", 40 + s, s, f'{{"seq":{s}}}', False) for s in seqs]

    assert stream.Delivery(events(3)).consecutive
    assert stream.Delivery(events(3, 4, 5)).consecutive
    assert not stream.Delivery(events(3, 5)).consecutive
    assert not stream.Delivery(events(4, 3)).consecutive

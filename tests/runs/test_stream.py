"""The send path of an SSE stream in the web process (runs/stream.py), without a server."""

from __future__ import annotations

import asyncio
import os
import socket
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


def _uvicorn(app: Any) -> tuple[Any, socket.socket]:
    """uvicorn with its httptools protocol, as `manage.py start` runs it, in this loop."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning")
    return uvicorn.Server(config), sock


def _listens_here(redis_listener: Any) -> bool:
    """Whether this loop runs the process's Redis listener (started by the process's first
    stream, maybe in an earlier test's loop)."""
    task = getattr(redis_listener, "_task", None)
    return task is not None and task.get_loop() is asyncio.get_running_loop()


def test_fan_out_writes_a_live_event_to_a_waiting_streams_connection_without_waking_it(
    monkeypatch, redis_client
):
    """A stream waiting for its run's next event gets it written to its connection by the
    fan-out itself (plain and batched streams, each its own framing), with no wake-up of the
    stream; one behind (a gap) is woken, fills the gap from storage, and goes on in order;
    the terminal event goes through the stream, which ends after it."""
    from django_eventstream.views import get_listener_manager

    run_id = 9_000_000_000 + os.getpid()
    channel = f"run-{run_id}"
    stored = [
        stream.LiveEvent(channel, 100 + seq, seq, f'{{"seq":{seq}}}', seq == 4)
        for seq in (1, 2, 3, 4)
    ]
    monkeypatch.setattr(
        stream,
        "_replay",
        lambda run_id, after_id: ([e for e in stored if after_id < e.id <= stored_up_to], 0),
    )
    stored_up_to = 0
    handler = streaming.StreamingASGIHandler()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        writer = streaming.DirectWriter()
        body = stream.stream_run_events(
            run_id, after_id=0, user_id=1, batched=bool(scope["query_string"]), writer=writer
        )
        await handler.send_response(streaming.EventStreamResponse(body, writer=writer), send)

    async def scenario() -> dict[str, bytes]:
        nonlocal stored_up_to
        manager = get_listener_manager()
        server, sock = _uvicorn(app)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            port = sock.getsockname()[1]
            readers, connections = {}, []
            for name, query in (("plain", ""), ("batched", "?batch=1")):
                reader, connection = await asyncio.open_connection("127.0.0.1", port)
                connection.write(f"GET /{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                await asyncio.wait_for(reader.readuntil(b"stream-open\ndata:\n\n\r\n"), 30)
                readers[name] = reader
                connections.append(connection)  # open until the end
            listeners = list(manager.listeners_by_channel[channel])

            async def waiting() -> None:
                # Subscribed, when this loop runs the process's Redis listener (the first
                # subscription wakes every stream once), and every stream back to waiting,
                # with nothing pending.
                redis_listener = manager.redis_listener
                while not (
                    (redis_listener.connected or not _listens_here(redis_listener))
                    and all(
                        listener.waiting and not listener.aevent.is_set() for listener in listeners
                    )
                ):
                    await asyncio.sleep(0.005)

            def fan_out(*events: stream.LiveEvent) -> stream.Delivery:
                nonlocal stored_up_to
                stored_up_to = max(stored_up_to, *(e.id for e in events))  # committed first
                delivery = stream.Delivery(list(events))
                stream.fan_out(manager, channel, delivery)
                return delivery

            await asyncio.wait_for(waiting(), 30)
            writers = [listener.writer._cycle for listener in listeners]
            assert all(writers), writers
            one_two = fan_out(*stored[:2])
            # Written already, and nobody woken.
            assert not any(listener.aevent.is_set() for listener in listeners)
            assert all(listener.last_seq == 2 for listener in listeners)
            received = {
                name: await asyncio.wait_for(
                    reader.readexactly(len(one_two.chunk(name == "batched"))), 30
                )
                for name, reader in readers.items()
            }
            assert received["plain"] == streaming.chunked(stored[0].frame + stored[1].frame)
            assert received["batched"] == streaming.chunked(stream.batch_frames(stored[:2]))

            stored_up_to = stored[2].id  # seq 3 is stored, but its message is lost
            fan_out(stored[3])  # seq 4, terminal: through the streams, after a re-read
            assert all(listener.aevent.is_set() for listener in listeners)
            for name, reader in readers.items():
                rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 30)
                expected = (
                    stream.batch_frames(stored[2:])
                    if name == "batched"
                    else stored[2].frame + stored[3].frame
                )
                assert rest == streaming.chunked(expected) + b"0\r\n\r\n"
            return received
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 30)

    asyncio.run(scenario())


def test_a_direct_writer_writes_nothing_for_a_server_it_does_not_know():
    """Elsewhere than under uvicorn's httptools protocol, parts go through the response."""

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("not called")

    writer = streaming.DirectWriter()
    writer.attach(send)
    assert writer.write(streaming.chunked(b"data: x\n\n")) is False
    assert streaming.chunked(b"abc") == b"3\r\nabc\r\n"

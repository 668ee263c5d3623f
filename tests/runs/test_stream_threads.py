"""Open SSE streams hold no OS thread each in the web process (a thousand watchers must not
mean a thousand threads)."""

from __future__ import annotations

from typing import Any

import psutil
import pytest

from runs import services, transitions
from runs.workloads import DIAGNOSTIC
from tests.support import SSEClient, session_cookies, start_asgi

pytestmark = pytest.mark.django_db(transaction=True)

FEW = 5
MANY = 50


def open_streams(base: str, path: str, cookies: dict[str, str], count: int) -> list[SSEClient]:
    clients = [SSEClient(base, path, cookies=cookies) for _ in range(count)]
    for client in clients:
        assert client.next_message(timeout=60)["type"] == "run.created"
    return clients


def test_threads_of_the_web_process_do_not_grow_with_open_streams(
    user, procs, tmp_path, redis_client
):
    web, base = start_asgi(tmp_path)
    procs.append(web)
    run = services.run_start(owner=user, kind=DIAGNOSTIC)  # no worker: stays pending
    cookies = session_cookies(user)
    path = f"/runs/{run.pk}/stream/"
    process = psutil.Process(web.pid)

    clients = open_streams(base, path, cookies, FEW)
    try:
        with_few = process.num_threads()
        clients += open_streams(base, path, cookies, MANY - FEW)
        with_many = process.num_threads()
        # The streams are live: one event reaches all of them.
        transitions.publish_event(run, type="test.ping", message="still there?")
        for client in clients:
            assert client.next_message(timeout=30)["type"] == "test.ping"
    finally:
        for client in clients:
            client.close()
    assert with_many - with_few < 10, (
        f"{with_few} threads with {FEW} streams, {with_many} with {MANY}"
    )


STREAMS_ENDING = 40


def test_streams_ending_together_start_no_thread_each(user, redis_client, monkeypatch):
    """Every stream of a run ends at once, on its terminal event, and Django's ASGI handler
    then runs each response's close in the request's thread-sensitive context: that must
    not start a thread per stream (it started two: an executor for the close, and one to
    join it). In process, through Django's real ASGI handler, middleware and view."""
    import asyncio
    import threading

    from asgiref.sync import sync_to_async
    from django.core.handlers.asgi import ASGIHandler

    run = services.run_start(owner=user, kind=DIAGNOSTIC)  # no worker: stays pending
    cookie = "; ".join(f"{name}={value}" for name, value in session_cookies(user).items())
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    async def watch(handler: ASGIHandler, opened: asyncio.Event, parts: list[bytes]) -> None:
        disconnect = asyncio.Event()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200, message
            body = message.get("body", b"")
            parts.append(body)
            if b"stream-open" in body:
                opened.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/runs/{run.pk}/stream/",
            "raw_path": f"/runs/{run.pk}/stream/".encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        await handler(scope, receive, send)

    async def main() -> tuple[int, list[list[bytes]]]:
        handler = ASGIHandler()
        opened = [asyncio.Event() for _ in range(STREAMS_ENDING)]
        bodies: list[list[bytes]] = [[] for _ in range(STREAMS_ENDING)]
        tasks = [
            asyncio.create_task(watch(handler, event, parts))
            for event, parts in zip(opened, bodies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 60)
        # Every stream is past its replay and waits on its listener; the requests' own
        # threads are gone.
        await asyncio.sleep(0.5)
        threads_open = threading.active_count()
        monkeypatch.setattr(threading.Thread, "start", counting_start)
        await sync_to_async(services.run_fail, thread_sensitive=False)(run, message="stop")
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        monkeypatch.undo()
        return threads_open, bodies

    threads_open, bodies = asyncio.run(main())
    for parts in bodies:  # each stream ended on the run's terminal event
        assert b'"terminal":true' in b"".join(parts)
    assert len(started) < 5, f"{len(started)} threads started for {STREAMS_ENDING} streams"
    assert threading.active_count() < threads_open + 5

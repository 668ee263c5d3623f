"""Open SSE streams hold no OS thread each in the web process (a thousand watchers must not
mean a thousand threads)."""

from __future__ import annotations

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

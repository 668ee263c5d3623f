"""Idle SSE streams must not hold database connections (500 tabs must not need 500)."""

from __future__ import annotations

import pytest
from django.db import connection

from runs import services, transitions
from runs.workloads import DIAGNOSTIC
from tests.support import SSEClient, children_database_url, session_cookies, start_asgi, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLIENTS = 200
APP_NAME = "intake-idle-sse-test"


def count_server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME]
        )
        return cursor.fetchone()[0]


def test_two_hundred_idle_sse_clients_hold_only_a_handful_of_connections(
    user, procs, tmp_path, redis_client
):
    if connection.vendor != "postgresql":
        pytest.skip("counts connections in pg_stat_activity: PostgreSQL only (CI runs it)")
    web, base = start_asgi(
        tmp_path, DATABASE_URL=f"{children_database_url()}?application_name={APP_NAME}"
    )
    procs.append(web)
    run = services.run_start(owner=user, kind=DIAGNOSTIC)  # no worker: stays pending
    cookies = session_cookies(user)

    clients = [SSEClient(base, f"/runs/{run.pk}/stream/", cookies=cookies) for _ in range(CLIENTS)]
    try:
        for client in clients:
            first = client.next_message(timeout=60)  # each stream is open and caught up
            assert first["type"] == "run.created"
        held = (
            wait_for(
                lambda: (n := count_server_connections()) <= 10 and n + 1,
                timeout=10,
                interval=0.5,
                what="idle streams to release their connections",
            )
            - 1
        )
        assert held <= 10, f"{CLIENTS} idle streams hold {held} database connections"

        # And they are alive: one new event reaches every one of them.
        transitions.publish_event(run, type="test.ping", message="still there?")
        for client in clients:
            assert client.next_message(timeout=30)["type"] == "test.ping"
        assert count_server_connections() <= 10
    finally:
        for client in clients:
            client.close()

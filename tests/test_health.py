"""/healthz: the database, Redis and live workers, each bounded in time (project/health.py)."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from project import health
from tests.support import free_port, wait_for


def _healthz() -> tuple[int, dict]:
    response = Client().get("/healthz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def _worker_registered(redis_client) -> bool:  # type: ignore[no-untyped-def]
    return health.live_worker_count(redis_client) > 0


def test_it_answers_200_with_every_part_alive(worker, redis_client):
    wait_for(lambda: _worker_registered(redis_client), timeout=60, what="the worker")
    status, body = _healthz()
    assert status == 200, body
    assert body["ok"] is True and body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "workers"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert 0 <= check["latencyMs"] < health.CHECK_TIMEOUT * 1000
    assert body["checks"]["workers"]["detail"] == "1 live"


@pytest.mark.django_db
def test_it_answers_503_naming_the_workers_when_none_runs(redis_client):
    status, body = _healthz()
    assert status == 503
    assert body["ok"] is False and body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["workers"]["ok"] is False
    assert "no live RQ worker" in body["checks"]["workers"]["detail"]


@pytest.mark.django_db
def test_a_worker_that_stopped_beating_is_not_counted_live(redis_client):
    # What RQ leaves of a worker killed outright: registered, its last beat long ago.
    key = "rq:worker:gone"
    redis_client.sadd("rq:workers:default", key)
    redis_client.hset(key, "last_heartbeat", "2020-01-01T00:00:00.000000Z")
    assert health.live_worker_count(redis_client) == 0
    assert _healthz()[0] == 503


@pytest.mark.django_db
def test_a_dead_redis_answers_503_within_the_bound(settings, redis_client):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    began = time.monotonic()
    status, body = _healthz()
    assert time.monotonic() - began < 2 * health.CHECK_TIMEOUT
    assert status == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["detail"]
    assert body["checks"]["workers"]["ok"] is False


@pytest.mark.django_db
def test_a_redis_that_never_answers_is_cut_off_at_the_bound(settings, redis_client):
    # A listener that accepts nothing and says nothing: the check times out, never hangs.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        began = time.monotonic()
        status, body = _healthz()
        elapsed = time.monotonic() - began
    assert status == 503 and body["checks"]["redis"]["ok"] is False
    assert elapsed < 2 * health.CHECK_TIMEOUT + 0.5


def test_only_get_is_answered(client):
    assert client.post("/healthz").status_code == 405

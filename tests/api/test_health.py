"""GET /api/v1/health: open without a token, 200 with every part up, 503 naming what is down
(here: no worker), in the health report's camelCase shape."""

from __future__ import annotations

import httpx
import pytest

from project import health
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_health_endpoint_answers_200_with_a_worker(worker, asgi, redis_client):
    # The worker process registers with Redis a moment after it starts.
    wait_for(lambda: health.live_worker_count(redis_client) > 0, timeout=60, what="the worker")
    response = httpx.get(f"{asgi}/api/v1/health", timeout=15)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "workers"}
    assert all(check["ok"] and check["latencyMs"] >= 0 for check in body["checks"].values())


def test_without_a_worker_it_is_503_naming_the_workers(asgi):
    response = httpx.get(f"{asgi}/api/v1/health", timeout=15)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 503 and body["type"] == "urn:intake:problem:unhealthy"
    assert "workers" in body["detail"]
    assert body["ok"] is False
    assert body["checks"]["workers"]["ok"] is False
    assert "worker" in body["checks"]["workers"]["detail"]
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]

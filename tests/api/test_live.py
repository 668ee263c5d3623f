"""The API on a real ASGI server with a real RQ worker: a client that only has a token starts
a run, follows its events over SSE and reads the result, as a program on another machine
would."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api import tokens
from runs import services
from runs.models import IngestionRun, RunEvent
from runs.workloads import DIAGNOSTIC
from tests.support import SSEClient

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD_LIMIT = 1024 * 1024


@pytest.fixture
def child_env_overrides() -> dict[str, str]:
    return {"INTAKE_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT)}


def test_a_token_follows_a_runs_events_over_sse(user, worker, asgi):
    token = tokens.token_create(owner=user, name="follower")[1]
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 6, "delay": 0.05})
    client = SSEClient(
        asgi,
        f"/api/v1/runs/{run.pk}/events",
        headers={"Authorization": f"Bearer {token}"},
        params={"after": "0"},
    )
    try:
        received = client.messages_until(lambda e: e["run"]["terminal"], timeout=60)
    finally:
        client.close()
    stored = list(RunEvent.objects.filter(run=run).order_by("id"))
    assert [e["id"] for e in received] == [e.pk for e in stored]
    assert received[-1]["run"]["status"] == "finished"
    # Nothing more will come: a resume after the last event is told so (204).
    resumed = httpx.get(
        f"{asgi}/api/v1/runs/{run.pk}/events",
        headers={"Authorization": f"Bearer {token}", "Last-Event-ID": received[-1]["_sse_id"]},
    )
    assert resumed.status_code == 204


def test_the_events_need_the_owners_token(user, other_user, asgi, redis_client):
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    theirs = tokens.token_create(owner=other_user, name="theirs")[1]
    path = f"{asgi}/api/v1/runs/{run.pk}/events"
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer intake_nope_nope"}, 401),
        ({"Authorization": f"Bearer {theirs}"}, 404),
    ):
        response = httpx.get(path, headers=headers, params={"after": "0"}, timeout=10)
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/problem+json"
    mine = tokens.token_create(owner=user, name="mine")[1]
    junk = httpx.get(path, headers={"Authorization": f"Bearer {mine}"}, params={"after": "x"})
    assert junk.status_code == 400 and junk.json()["type"] == "urn:intake:problem:bad-parameter"


def test_a_client_starts_a_run_and_reads_its_report_over_http(user, worker, asgi):
    token = tokens.token_create(owner=user, name="cron")[1]
    http = httpx.Client(base_url=f"{asgi}/api/v1", headers={"Authorization": f"Bearer {token}"})
    # A diagnostic run has no API door; the pages' starts go through the same service.
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 3, "delay": 0})
    etag = None
    for _ in range(300):
        response = http.get(f"/runs/{run.pk}", headers={"If-None-Match": etag or ""})
        if response.status_code == 200:
            etag = response.headers["ETag"]
            if response.json()["terminal"]:
                break
        else:
            assert response.status_code == 304
        time.sleep(0.1)
    assert http.get(f"/runs/{run.pk}", headers={"If-None-Match": etag}).status_code == 304
    report = http.get(f"/runs/{run.pk}/report")
    assert report.status_code == 200 and report.json()["run"]["status"] == "finished"
    assert http.get("/runs/current").json() is None
    http.close()


def test_a_body_over_the_servers_limit_is_a_413_problem_before_it_is_read(user, asgi):
    token = tokens.token_create(owner=user, name="big")[1]
    body = b"x" * (5 * UPLOAD_LIMIT)
    response = httpx.post(
        f"{asgi}/api/v1/runs",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:intake:problem:payload-too-large"
    assert "INTAKE_UPLOAD_MAX_BYTES" in problem["detail"] and problem["instance"] == "/api/v1/runs"


def test_concurrent_starts_make_one_run(user, asgi, boards, greenhouse_source):
    token = tokens.token_create(owner=user, name="racer")[1]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def start(key: str | None) -> httpx.Response:
        sent = {**headers, **({"Idempotency-Key": key} if key else {})}
        return httpx.post(f"{asgi}/api/v1/runs", json={"kind": "preview"}, headers=sent, timeout=30)

    with ThreadPoolExecutor(max_workers=4) as pool:
        same_key = list(pool.map(start, ["one-key"] * 4))
    assert {r.status_code for r in same_key} == {202}
    assert len({r.json()["runId"] for r in same_key}) == 1
    IngestionRun.objects.filter(owner=user).update(status="aborted")

    with ThreadPoolExecutor(max_workers=4) as pool:
        no_key = list(pool.map(start, [None] * 4))
    assert sorted(r.status_code for r in no_key) == [202, 409, 409, 409]
    winner = next(r.json()["runId"] for r in no_key if r.status_code == 202)
    assert all(r.json()["activeRunId"] == winner for r in no_key if r.status_code == 409)
    assert IngestionRun.objects.filter(owner=user).count() == 2

"""A chunk's detail fetches at their fixed cost: records stored a batch at a time (and still
on failure), and the per-host limit counted at the server while a run fetches in parallel."""

from __future__ import annotations

import json
import threading

import pytest
import redis
from django.utils import timezone

from ingestion import quota, services
from ingestion.fetching import Fetcher, FetchError
from ingestion.fetching.payloads import PayloadBuffer
from ingestion.models import Job, JobStatus, RawPayload
from ingestion.pipeline import process
from runs.models import RunStatus
from tests.fixture_server import Reply
from tests.ingestion.boards import greenhouse_jobs, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def clean_redis(redis_client: redis.Redis, settings) -> redis.Redis:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = "UTC"
    return redis_client


def counter(redis_client: redis.Redis, user) -> int:  # type: ignore[no-untyped-def]
    raw = redis_client.get(quota.request_key(user.pk, timezone.localdate(timezone.now())))
    return int(raw) if raw else 0  # type: ignore[arg-type]


# --- Payloads, a batch at a time ------------------------------------------------------------


def test_a_fetcher_with_a_buffer_stores_its_records_when_flushed(boards):
    boards.route("/ok", json={"ok": True})
    boards.route("/gone", status=404, body="no such job")
    buffer = PayloadBuffer()
    with Fetcher(payloads=buffer) as fetcher:
        fetcher.get(boards.url("/ok"))
        with pytest.raises(FetchError):
            fetcher.get(boards.url("/gone"))
        assert RawPayload.objects.count() == 0 and len(buffer) == 2
        buffer.flush()
    rows = {row.url.rsplit("/", 1)[1]: row for row in RawPayload.objects.all()}
    assert set(rows) == {"ok", "gone"}
    assert rows["ok"].status_code == 200 and rows["ok"].error == ""
    assert rows["gone"].status_code == 404 and "answered 404" in rows["gone"].error


def test_a_full_buffer_stores_itself(boards, monkeypatch):
    from ingestion.fetching import payloads

    monkeypatch.setattr(payloads, "PAYLOAD_BUFFER_ROWS", 3)
    boards.route("/ok", json={})
    buffer = PayloadBuffer()
    with Fetcher(payloads=buffer) as fetcher:
        for _ in range(4):
            fetcher.get(boards.url("/ok"))
    assert RawPayload.objects.count() == 3 and len(buffer) == 1


def test_a_run_stores_every_detail_fetch_failed_ones_too(boards, work, user, greenhouse_source):
    mount_greenhouse(boards, "acme", list(greenhouse_jobs(6, size=300)), listing_content=False)
    boards.route("/v1/boards/acme/jobs/4", status=404, body="gone")
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(status=JobStatus.ERROR).count() == 1
    details = RawPayload.objects.filter(run=run, url__contains="/jobs/")
    assert details.count() == 6
    assert details.get(status_code=404).error


def test_a_batch_that_fails_still_stores_its_fetches(
    boards, work, user, greenhouse_source, monkeypatch
):
    mount_greenhouse(boards, "acme", list(greenhouse_jobs(5, size=300)), listing_content=False)
    real = process.BatchProcessor._prepare
    seen: list[int] = []

    def fail_on_the_third(self, job, detail=None):  # type: ignore[no-untyped-def]
        seen.append(job.pk)
        if len(seen) == 3:
            raise RuntimeError("the batch breaks")
        return real(self, job, detail)

    monkeypatch.setattr(process.BatchProcessor, "_prepare", fail_on_the_third)
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.ERROR
    # The fetches that had answered when the batch broke are on record.
    assert RawPayload.objects.filter(run=run, url__contains="/jobs/").count() >= 3


# --- Parallel detail fetches and the per-host limit -----------------------------------------


def test_a_chunk_fetches_details_in_parallel_within_the_per_host_limit(
    boards, work, user, greenhouse_source, settings
):
    settings.INTAKE_FETCH_PER_HOST = 3
    jobs = list(greenhouse_jobs(24, size=300))
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    for job in jobs:
        body = json.dumps(job).encode()

        def detail(request, body: bytes = body) -> Reply:  # type: ignore[no-untyped-def]
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            threading.Event().wait(0.05)
            with lock:
                state["now"] -= 1
            return Reply(200, body, {"Content-Type": "application/json"})

        boards.route(f"/v1/boards/acme/jobs/{job['id']}", handler=detail)

    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert run.jobs_ready == 24
    assert state["most"] == 3

"""A chunk's detail fetches at their fixed cost: records stored a batch at a time (and still
on failure), the request quota reserved in blocks yet enforced exactly, and the per-host
limit counted at the server while a run fetches in parallel."""

from __future__ import annotations

import json
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.utils import timezone

from ingestion import quota, services
from ingestion.fetching import Fetcher, FetchError
from ingestion.fetching.payloads import PayloadBuffer
from ingestion.models import Job, JobStatus, RawPayload
from ingestion.pipeline import process
from ingestion.quota import take_request_for
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


# --- One TLS context per process ------------------------------------------------------------


def test_fetchers_share_one_tls_context_made_once(monkeypatch):
    from ingestion.fetching import guard

    made: list[object] = []
    real = guard.httpx.create_ssl_context

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(guard, "_ssl_context", None)
    monkeypatch.setattr(guard.httpx, "create_ssl_context", counting)
    fetchers = [Fetcher(store=False) for _ in range(3)]
    try:
        pools = [f._client._transport._pool for f in fetchers]  # type: ignore[attr-defined]
        assert len(made) == 1
        assert all(pool._ssl_context is made[0] for pool in pools)
        assert made[0].verify_mode == ssl.CERT_REQUIRED and made[0].check_hostname
    finally:
        for fetcher in fetchers:
            fetcher.close()


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


# --- The request quota, reserved in blocks --------------------------------------------------


def test_requests_are_reserved_in_blocks_and_the_unsent_given_back(
    settings, boards, user, redis_client, monkeypatch
):
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 10_000
    boards.route("/page", json={})
    calls = {"eval": 0}
    real = quota._redis

    class Counting:
        def __init__(self, client: redis.Redis) -> None:
            self.client = client

        def eval(self, *args):  # type: ignore[no-untyped-def]
            calls["eval"] += 1
            return self.client.eval(*args)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.client, name)

    monkeypatch.setattr(quota, "_redis", lambda: Counting(real()))
    with Fetcher(on_request=take_request_for(user.pk)) as fetcher:
        for _ in range(100):
            fetcher.get(boards.url("/page"))
        assert counter(redis_client, user) >= 100  # reserved ahead
    assert calls["eval"] <= 10  # 1 + 2 + 4 + … not one round trip per request
    assert counter(redis_client, user) == 100  # exact once the Fetcher is closed
    assert quota.quota_status(user).requests_used == 100


def test_blocks_never_let_more_requests_out_than_the_limit(settings, boards, user, redis_client):
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 25
    boards.route("/page", json={})
    # No records: these threads would leave their database connections open.
    fetchers = [Fetcher(store=False, on_request=take_request_for(user.pk)) for _ in range(3)]
    refused: list[str] = []
    lock = threading.Lock()

    def fetch(fetcher: Fetcher) -> None:
        for _ in range(15):
            try:
                fetcher.get(boards.url("/page"))
            except FetchError as exc:
                with lock:
                    refused.append(str(exc))

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(fetch, fetchers))
    for fetcher in fetchers:
        fetcher.close()
    assert boards.hits["/page"] == 25
    assert len(refused) == 45 - 25
    assert all("daily request quota ran out" in message for message in refused)
    assert counter(redis_client, user) == 25


def test_near_the_limit_one_fetcher_does_not_hold_what_another_needs(
    settings, boards, user, redis_client
):
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 40
    boards.route("/page", json={})
    with (
        Fetcher(on_request=take_request_for(user.pk)) as first,
        Fetcher(on_request=take_request_for(user.pk)) as second,
    ):
        for _ in range(20):
            first.get(boards.url("/page"))
        # first holds what it reserved last; second still gets the rest but for it.
        sent = 0
        with pytest.raises(FetchError, match="daily request quota ran out"):
            while True:
                second.get(boards.url("/page"))
                sent += 1
        assert sent >= 20 - 3
    assert counter(redis_client, user) == 20 + sent


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


def test_a_host_gets_its_next_request_while_an_answer_is_still_being_recorded(
    boards, work, user, greenhouse_source, settings, monkeypatch
):
    # Each fetch, once answered (its host slot given back), is held in its record until
    # two more requests have reached the host: with one thread per slot nobody would be
    # left to send them.
    settings.INTAKE_FETCH_PER_HOST = 2
    jobs = list(greenhouse_jobs(8, size=300))
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    arrived = threading.Condition()
    state = {"arrived": 0, "recorded": 0, "starved": 0}
    for job in jobs:
        body = json.dumps(job).encode()

        def detail(request, body: bytes = body) -> Reply:  # type: ignore[no-untyped-def]
            with arrived:
                state["arrived"] += 1
                arrived.notify_all()
            return Reply(200, body, {"Content-Type": "application/json"})

        boards.route(f"/v1/boards/acme/jobs/{job['id']}", handler=detail)
    real_add = PayloadBuffer.add

    def held_add(self, fields):  # type: ignore[no-untyped-def]
        with arrived:
            state["recorded"] += 1
            wanted = min(len(jobs), state["recorded"] + 2)
            if not arrived.wait_for(lambda: state["arrived"] >= wanted, timeout=5):
                state["starved"] += 1
        real_add(self, fields)

    monkeypatch.setattr(PayloadBuffer, "add", held_add)
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert run.jobs_ready == 8
    assert state["starved"] == 0

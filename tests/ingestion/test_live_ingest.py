"""An ingest on real forked RQ workers (separate processes) against a board on the fixture
server: abort in the middle keeps whole batches, several workers share one run."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import django_rq
import pytest
from rq import Worker

from ingestion import services
from ingestion.models import ChunkStatus, Job, JobStatus, RunItem, Source, WorkChunk
from runs import services as run_services
from runs.models import IngestionRun, RunStatus
from tests.fixture_server import FixtureServer, Reply
from tests.ingestion.boards import description_html, greenhouse_job, mount_greenhouse
from tests.support import start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BATCH = 5


@pytest.fixture
def child_env_overrides(fixture_server: FixtureServer) -> dict[str, str]:
    return {
        "INTAKE_ALLOW_PRIVATE_NETWORK": "1",
        "INTAKE_GREENHOUSE_URL": fixture_server.base_url,
        "INTAKE_BATCH_SIZE": str(BATCH),
        "INTAKE_CHUNK_SIZE": "20",
        "INTAKE_PROGRESS_INTERVAL": "0.1",
    }


class InFlight:
    """Counts the detail requests being answered at once, and their peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = self.served = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1
            self.served += 1


def slow_board(server: FixtureServer, count: int, delay: float, board: str = "acme") -> InFlight:
    """A board whose listing lacks content, so every job's detail is fetched, slowly."""
    jobs = [greenhouse_job(i, f"Role {i}", board=board) for i in range(1, count + 1)]
    mount_greenhouse(server, board, jobs, listing_content=False)
    in_flight = InFlight()
    for job in jobs:

        def detail(request, job=job):  # type: ignore[no-untyped-def]
            with in_flight:
                time.sleep(delay)
            return Reply(200, json.dumps(job).encode(), {"Content-Type": "application/json"})

        server.route(f"/v1/boards/{board}/jobs/{job['id']}", handler=detail)
    return in_flight


def abort_after_a_batch(run: IngestionRun) -> float:
    """Request the run's abort once a first batch is committed; returns when (monotonic)."""
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.READY).count() >= BATCH,
        timeout=60,
        what="a first batch",
    )
    run_services.run_request_abort(run)
    return time.monotonic()


def wait_workers(count: int) -> None:
    """Until `count` RQ workers are registered on the queue (a run sizes its chunks by
    them)."""
    queue = django_rq.get_queue("default")
    wait_for(lambda: Worker.count(queue=queue) >= count, timeout=60, what=f"{count} live workers")


def ingest_on_workers(
    owner: Any, workers: int, procs: list[Any], tmp_path: Path, env: dict[str, str]
) -> IngestionRun:
    """An ingest of the board "acme" for `owner` once `workers` RQ workers (started as
    needed) listen, so that its chunks spread; the finished run."""
    while len(procs) < workers:
        procs.append(start_worker(tmp_path, name=f"w{len(procs)}", **env))
    wait_workers(workers)
    Source.objects.create(owner=owner, company="Acme", kind="greenhouse", identifier="acme")
    run = services.ingest_start(owner=owner)
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=90, what="the run")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED, run.error_message
    return run


def test_abort_mid_ingest_keeps_whole_batches_and_the_next_run_finishes_the_rest(
    fixture_server, worker, user
):
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    slow_board(fixture_server, 60, delay=0.05)
    run = services.ingest_start(owner=user)
    abort_after_a_batch(run)
    wait_for(
        lambda: IngestionRun.objects.get(pk=run.pk).status == RunStatus.ABORTED,
        timeout=10,
        what="the run to end aborted",
    )
    time.sleep(0.5)  # any straggling part job has had its chance to (not) write
    run.refresh_from_db()
    ready = Job.objects.filter(status=JobStatus.READY).count()
    pending = Job.objects.filter(status=JobStatus.PENDING).count()
    assert ready + pending == 60 and 0 < ready < 60
    assert ready % BATCH == 0, "a batch was half written"
    assert run.jobs_ready == ready == run.items_done
    assert RunItem.objects.filter(run=run, job_status=JobStatus.READY).count() == ready

    again = services.ingest_start(owner=user)
    wait_for(
        lambda: IngestionRun.objects.get(pk=again.pk).is_terminal, timeout=60, what="the rerun"
    )
    again.refresh_from_db()
    assert again.status == RunStatus.FINISHED, again.error_message
    assert Job.objects.filter(status=JobStatus.READY).count() == 60
    assert again.total_jobs == pending  # it picked up exactly what was left


def test_several_workers_share_the_chunks_of_one_run(
    fixture_server, worker, procs, tmp_path, user, child_env_overrides
):
    procs.append(start_worker(tmp_path, name="worker2", **child_env_overrides))
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    slow_board(fixture_server, 80, delay=0.05)
    run = services.ingest_start(owner=user)
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=60, what="the run")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED, run.error_message
    chunks = WorkChunk.objects.filter(run=run, number__gt=0)
    assert sum(len(c.job_ids) for c in chunks) == 80
    assert {c.status for c in chunks} == {ChunkStatus.DONE}
    assert len({c.claimed_by for c in chunks}) == 2, "one worker did all the chunks"
    assert run.jobs_ready == 80
    assert list(run.events.values_list("type", flat=True)).count("run.finished") == 1


def test_chunks_are_processed_while_a_later_source_is_still_listed(
    fixture_server, procs, tmp_path, user, child_env_overrides, redis_client
):
    # One worker lists both boards, in order (they share no company: by default they would
    # be listed side by side, tests/ingestion/test_side_by_side.py).
    serial = {**child_env_overrides, "INTAKE_LIST_SIDE_BY_SIDE": "0"}
    procs.append(start_worker(tmp_path, name="worker1", **serial))
    procs.append(start_worker(tmp_path, name="worker2", **serial))
    wait_workers(2)
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(owner=user, company="Slowco", kind="greenhouse", identifier="slowco")
    acme = [greenhouse_job(i, f"Role {i}") for i in range(1, 41)]
    mount_greenhouse(fixture_server, "acme", acme, listing_content=False)
    slow_jobs = [greenhouse_job(i, f"Slow role {i}", board="slowco") for i in range(1, 6)]

    def slow_listing(request):  # type: ignore[no-untyped-def]
        time.sleep(3)
        body = json.dumps({"jobs": slow_jobs, "meta": {"total": len(slow_jobs)}})
        return Reply(200, body.encode(), {"Content-Type": "application/json"})

    fixture_server.route("/v1/boards/slowco/jobs", handler=slow_listing)
    run = services.ingest_start(owner=user)
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=60, what="the run")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(status=JobStatus.READY).count() == 45
    assert (run.total_jobs, run.items_done) == (45, 45)
    listing = WorkChunk.objects.get(run=run, number=0)
    chunks = WorkChunk.objects.filter(run=run, number__gt=0)
    # Two workers: four chunks of 2, four of 4, then 8s for Acme (its details fetched);
    # Slowco's listing carries its descriptions: its five jobs are written processed.
    assert [len(c.job_ids) for c in chunks] == [2, 2, 2, 2, 4, 4, 4, 4, 8, 8]
    # Acme's first chunks were done by the other worker while this one waited for Slowco.
    done_before_listing_ended = [c.number for c in chunks if c.done_at < listing.done_at]
    assert done_before_listing_ended[:3] == [1, 2, 3]
    assert list(run.events.values_list("type", flat=True)).count("run.finished") == 1


def test_a_chunk_fetches_its_details_at_once_within_the_per_host_limit(
    fixture_server, procs, tmp_path, user, child_env_overrides, redis_client
):
    procs.append(start_worker(tmp_path, **child_env_overrides, INTAKE_FETCH_PER_HOST="3"))
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    in_flight = slow_board(fixture_server, 30, delay=0.1)
    run = services.ingest_start(owner=user)
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=60, what="the run")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED, run.error_message
    assert run.jobs_ready == 30
    # One worker: chunks run one after another, so the overlap is inside a chunk.
    assert 1 < in_flight.peak <= 3


def test_abort_during_concurrent_fetches_keeps_finished_work_and_stops_promptly(
    fixture_server, worker, user
):
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    delay = 0.3
    in_flight = slow_board(fixture_server, 100, delay=delay)
    run = services.ingest_start(owner=user)
    asked = abort_after_a_batch(run)
    served_at_abort = in_flight.served
    wait_for(
        lambda: IngestionRun.objects.get(pk=run.pk).status == RunStatus.ABORTED,
        timeout=30,
        what="the run to end aborted",
    )
    stopped = time.monotonic() - asked
    time.sleep(2 * delay)  # a straggling fetch would have been answered by now
    ready = Job.objects.filter(status=JobStatus.READY).count()
    pending = Job.objects.filter(status=JobStatus.PENDING).count()
    assert ready + pending == 100 and ready % BATCH == 0 and ready > 0
    run.refresh_from_db()
    assert run.jobs_ready == ready == run.items_done
    # Stopped well before what was left could have been fetched (4 at once), and without
    # going on fetching: at most the abort check's interval of fetches, plus those in flight.
    assert stopped < (pending * delay / 4) / 2
    assert in_flight.served - served_at_abort < pending / 2
    assert in_flight.now == 0


def test_a_run_is_cut_into_more_chunks_for_more_live_workers(
    fixture_server, worker, procs, tmp_path, user, other_user, child_env_overrides
):
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 41)]
    mount_greenhouse(fixture_server, "acme", jobs, listing_content=False)
    chunk_counts = []
    for owner, workers in ((user, 1), (other_user, 3)):
        run = ingest_on_workers(owner, workers, procs, tmp_path, child_env_overrides)
        assert run.jobs_ready == 40
        chunks = WorkChunk.objects.filter(run=run, number__gt=0)
        assert sum(len(c.job_ids) for c in chunks) == 40
        chunk_counts.append(chunks.count())
    assert chunk_counts[1] >= 2 * chunk_counts[0]


def board_with_reposts(count: int) -> list[dict[str, object]]:
    """`count` roles, a third of them re-posted under new ids (the same description) further
    down the listing, some of them before their original."""
    roles = [(i, f"Role {i} Engineer", description_html(i, size=1500)) for i in range(1, count)]
    jobs = [greenhouse_job(i, title, content=html) for i, title, html in roles]
    for i, title, html in roles[::3]:
        at = (i * 7) % len(jobs)
        jobs.insert(at, greenhouse_job(10_000 + i, title, content=html))
    return jobs


def near_duplicates_of(owner: object) -> dict[str, str]:
    return dict(
        Job.objects.filter(owner=owner, status=JobStatus.SKIPPED).values_list(
            "external_id", "duplicate_of__external_id"
        )
    )


def test_the_same_listing_gives_the_same_near_duplicates_with_one_or_four_workers(
    fixture_server, worker, procs, tmp_path, user, other_user, child_env_overrides
):
    mount_greenhouse(fixture_server, "acme", board_with_reposts(120))
    decided = {}
    for owner, workers in ((user, 1), (other_user, 4)):
        run = ingest_on_workers(owner, workers, procs, tmp_path, child_env_overrides)
        decided[workers] = near_duplicates_of(owner)
        assert run.jobs_skipped == len(decided[workers])
        # The listing decided and wrote every job (it carries their descriptions).
        assert not WorkChunk.objects.filter(run=run, number__gt=0).exists()
    assert decided[1] == decided[4]
    assert len(decided[1]) == 40

"""Faults in the middle of an ingest on real worker processes: a work horse killed with
SIGKILL, the database dropping the worker's connections, a board call that outlasts the stale
limit. Each run must end finished with every job processed exactly once, with no reaper.

The recovery times these print (`FIGURE ...`, shown with `pytest -s`) are the ones recorded in
docs/operations.md."""

from __future__ import annotations

import json
import os
import time

import psutil
import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ingestion import services
from ingestion.models import ChunkStatus, Job, JobStatus, RunItem, Source, WorkChunk
from runs.models import IngestionRun, RunStatus
from tests.fixture_server import FixtureServer, Reply
from tests.ingestion.boards import greenhouse_job, mount_greenhouse
from tests.support import Proc, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BATCH = 5


@pytest.fixture
def child_env_overrides(fixture_server: FixtureServer) -> dict[str, str]:
    return {
        "INTAKE_ALLOW_PRIVATE_NETWORK": "1",
        "INTAKE_GREENHOUSE_URL": fixture_server.base_url,
        "INTAKE_BATCH_SIZE": str(BATCH),
        "INTAKE_CHUNK_SIZE": "40",
        "INTAKE_PROGRESS_INTERVAL": "0.1",
    }


def detail_board(server: FixtureServer, count: int, *, delay: float, stall: float = 0) -> None:
    """A board whose listing lacks content, so each job's detail is fetched, taking `delay`
    (and job 1's detail `stall` seconds)."""
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, count + 1)]
    mount_greenhouse(server, "acme", jobs, listing_content=False)
    for job in jobs:

        def detail(request, job=job):  # type: ignore[no-untyped-def]
            time.sleep(stall if job["id"] == 1 and stall else delay)
            return Reply(200, json.dumps(job).encode(), {"Content-Type": "application/json"})

        server.route(f"/v1/boards/acme/jobs/{job['id']}", handler=detail)


def horse_of(worker: Proc) -> psutil.Process | None:
    """The worker's work horse: RQ puts each horse in a process group of its own (the
    worker's scheduler, its other child, stays in the worker's)."""
    for child in psutil.Process(worker.pid).children():
        try:
            if os.getpgid(child.pid) == child.pid:
                return child
        except (psutil.Error, ProcessLookupError):
            continue
    return None


def worker_database_ports(worker: Proc) -> list[int]:
    """The local ports of the worker's (and its horse's) connections to the database."""
    server_port = int(connection.settings_dict["PORT"] or 5432)
    ports = []
    for proc in [psutil.Process(worker.pid), *psutil.Process(worker.pid).children()]:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:  # a horse that just ended
            continue
        ports += [c.laddr.port for c in conns if c.raddr and c.raddr.port == server_port]
    return ports


def assert_processed_once(run: IngestionRun, count: int) -> None:
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(status=JobStatus.READY).count() == count
    assert (run.total_jobs, run.items_done, run.jobs_ready) == (count, count, count)
    assert set(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) == {1}
    assert list(run.events.values_list("type", flat=True)).count("run.finished") == 1


def test_a_chunk_whose_work_horse_is_killed_is_retried_and_the_run_finishes(
    fixture_server, worker, user
):
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    detail_board(fixture_server, 120, delay=0.03)
    run = services.ingest_start(owner=user)

    def mid_chunk() -> WorkChunk | None:
        # The first whole chunk (one worker: 10, 10, 20, 20, then 40 jobs in 8 batches),
        # with a batch or more committed and more to go.
        return WorkChunk.objects.filter(
            run=run, number=5, status=ChunkStatus.CLAIMED, done_count__gte=BATCH
        ).first()

    chunk = wait_for(mid_chunk, timeout=60, what="chunk 5 under way")
    horse = horse_of(worker)  # one worker: its horse is the one running chunk 5
    assert horse is not None, "no work horse runs chunk 5"
    horse.kill()
    killed_at, killed_wall = time.monotonic(), timezone.now()
    wait_for(
        lambda: WorkChunk.objects.filter(pk=chunk.pk, claimed_at__gt=killed_wall).exists(),
        timeout=60,
        interval=0.02,
        what="chunk 5 to be claimed again",
    )
    resumed_in = time.monotonic() - killed_at
    wait_for(
        lambda: IngestionRun.objects.get(pk=run.pk).is_terminal,
        timeout=60,
        what="the run to finish",
    )
    finished_in = time.monotonic() - killed_at
    assert_processed_once(run, 120)
    retried = run.events.get(type="run.part_retried")
    assert "chunk 5 was killed by signal 9 (SIGKILL)" in retried.message
    assert "attempt 2 of 3" in retried.message
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.DONE and chunk.done_count == 40
    assert not run.events.filter(type="run.error").exists()
    # Nothing waited for the stale limit (120 s by default): the retry is immediate.
    assert finished_in < 60
    print(
        f"\nFIGURE kill -9 of a chunk's work horse: chunk resumed {resumed_in:.2f} s later, "
        f"run finished {finished_in:.1f} s later"
    )


def test_a_call_longer_than_the_stale_limit_does_not_end_a_healthy_run(
    fixture_server, procs, tmp_path, user, child_env_overrides, settings
):
    from datetime import datetime

    from tests.support import start_worker

    fast = {"INTAKE_RUN_STALE_AFTER": 2, "INTAKE_HEARTBEAT_INTERVAL": 0.3}
    procs.append(start_worker(tmp_path, **child_env_overrides, **fast))
    settings.INTAKE_RUN_STALE_AFTER = 2
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    detail_board(fixture_server, 10, delay=0.01, stall=6)  # three times the stale limit
    run = services.ingest_start(owner=user)
    client = Client()
    client.force_login(user)
    stalled, widest = False, 0.0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # The page's status poll, which ends a run whose heartbeat is stale.
        state = client.get(reverse("runs:events", args=[run.pk])).json()["run"]
        if state["terminal"]:
            break
        stalled = stalled or fixture_server.hits.get("/v1/boards/acme/jobs/1", 0) > 0
        if stalled and state["heartbeatAt"]:
            beat = datetime.fromisoformat(state["heartbeatAt"])
            widest = max(widest, (timezone.now() - beat).total_seconds())
        time.sleep(0.2)
    assert stalled
    assert_processed_once(run, 10)
    print(f"\nFIGURE a 6 s call, stale limit 2 s: oldest heartbeat seen {widest:.2f} s")
    assert widest < 2


def terminate_inside_a_batch(worker: Proc, run: IngestionRun, *, times: int) -> int:
    """Terminate the worker's database backend inside a batch's transaction, `times` times
    (or until the run ends); returns how many were terminated.

    Every batch, the listing's or a chunk's, updates the run's counters after it has written
    jobs: the run's row is held locked here until one of the worker's backends waits for it
    while holding a write lock on the jobs (inside a batch's transaction), and that backend
    is terminated. A backend that waits for it otherwise (a heartbeat) is let through: the
    lock is released at once and taken again."""
    settings = connection.settings_dict
    terminated = 0
    deadline = time.monotonic() + 60
    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    ) as holder:
        while terminated < times and time.monotonic() < deadline:
            if IngestionRun.objects.get(pk=run.pk).is_terminal:
                break
            with holder.transaction():
                # NO KEY: a row that references the run (a payload) takes a KEY SHARE lock on
                # it at commit, which FOR UPDATE would hold up.
                holder.execute(
                    f"SELECT 1 FROM {IngestionRun._meta.db_table} WHERE id = %s FOR NO KEY UPDATE",
                    [run.pk],
                )
                held_until = time.monotonic() + 2
                while time.monotonic() < held_until:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT a.pid, EXISTS (SELECT 1 FROM pg_locks l "
                            "WHERE l.pid = a.pid AND l.granted AND l.mode = 'RowExclusiveLock' "
                            "AND l.relation = %s::regclass) FROM pg_stat_activity a "
                            "WHERE a.client_port = ANY(%s) AND a.wait_event_type = 'Lock'",
                            [Job._meta.db_table, worker_database_ports(worker)],
                        )
                        waiting = cursor.fetchall()
                        in_batch = [pid for pid, writing in waiting if writing]
                        if in_batch:
                            cursor.execute(
                                "SELECT count(pg_terminate_backend(pid)) FROM unnest(%s) pid",
                                [in_batch],
                            )
                            terminated += cursor.fetchone()[0]
                    if waiting:
                        break
                    time.sleep(0.01)
            time.sleep(0.05)  # the lock released: let the worker on
    return terminated


@pytest.mark.parametrize("stage", ["listing", "chunk"])
def test_a_dropped_database_connection_retries_the_batch_and_the_run_finishes(
    fixture_server, procs, tmp_path, user, child_env_overrides, stage
):
    if connection.vendor != "postgresql":
        pytest.skip("terminates the worker's server backends: PostgreSQL only (CI runs it)")
    from tests.support import start_worker

    batch = 50
    env = {**child_env_overrides, "INTAKE_BATCH_SIZE": batch, "INTAKE_CHUNK_SIZE": 1000}
    worker = start_worker(tmp_path, **env)
    procs.append(worker)
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    if stage == "listing":
        # Postings with their content: the listing writes each job processed, in its batches
        # (ingestion.pipeline.diff), and no chunk runs.
        count = 3000
        jobs = [greenhouse_job(i, f"Role {i}") for i in range(count)]
        mount_greenhouse(fixture_server, "acme", jobs)
    else:
        # Postings without it: the chunks fetch each job's detail and process it in batches.
        count = 1000
        detail_board(fixture_server, count, delay=0)
    run = services.ingest_start(owner=user)
    if stage == "chunk":
        wait_for(
            lambda: WorkChunk.objects.filter(run=run, number=0, status=ChunkStatus.DONE).exists(),
            timeout=60,
            interval=0.01,
            what="the listing done",
        )
    terminated = terminate_inside_a_batch(worker, run, times=2)
    assert terminated == 2, "never caught the worker inside a batch's transaction"
    dropped_at = time.monotonic()
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=90, what="the run")
    finished_in = time.monotonic() - dropped_at
    log = worker.output()
    retried = {
        what: log.count(text)
        for what, text in (
            ("listing", "Database error during a batch of the listing"),
            ("chunk", "Database error during a batch of chunk"),
            ("checkpoint", "Database error during a checkpoint"),
            ("part", "its part is queued again"),
        )
    }
    print(
        f"\nFIGURE worker backend terminated inside a {stage} batch twice: run finished "
        f"{finished_in:.1f} s after the second; retried {retried}"
    )
    assert_processed_once(run, count)
    assert retried[stage] == 2
    if stage == "listing":
        assert not WorkChunk.objects.filter(run=run, number__gt=0).exists()

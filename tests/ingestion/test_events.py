"""Events out, end to end: an ingest on a real RQ worker writes its run and job events to the
outbox, a real relay process (`manage.py relay_events`) publishes them to the Redis Stream,
and `manage.py consume_events` reads them as a consumer group (docs/events.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ingestion import services
from ingestion.models import Job, JobStatus
from runs.models import OutboxEvent, RunStatus
from tests.ingestion.boards import description_html, edited_board, greenhouse_job, mount_greenhouse
from tests.support import ROOT, Proc, child_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def outbox(run_id: int) -> dict[str, list[dict]]:
    """The run's outbox payloads by event type, in order."""
    found: dict[str, list[dict]] = defaultdict(list)
    rows = OutboxEvent.objects.filter(run_id=run_id).order_by("id")
    for event_type, payload in rows.values_list("event_type", "payload"):
        found[event_type].append(payload)
    return found


def ids(payloads: list[dict], **match: str) -> list[int]:
    return sorted(
        pk for p in payloads if all(p.get(k) == v for k, v in match.items()) for pk in p["jobIds"]
    )


def job_ids(*external_ids: str) -> list[int]:
    return sorted(Job.objects.filter(external_id__in=external_ids).values_list("id", flat=True))


def test_an_ingest_announces_its_lifecycle_and_its_jobs_once_per_batch(
    boards, work, user, greenhouse_source
):
    board = [greenhouse_job(i, f"Role {i} Engineer") for i in range(1, 6)]
    mount_greenhouse(boards, "acme", [*board, greenhouse_job(6, omit=["title"])])
    first = work(services.ingest_start(owner=user))
    assert first.status == RunStatus.FINISHED, first.error_message
    events = outbox(first.pk)
    counts = {event_type: len(payloads) for event_type, payloads in events.items()}
    # One row per committed batch: the listing's one batch and the processing's one.
    assert counts == {
        "run.requested": 1,
        "run.started": 1,
        "job.created": 1,
        "job.updated": 1,
        "run.finished": 1,
    }
    everything = job_ids("1", "2", "3", "4", "5")
    assert ids(events["job.created"], status="pending") == everything
    assert events["job.created"][0]["sourceId"] == greenhouse_source.pk
    assert ids(events["job.updated"], status="ready", stage="processing") == everything
    assert events["run.finished"][0]["run"]["counts"]["ready"] == 5

    # 1 vanishes, 2 is edited, 7 is new.
    mount_greenhouse(boards, "acme", edited_board())
    second = work(services.ingest_start(owner=user))
    events = outbox(second.pk)
    assert ids(events["job.created"]) == job_ids("7")
    assert ids(events["job.updated"], stage="listing", status="pending") == job_ids("2")
    assert ids(events["job.expired"], status="expired") == job_ids("1")
    assert ids(events["job.updated"], stage="processing", status="ready") == job_ids("2", "7")
    assert "job.duplicate" not in events


def test_the_processing_batches_each_announce_their_jobs(
    boards, work, user, greenhouse_source, settings
):
    settings.INTAKE_BATCH_SIZE = 2
    jobs = [greenhouse_job(i, f"Role {i} Engineer") for i in range(1, 6)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    run = work(services.ingest_start(owner=user))
    updated = outbox(run.pk)["job.updated"]
    assert [p["count"] for p in updated] == [2, 2, 1]
    assert ids(updated) == sorted(Job.objects.values_list("id", flat=True))


def test_a_near_duplicate_is_announced_with_its_original(boards, work, user, greenhouse_source):
    original = description_html(100, title="Data Engineer", size=2000)
    roles = [greenhouse_job(i, content=description_html(i, size=2000)) for i in range(1, 13)]
    roles.append(greenhouse_job(100, "Data Engineer", content=original))
    mount_greenhouse(boards, "acme", roles)
    work(services.ingest_start(owner=user))
    repost = greenhouse_job(
        101, "Data Engineer II", content=original.replace("is hiring", "now hiring", 1)
    )
    mount_greenhouse(boards, "acme", [*roles, repost])
    run = work(services.ingest_start(owner=user))
    (duplicate,) = outbox(run.pk)["job.duplicate"]
    skipped = Job.objects.get(status=JobStatus.SKIPPED)
    assert duplicate["jobIds"] == [skipped.pk] and duplicate["status"] == "skipped"
    assert duplicate["duplicateOf"] == {str(skipped.pk): skipped.duplicate_of_id}


def test_a_failed_job_and_its_retry_are_announced(boards, work, user, greenhouse_source):
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 4)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    boards.route("/v1/boards/acme/jobs/2", status=404, json={"error": "gone"})
    first = work(services.ingest_start(owner=user))
    updated = outbox(first.pk)["job.updated"]
    assert ids(updated, status="error") == job_ids("2")
    assert ids(updated, status="ready") == job_ids("1", "3")

    boards.route("/v1/boards/acme/jobs/2", json=jobs[1])
    retry = work(services.ingest_retry_failed(owner=user, run=first))
    updated = outbox(retry.pk)["job.updated"]
    assert ids(updated, stage="retry", status="pending") == job_ids("2")
    assert ids(updated, stage="processing", status="ready") == job_ids("2")


def test_a_relay_process_publishes_and_consume_events_reads_each_event_once(
    boards, work, user, greenhouse_source, procs, tmp_path: Path
):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i} Engineer") for i in range(1, 4)])
    run = work(services.ingest_start(owner=user))
    written = OutboxEvent.objects.count()

    relay = Proc(
        "relay",
        [sys.executable, "manage.py", "relay_events"],
        env=child_env(INTAKE_OUTBOX_POLL_SECONDS="0.05", LOG_LEVEL="INFO"),
        log_dir=tmp_path,
    )
    procs.append(relay)
    wait_for(
        lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(),
        timeout=30,
        what="the relay to publish the outbox",
    )
    # A change made while the relay runs is published too.
    services.ingest_start(owner=user)  # queued only: its run.requested
    wait_for(
        lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(),
        timeout=30,
        what="the relay to publish the new event",
    )

    def consume(*extra: str) -> tuple[list[dict], str]:
        argv = [sys.executable, "manage.py", "consume_events", "--group", "ci", "--block", "300"]
        done = subprocess.run(
            [*argv, *extra], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()], done.stderr

    events, summary = consume("--drain")
    assert len(events) == written + 1
    assert Counter(e["eventType"] for e in events) == {
        "run.requested": 2,
        "run.started": 1,
        "job.created": 1,
        "job.updated": 1,
        "run.finished": 1,
    }
    assert events[0]["runId"] == run.pk and events[0]["payload"]["run"]["id"] == run.pk
    assert len({e["eventId"] for e in events}) == len(events)
    assert f"Handled {len(events)} events" in summary
    # The group has acknowledged everything: a second read finds nothing new.
    again, _ = consume("--drain")
    assert again == []
    relay.stop()
    assert "Event relay stopped" in relay.output()

"""A listing batch's transaction that the database connection breaks (runs.dbretry) is tried
again from the state as it was before it, and ends as a batch that never broke: each job
written once, each item, count, event and chunk once. Unit-level, on either database: the
faults are raised in-process (tests/ingestion/test_faults_live.py terminates real backends).
"""

from __future__ import annotations

import logging
import re

import pytest
from django.db import OperationalError, connections

from ingestion import services, store
from ingestion.models import Job, RunItem, Source, WorkChunk
from ingestion.pipeline import diff
from runs.models import IngestionRun, RunStatus
from tests.ingestion.boards import description_html, greenhouse_job, mount_greenhouse
from tests.ingestion.test_write_once import counts, items_of, job_events, jobs_of

pytestmark = pytest.mark.django_db(transaction=True)

RETRIED = "Database error during a batch of the listing"


def board() -> list[dict[str, object]]:
    """Batches of 4: the second has two near-duplicates (the canonical a new job of the
    same batch), an invalid posting and one whose description only its detail has."""
    text = description_html(7, title="Data Engineer", size=2000)
    return [
        greenhouse_job(1, "Backend Engineer"),
        greenhouse_job(2, "Designer"),
        greenhouse_job(3, "Sales Lead"),
        greenhouse_job(4, "Support Agent"),
        greenhouse_job(5, "Data Engineer", content=text),
        greenhouse_job(6, "Data Engineer", content=text + "<p>Apply now.</p>"),
        greenhouse_job(7, omit=["title"]),
        greenhouse_job(8, "Product Manager", content=None),
        greenhouse_job(9, "Recruiter"),
    ]


@pytest.fixture
def two_owners(boards, user, other_user, settings, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", 4)
    settings.INTAKE_CHUNK_SIZE = 1  # the detail-needing job's chunk is queued in its batch
    mount_greenhouse(boards, "acme", board())
    for owner in (user, other_user):
        Source.objects.create(owner=owner, company="Acme", kind="greenhouse", identifier="acme")
    return user, other_user


def by_key(items: list[tuple]) -> list[tuple]:
    """Items with the jobs their reasons name by external id (the owners' ids differ)."""
    names = dict(Job.objects.values_list("id", "external_id"))
    return [
        tuple(
            re.sub(r"job #(\d+)", lambda m: f"job {names[int(m[1])]}", v)
            if isinstance(v, str)
            else v
            for v in item
        )
        for item in items
    ]


def assert_same_run(broken: IngestionRun, clean: IngestionRun) -> None:
    assert broken.status == RunStatus.FINISHED, broken.error_message
    assert jobs_of(broken.owner) == jobs_of(clean.owner)
    assert by_key(items_of(broken)) == by_key(items_of(clean))
    assert counts(broken) == counts(clean)
    assert job_events(broken) == job_events(clean)  # every job id named exists
    # (Progress events are throttled by time, and the retry waited.)
    told = [
        sorted(run.events.exclude(type="run.progress").values_list("type", flat=True))
        for run in (broken, clean)
    ]
    assert told[0] == told[1]
    chunks = WorkChunk.objects.order_by("number")
    assert list(chunks.filter(run=broken).values_list("number", "status")) == list(
        chunks.filter(run=clean).values_list("number", "status")
    )
    # No id drawn in a rolled-back try is left anywhere: each points at its own job.
    for external_id, job_id in RunItem.objects.filter(run=broken, job__isnull=False).values_list(
        "external_id", "job_id"
    ):
        assert Job.objects.get(pk=job_id).external_id == external_id
    duplicate = Job.objects.get(owner=broken.owner, external_id="6")
    assert duplicate.duplicate_of is not None and duplicate.duplicate_of.external_id == "5"


def test_a_listing_batch_the_connection_breaks_is_retried_from_its_start(
    two_owners, work, monkeypatch, caplog
):
    user, other_user = two_owners
    clean = work(services.ingest_start(owner=other_user))
    assert clean.status == RunStatus.FINISHED, clean.error_message
    report = diff.SourceDiff._report_item
    broke: list[str] = []

    def report_then_break(self, item):  # type: ignore[no-untyped-def]
        # The last step of the batch's transaction: everything it changes in memory is
        # changed (job ids, reasons, statuses, the chunk stream, the run's counters).
        report(self, item)
        if not broke:
            broke.append(item.external_id)
            raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(diff.SourceDiff, "_report_item", report_then_break)
    with caplog.at_level(logging.WARNING, logger="runs.dbretry"):
        broken = work(services.ingest_start(owner=user))
    assert broke == ["7"]
    assert_same_run(broken, clean)
    assert sum(RETRIED in r.getMessage() for r in caplog.records) == 1
    assert broken.events.filter(type="item.invalid").count() == 1


def test_a_listing_batch_whose_commit_answer_was_lost_is_not_written_twice(
    two_owners, work, monkeypatch, caplog
):
    user, other_user = two_owners
    clean = work(services.ingest_start(owner=other_user))
    insert_items = store.insert_items
    batches: list[int] = []

    def count_batches(items):  # type: ignore[no-untyped-def]
        batches.append(len(items))
        insert_items(items)

    monkeypatch.setattr(store, "insert_items", count_batches)
    database = connections["default"]
    commit = database._commit
    lost: list[int] = []

    def commit_then_lose_the_answer():  # type: ignore[no-untyped-def]
        commit()
        if len(batches) == 2 and not lost:  # the second listing batch's COMMIT
            lost.append(len(batches))
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(database, "_commit", commit_then_lose_the_answer)
    with caplog.at_level(logging.WARNING, logger="runs.dbretry"):
        broken = work(services.ingest_start(owner=user))
    assert lost == [2]
    # Written once (a second write of its new jobs would fail on their unique key), and
    # the chunk its transaction queued on commit was queued all the same: the run finished.
    assert batches == [4, 4, 1]
    assert_same_run(broken, clean)
    assert sum(RETRIED in r.getMessage() for r in caplog.records) == 1

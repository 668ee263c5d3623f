"""The references the database does not check (a run's items, a job's last run and its
near-duplicate fingerprint: written per posting, see RunItem) are kept by Django's on_delete:
nothing is left pointing at a row that is gone."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from ingestion import dedupe, store
from ingestion.models import ItemOutcome, Job, JobFingerprint, JobSeen, JobStatus, RunItem, Source
from runs.models import IngestionRun

pytestmark = pytest.mark.django_db


def _world(user: Any) -> tuple[Source, IngestionRun, Job, RunItem]:
    source = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="a")
    run = IngestionRun.objects.create(owner=user, kind="ingest", status="finished")
    now = timezone.now()
    job = Job.objects.create(
        owner=user,
        source=source,
        company="Acme",
        external_id="1",
        title="Engineer",
        status=JobStatus.READY,
        simhash=12345,
        last_run=run,
        first_seen_at=now,
        last_seen_at=now,
    )
    dedupe.store_fingerprints(user.pk, [(job.pk, 12345, job.company)])
    store.touch_unchanged(now, [job.pk])
    item = RunItem.objects.create(
        run=run, source=source, job=job, external_id="1", outcome=ItemOutcome.NEW
    )
    return source, run, job, item


def test_the_per_posting_references_have_no_database_constraint(user: Any) -> None:
    tables = ("ingestion_runitem", "ingestion_jobfingerprint", "ingestion_jobseen")
    with connection.cursor() as cursor:
        constraints = {
            table: connection.introspection.get_constraints(cursor, table) for table in tables
        }
        job_constraints = connection.introspection.get_constraints(cursor, "ingestion_job")
    for table in tables:
        assert not [c for c in constraints[table].values() if c["foreign_key"]], table
    # The job's own references are checked, but for its last run.
    checked = {c["columns"][0] for c in job_constraints.values() if c["foreign_key"]}
    assert {"owner_id", "source_id"} <= checked and "last_run_id" not in checked


def test_deleting_a_job_clears_its_items_fingerprint_and_seen_stamp(user: Any) -> None:
    _, _, job, item = _world(user)
    assert JobSeen.objects.filter(job=job).exists()

    job.delete()

    item.refresh_from_db()
    assert item.job_id is None
    assert not JobFingerprint.objects.exists() and not JobSeen.objects.exists()


def test_deleting_a_source_clears_its_items_and_keeps_its_jobs(user: Any) -> None:
    source, _, job, item = _world(user)

    source.delete()

    item.refresh_from_db()
    job.refresh_from_db()
    assert item.source_id is None and job.source_id is None


def test_deleting_a_run_deletes_its_items_and_clears_its_jobs(user: Any) -> None:
    _, run, job, _ = _world(user)

    run.delete()

    job.refresh_from_db()
    assert not RunItem.objects.exists() and job.last_run_id is None


def test_deleting_the_owner_deletes_everything(user: Any) -> None:
    _world(user)

    user.delete()

    for model in (Source, IngestionRun, Job, RunItem, JobFingerprint, JobSeen):
        assert not model.objects.exists(), model


def test_an_item_writes_one_index_led_by_its_source(user: Any) -> None:
    # An entry per item in each index: the source's items are found by one index leading
    # with it, which also serves a run's items of one source (not a second, single-column
    # index written for every item as well).
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "ingestion_runitem")
    led_by_source = {
        name: c["columns"]
        for name, c in constraints.items()
        if c["index"] and c["columns"][0] == "source_id"
    }
    assert led_by_source == {"ingestion_runitem_source": ["source_id", "run_id", "id"]}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_sources_items_are_found_by_its_index(user: Any) -> None:
    source, run, _, _ = _world(user)
    queries = [
        # The SET NULL of a deleted source's items (Django's, as source.delete() runs it).
        (
            'UPDATE "ingestion_runitem" SET "source_id" = NULL WHERE "source_id" IN (%s)',
            [source.pk],
        ),
        # A run's items of one source, in order (the diff table's filter).
        (
            'SELECT * FROM "ingestion_runitem" WHERE "run_id" = %s AND "source_id" = %s'
            ' ORDER BY "id"',
            [run.pk, source.pk],
        ),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a small table: plans as at scale
        for sql, params in queries:
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "ingestion_runitem_source " in plan and "Sort" not in plan, (sql, plan)

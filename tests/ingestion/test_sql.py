"""The store's bulk statements (ingestion.store.bulk, .postgresql) on PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ingestion import store
from ingestion.adapters import Posting
from ingestion.models import Job, JobStatus
from ingestion.pipeline.jobrows import upsert_jobs
from ingestion.store import bulk as sql
from ingestion.store import postgresql
from runs.models import IngestionRun

pytestmark = pytest.mark.django_db(transaction=True)


def _work_mem_kb() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'work_mem'")
        return cursor.fetchone()[0]


@pytest.fixture
def postgres() -> None:
    if store.backend() is not postgresql:
        pytest.skip("the set-based statements are PostgreSQL's")


def test_a_large_batch_gets_the_work_mem_to_keep_its_rows_in_memory(postgres) -> None:  # type: ignore[no-untyped-def]
    # A batch of processed jobs carries ~8 MB of descriptions; unnest() keeps up to work_mem
    # of it (4 MB by default) in memory and writes the rest to a temporary file.
    default = _work_mem_kb()
    rows = [(n, "x" * 4000) for n in range(2000)]
    query = "SELECT count(*), sum(length(v.body)) FROM {rows} AS v(n, body)"
    with transaction.atomic():
        result = sql.execute_unnest(query, ("bigint", "text"), rows)
        raised = _work_mem_kb()
    assert result == [(2000, 8_000_000)]
    assert raised >= 2 * 8_000_000 // 1024, raised
    assert _work_mem_kb() == default  # for that transaction only


def test_a_small_batch_leaves_work_mem_alone(postgres) -> None:  # type: ignore[no-untyped-def]
    default = _work_mem_kb()
    with transaction.atomic():
        result = sql.execute_unnest(
            "SELECT count(*) FROM {rows} AS v(n, body)",
            ("bigint", "text"),
            [(n, "short") for n in range(2000)],
        )
        assert _work_mem_kb() == default
    assert result == [(2000,)]


def _postings(*keys: str) -> list[tuple[Posting, str]]:
    return [
        (
            Posting(
                external_id=key,
                title=f"Engineer {key}",
                url=f"https://boards.example/{key}",
                location="Berlin",
                description_html="<p>Build things.</p>",
                salary_min=Decimal("50000"),
                salary_max=Decimal("65000.50"),
                salary_currency="EUR",
                posted_at=timezone.now(),
            ),
            f"hash-{key}",
        )
        for key in keys
    ]


def test_new_jobs_go_in_by_copy_with_their_ids_and_the_rest_are_upserted(  # type: ignore[no-untyped-def]
    postgres, user, greenhouse_source
) -> None:
    run = IngestionRun.objects.create(owner=user, kind="ingest", status="ingesting")
    now = timezone.now()
    with transaction.atomic():
        first = upsert_jobs(run, greenhouse_source, _postings("a", "b"), now=now)
    with transaction.atomic():
        ids = upsert_jobs(
            run, greenhouse_source, _postings("b", "c", "d"), now=now, new_keys={"c", "d"}
        )
    jobs = {job.external_id: job for job in Job.objects.filter(owner=user)}
    assert set(jobs) == {"a", "b", "c", "d"}
    assert ids == {key: jobs[key].pk for key in ("c", "d")}  # b is unchanged: not written
    assert jobs["b"].pk == first["b"]
    copied = jobs["d"]
    assert (copied.status, copied.source_id, copied.last_run_id) == (
        JobStatus.PENDING,
        greenhouse_source.pk,
        run.pk,
    )
    assert (copied.salary_min, copied.salary_max, copied.salary_currency) == (
        Decimal("50000"),
        Decimal("65000.50"),
        "EUR",
    )
    assert copied.raw_description == "<p>Build things.</p>"
    # The ids came from the table's own sequence: later rows do not collide with them.
    later = Job.objects.create(
        owner=user, company="Acme", external_id="e", title="E", first_seen_at=now, last_seen_at=now
    )
    assert later.pk > max(ids.values())


def test_a_new_key_that_exists_after_all_fails_the_whole_batch(  # type: ignore[no-untyped-def]
    postgres, user, greenhouse_source
) -> None:
    # Only the owner's one active run inserts its jobs, so this cannot happen; if it did, the
    # batch must fail loudly rather than write half of itself or overwrite the stored job.
    run = IngestionRun.objects.create(owner=user, kind="ingest", status="ingesting")
    now = timezone.now()
    with transaction.atomic():
        upsert_jobs(run, greenhouse_source, _postings("a"), now=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        upsert_jobs(run, greenhouse_source, _postings("a", "b"), now=now, new_keys={"a", "b"})
    assert list(Job.objects.values_list("external_id", flat=True)) == ["a"]

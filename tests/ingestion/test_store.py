"""The store's seams: one backend per vendor, records that follow their models."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from ingestion import store
from ingestion.adapters import Posting
from ingestion.models import Job, JobFingerprint, JobStatus, RunItem
from ingestion.pipeline.content import Content
from ingestion.pipeline.jobrows import upsert_jobs
from ingestion.store import bulk, portable, postgresql
from ingestion.store.records import (
    ITEM_ROW_OMITS,
    JOB_ROW_OMITS,
    PENDING_COLUMNS,
    PROCESSED_COLUMNS,
    FingerprintRow,
    ItemRow,
    JobRow,
    column_mismatch,
    model_columns,
    types,
)
from runs.models import IngestionRun
from tests.ingestion.test_views_jobs import make_job


def test_the_backend_is_chosen_once_by_the_connections_vendor() -> None:
    store._backend_for.cache_clear()
    chosen = {id(store.backend()) for _ in range(5)}
    assert len(chosen) == 1
    assert store._backend_for.cache_info().misses == 1
    expected = postgresql if connection.vendor == "postgresql" else portable
    assert store.backend() is expected


@pytest.mark.parametrize(
    ("record", "model", "omit"),
    [
        (JobRow, Job, JOB_ROW_OMITS),
        (ItemRow, RunItem, ITEM_ROW_OMITS),
        (FingerprintRow, JobFingerprint, frozenset()),
    ],
)
def test_a_full_row_record_carries_every_column_of_its_model_in_order(  # type: ignore[no-untyped-def]
    record, model, omit
) -> None:
    # A column added to the model and not to the record fails here.
    assert column_mismatch(record, model, omit) == ""


def test_a_column_the_record_lacks_is_reported() -> None:
    # JobRow carries no id.
    assert "'id'" in column_mismatch(JobRow, Job, JOB_ROW_OMITS - {"id"})


@pytest.mark.parametrize("columns", [PENDING_COLUMNS, PROCESSED_COLUMNS])
def test_a_partial_record_names_columns_of_its_model_in_its_order(columns) -> None:  # type: ignore[no-untyped-def]
    order = model_columns(Job)
    assert [order.index(column) for column in columns] == sorted(
        order.index(column) for column in columns
    )


def test_the_statement_types_come_from_the_model() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the binary types are PostgreSQL's")
    named = dict(zip(JobRow._fields, types(Job, JobRow._fields), strict=True))
    assert (named["remote"], named["posted_at"], named["salary_min"]) == (
        "bool",
        "timestamptz",
        "numeric",
    )
    assert types(Job, ("id", "failed"), failed="bool")[1] == "bool"


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_stored_jobs_lookup_probes_keys_on_a_table_without_statistics(user) -> None:  # type: ignore[no-untyped-def]
    from tests.ingestion.test_views_jobs import _bulk_jobs

    # A first big ingest: thousands of a company's jobs the planner has no statistics for,
    # and the lookup prepared by the driver (a generic plan). Testing each of the company's
    # rows against the whole array of keys costs ~80 ms a batch of 1,000 here; probing or
    # hashing the keys ~3 ms.
    _bulk_jobs(user, 3000)
    company, external_id = Job.objects.values_list("company", "external_id").first()
    sql, params = postgresql.stored_jobs_query(user.pk, company, [external_id], ["id"])
    for number in range(1, len(params) + 1):
        sql = sql.replace("%s", f"${number}", 1)
    with connection.cursor() as cursor:
        # A temporary table of the same name comes first on the search path, and no
        # autovacuum ever analyzes it.
        cursor.execute("CREATE TEMP TABLE ingestion_job (LIKE public.ingestion_job INCLUDING ALL)")
        cursor.execute("INSERT INTO pg_temp.ingestion_job SELECT * FROM public.ingestion_job")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE stored_lookup AS {sql}")
        cursor.execute(f"EXPLAIN EXECUTE stored_lookup({', '.join(['%s'] * len(params))})", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE stored_lookup")
        cursor.execute("DROP TABLE pg_temp.ingestion_job")
    assert "ANY" not in plan, plan


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_stored_jobs_lookup_probes_keys_of_a_company_the_statistics_do_not_know(user) -> None:  # type: ignore[no-untyped-def]
    # A new company's jobs in a table analyzed before them (they are too few to make its
    # statistics stale): estimated at no rows, the company's jobs were hashed whole for
    # every batch of keys (at a million jobs, 20 times the probes' cost). A few keys
    # against a few thousand jobs: probing is the cheaper plan by far, as 1,000 keys
    # against a million jobs are. Both the plan made for the values (the statement's first
    # executions) and the generic one the server may keep once it is prepared.
    now = timezone.now()

    def jobs(company: str, count: int) -> None:
        Job.objects.bulk_create(
            Job(
                owner=user,
                company=company,
                external_id=str(n),
                first_seen_at=now,
                last_seen_at=now,
            )
            for n in range(count)
        )

    jobs("Known", 10000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingestion_job")
    jobs("New", 5000)
    keys = [str(n) for n in range(0, 5000, 250)]
    sql, params = postgresql.stored_jobs_query(user.pk, "New", keys, ["id", "external_id"])
    custom = "\n".join(row[0] for row in bulk.fetch_all("EXPLAIN " + sql, params))
    for number in range(1, len(params) + 1):
        sql = sql.replace("%s", f"${number}", 1)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE stored_lookup AS {sql}")
        cursor.execute(f"EXPLAIN EXECUTE stored_lookup({', '.join(['%s'] * len(params))})", params)
        generic = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE stored_lookup")
    for plan in (custom, generic):
        assert "Hash" not in plan, plan
        assert "Index Cond" in plan and "k.external_id" in plan.split("Index Cond")[1], plan
    found = postgresql.stored_jobs(user.pk, "New", keys, ["external_id"])
    assert sorted(row[0] for row in found) == sorted(keys)


# The columns of a job row the listing decides (not its ids, times or source).
COMPARED = frozenset(JobRow._fields) - {
    "owner_id",
    "source_id",
    "external_id",
    "posted_at",
    "valid_through",
    "first_seen_at",
    "last_seen_at",
    "expired_at",
    "created_at",
    "updated_at",
}


@pytest.mark.django_db(transaction=True)
def test_job_rows_carry_the_listings_decisions_and_processed_fields(
    user, greenhouse_source
) -> None:  # type: ignore[no-untyped-def]
    # Each row is built once in its final state (ingestion.pipeline.jobrows): every column of
    # a pending, a decided, a processed ready, skipped and failed job as the stage leaves it.
    run = IngestionRun.objects.create(owner=user, kind="ingest", status="ingesting")
    now = timezone.now()
    postings = [
        (
            Posting(
                external_id=f" {key} ",
                company="Row Co" if key == "pending" else "",
                title=f"  Engineer {key} ",
                url=f"https://boards.example/{key}",
                location="Berlin ;  Remote",
                remote=None,
                workplace_type="",
                employment_type="Full Time",
                department="R&D",
                description_html=f"<p onclick='x'>Build {key}.</p>",
                requirements_html="<p>Python<script>x</script></p>" if key == "ready" else "",
                salary_min=Decimal("1.50"),
                salary_text="1.50 an hour",
                raw_hash=f"raw-{key}",
                needs_detail=key == "pending",
            ),
            f"hash-{key}",
        )
        for key in ("pending", "listed", "ready", "skipped", "error")
    ]

    def done(key: str, error: str = "") -> Content:
        return Content(
            description=f"<p>Build {key}.</p>",
            text=f"Build {key}.",
            location="Berlin; Remote",
            remote=True,
            workplace_type="remote",
            employment_type="full_time",
            salary_min=Decimal("1.5"),
            salary_max=None,
            salary_currency="EUR",
            salary_period="hour",
            error=error,
        )

    with transaction.atomic():
        upsert_jobs(
            run,
            greenhouse_source,
            postings,
            now=now,
            new_keys={"pending", "listed", "ready", "skipped", "error"},
            listed={"listed": (-5, None), "ready": (7, None), "skipped": (8, None)},
            processed={
                "ready": (JobStatus.READY, done("ready")),
                "skipped": (JobStatus.SKIPPED, done("skipped")),
                "error": (JobStatus.ERROR, done("error", "boom")),
            },
        )
    jobs = {
        job.pop("external_id"): job
        for job in Job.objects.filter(owner=user).values("external_id", *sorted(COMPARED))
    }
    # What every row has, as listed; then what the listing's decision and processing change.
    listed = {
        "company": "Acme",
        "needs_detail": False,
        "description": "",
        "description_text": "",
        "requirements": "",
        "location": "Berlin ;  Remote",
        "remote": None,
        "workplace_type": "",
        "employment_type": "Full Time",
        "department": "R&D",
        "salary_min": Decimal("1.50"),
        "salary_max": None,
        "salary_currency": "",
        "salary_period": "",
        "salary_text": "1.50 an hour",
        "status": "pending",
        "simhash": None,
        "duplicate_of_id": None,
        "error_message": "",
        "last_run_id": run.pk,
    }
    processed = {
        "raw_description": "",
        "location": "Berlin; Remote",
        "remote": True,
        "workplace_type": "remote",
        "employment_type": "full_time",
        "salary_min": Decimal("1.5"),
        "salary_currency": "EUR",
        "salary_period": "hour",
    }

    def expected(key: str, **changes: object) -> dict[str, object]:
        mine = {
            "title": f"Engineer {key}",
            "url": f"https://boards.example/{key}",
            "raw_description": f"<p onclick='x'>Build {key}.</p>",
        }
        return {
            **listed,
            **mine,
            "content_hash": f"hash-{key}",
            "raw_hash": f"raw-{key}",
            **changes,
        }

    assert jobs == {
        "pending": expected("pending", company="Row Co", needs_detail=True),
        "listed": expected("listed", simhash=-5),
        "ready": expected(
            "ready",
            **processed,
            status="ready",
            simhash=7,
            description="<p>Build ready.</p>",
            description_text="Build ready.",
            requirements="<p>Python</p>",
        ),
        "skipped": expected(
            "skipped",
            **processed,
            status="skipped",
            simhash=8,
            description="<p>Build skipped.</p>",
            description_text="Build skipped.",
        ),
        # A failed job keeps its raw description (for "retry failed"), not a sanitized one.
        "error": expected(
            "error",
            **{**processed, "raw_description": "<p onclick='x'>Build error.</p>"},
            status="error",
            description_text="Build error.",
            error_message="boom",
        ),
    }


def _lz4_available() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        row = cursor.fetchone()
    return bool(row and row[0])


@pytest.mark.django_db
def test_a_jobs_long_texts_are_compressed_by_lz4(user) -> None:  # type: ignore[no-untyped-def]
    # pglz, the default, spent more of a job's write than any one index (migration 0017).
    if not _lz4_available():
        pytest.skip("PostgreSQL built with lz4 only")
    text = "<p>Build and run the data platform with the team.</p>\n" * 200
    job = make_job(
        user, raw_description=text, description=text, description_text=text, requirements=text
    )
    texts = ("raw_description", "description", "description_text", "requirements")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(f'pg_column_compression({c})' for c in texts)} "
            "FROM ingestion_job WHERE id = %s",
            [job.pk],
        )
        assert cursor.fetchone() == ("lz4",) * len(texts)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_expiry_finds_a_sources_vanished_jobs_without_reading_job_rows(user) -> None:  # type: ignore[no-untyped-def]
    # An unchanged re-run lists every job of its source: the anti-join of the source's jobs
    # and the run's items walked the whole table by its primary key (to save a sort) and
    # was a tenth of a 20,000-row re-run. It goes by the (source, status, id) index: only
    # the source's jobs, and none of their rows once the table is vacuumed (not possible
    # in a test's transaction).
    from ingestion.models import Source
    from ingestion.pipeline.expire import vanished_jobs
    from tests.ingestion.test_views_jobs import _bulk_jobs

    source = Source.objects.create(owner=user, kind="greenhouse", identifier="acme", company="A")
    _bulk_jobs(user, 3000)
    Job.objects.update(source=source)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingestion_job")
        cursor.execute("SET LOCAL enable_seqscan = off")  # a small table: plans as at scale
    sql, params = vanished_jobs(1, source.pk).values_list("id").query.sql_with_params()
    plan = "\n".join(row[0] for row in bulk.fetch_all("EXPLAIN " + sql, params))
    assert "ingestion_job_source_status" in plan and "ingestion_job_pkey" not in plan, plan

"""The store's seams: one backend per vendor, records that follow their models."""

from __future__ import annotations

import pytest
from django.db import connection

from ingestion import store
from ingestion.models import Job, JobFingerprint, RunItem
from ingestion.store import portable, postgresql
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

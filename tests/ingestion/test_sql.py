"""The pipeline's bulk statements (ingestion.pipeline.sql) on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from ingestion.pipeline import sql

pytestmark = pytest.mark.django_db(transaction=True)


def _work_mem_kb() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'work_mem'")
        return cursor.fetchone()[0]


@pytest.fixture
def postgres() -> None:
    if not sql.set_based():
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

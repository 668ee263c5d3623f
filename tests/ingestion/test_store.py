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

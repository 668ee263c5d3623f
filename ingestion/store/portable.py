"""The store on any other database Django supports (SQLite): the ORM, and executemany where
the ORM has no bulk form (an upsert, an UPDATE of many rows with their own values)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Model, Q

from ingestion.models import Job, JobFingerprint, JobStatus, RunItem
from ingestion.simhash import bands
from ingestion.store.conflicts import FINGERPRINT_ON_CONFLICT, JOB_ON_CONFLICT
from ingestion.store.records import (
    PENDING_COLUMNS,
    PROCESSED_COLUMNS,
    FingerprintRow,
    ItemRow,
    ItemVerdict,
    JobRow,
    ProcessedJob,
    positions,
)

# SQLite has one writer at a time: a second connection waits for the caller's transaction.
CONCURRENT_WRITERS = False

# Probes per lookup query: 4 IN lists of this many values stay far below SQLite's limit on
# query parameters (32,766).
PROBES_PER_QUERY = 500
# Ids per statement, under the same limit.
IDS_PER_QUERY = 2000
# Stored fingerprints compared with a query's probes at once (a block × probes matrix).
COMPARE_BLOCK = 1000

UPSERT_JOB_SQL = f"""
INSERT INTO ingestion_job ({", ".join(JobRow._fields)})
VALUES ({", ".join(["%s"] * len(JobRow._fields))})
{JOB_ON_CONFLICT}
"""

REHASH_SQL = "UPDATE ingestion_job SET raw_hash = %s WHERE id = %s"

TOUCH_UNCHANGED_SQL = """
INSERT INTO ingestion_jobseen (job_id, last_seen_at) VALUES (%s, %s)
ON CONFLICT (job_id) DO UPDATE SET last_seen_at = excluded.last_seen_at
"""

WRITE_PROCESSED_SQL = f"""
UPDATE ingestion_job SET
    {", ".join(f"{c} = %s" for c in PROCESSED_COLUMNS)},
    raw_description = CASE WHEN %s THEN raw_description ELSE '' END,
    needs_detail = CASE WHEN %s THEN needs_detail ELSE FALSE END
WHERE id = %s AND status = 'pending'
"""

WRITE_ITEM_STATUS_SQL = """
UPDATE ingestion_runitem SET
    job_status = %s,
    reason = CASE WHEN %s <> '' THEN %s ELSE reason END,
    attempts = attempts + 1,
    updated_at = %s
WHERE run_id = %s AND job_id = %s
"""

STORE_FINGERPRINT_SQL = f"""
INSERT INTO ingestion_jobfingerprint ({", ".join(FingerprintRow._fields)})
VALUES ({", ".join(["%s"] * len(FingerprintRow._fields))})
{FINGERPRINT_ON_CONFLICT}
"""

# SQLite before 3.43 has no octet_length.
TEXT_SIZES_SQL = """
SELECT id, length(CAST({column} AS BLOB)) FROM {table} WHERE id IN ({marks})
"""


def _executemany(sql: str, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def _when(value: Any) -> Any:
    return connection.ops.adapt_datetimefield_value(value) if value else None


def _money(value: Any) -> Any:
    return connection.ops.adapt_decimalfield_value(value, 12, 2) if value is not None else None


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def stored_jobs(
    owner_id: int, company: str, keys: list[str], columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    # order_by(): the model's default order would have the database walk the company's
    # jobs in posted order instead of probing the unique key.
    return list(
        Job.objects.filter(owner_id=owner_id, company=company, external_id__in=keys)
        .order_by()
        .values_list(*columns)
    )


# The positions of a JobRow's times and amounts, which the driver takes as Django adapts them.
_DATES = positions(JobRow, "datetime")
_MONEY = positions(JobRow, "Decimal")


def upsert_jobs(rows: Sequence[JobRow], new_keys: Collection[str]) -> dict[str, int]:
    """One executemany against the unique key; returns {} (the caller looks the ids up)."""
    adapted = []
    for row in rows:
        values = list(row)
        for i in _DATES:
            values[i] = _when(values[i])
        for i in _MONEY:
            values[i] = _money(values[i])
        adapted.append(values)
    _executemany(UPSERT_JOB_SQL, adapted)
    return {}


def touch_unchanged(
    now: datetime, job_ids: Sequence[int], rehashed: Sequence[tuple[int, str]]
) -> None:
    stamp = _when(now)
    _executemany(TOUCH_UNCHANGED_SQL, [(pk, stamp) for pk in job_ids])
    _executemany(REHASH_SQL, [(raw_hash, pk) for pk, raw_hash in rehashed])


def pending_jobs(run_id: int, ids: list[int]) -> list[tuple[Any, ...]]:
    return [
        (*row, [])
        for row in Job.objects.filter(id__in=ids, status=JobStatus.PENDING)
        .order_by("id")
        .values_list("id", *PENDING_COLUMNS)
    ]


_PROCESSED_DATES = positions(ProcessedJob, "datetime")
_PROCESSED_MONEY = positions(ProcessedJob, "Decimal")


def write_processed(
    run_id: int, now: datetime, jobs: Sequence[ProcessedJob], verdicts: Sequence[ItemVerdict]
) -> set[int]:
    stamp = _when(now)
    rows = []
    for job in jobs:
        values = list(job[: len(PROCESSED_COLUMNS)])
        for i in _PROCESSED_DATES:
            values[i] = _when(values[i])
        for i in _PROCESSED_MONEY:
            values[i] = _money(values[i])
        rows.append((*values, job.failed, job.failed, job.id))
    _executemany(WRITE_PROCESSED_SQL, rows)
    _executemany(
        WRITE_ITEM_STATUS_SQL,
        [(v.job_status, v.reason, v.reason, stamp, run_id, v.job_id) for v in verdicts],
    )
    # The rows this batch moved carry its time (another worker's move would not).
    return set(
        Job.objects.filter(id__in=[job.id for job in jobs], updated_at=now)
        .order_by()
        .values_list("id", flat=True)
    )


def insert_items(items: Sequence[ItemRow]) -> None:
    RunItem.objects.bulk_create(
        RunItem(**{column: getattr(item, column) for column in ItemRow.__slots__}) for item in items
    )


def store_fingerprints(rows: Sequence[FingerprintRow], new: bool) -> None:
    _executemany(STORE_FINGERPRINT_SQL, rows)


def drop_fingerprints(job_ids: Collection[int]) -> None:
    ids = list(job_ids)
    for start in range(0, len(ids), IDS_PER_QUERY):
        JobFingerprint.objects.filter(job_id__in=ids[start : start + IDS_PER_QUERY]).delete()


def near_fingerprints(
    owner_id: int, simhashes: Sequence[int], distance: int, companies: Sequence[int] | None
) -> list[tuple[Any, ...]]:
    """One query per PROBES_PER_QUERY simhashes for the fingerprints sharing a band (of
    the group's companies, if given), compared in numpy."""
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(simhashes), PROBES_PER_QUERY):
        group = simhashes[start : start + PROBES_PER_QUERY]
        group_bands = [bands(value) for value in group]
        probe = Q()
        for band in range(4):
            probe |= Q(**{f"band{band}__in": sorted({b[band] for b in group_bands})})
        sharing = JobFingerprint.objects.filter(owner_id=owner_id).filter(probe)
        if companies is not None:
            # Any of the group's companies: a job of another probe's company may come back,
            # and is turned down by the caller's rules, as one within the distance of
            # another probe is.
            keys = set(companies[start : start + PROBES_PER_QUERY])
            sharing = sharing.filter(company_key__in=sorted(keys))
        # Sharing a band is common (one company's postings cluster); being within the
        # distance is rare. Keep the fingerprints within the distance of some probe
        # (vectorized), and only then read the jobs, if they are still ready.
        probes = np.array(group, dtype=np.int64).view(np.uint64)
        close: dict[int, int] = {}
        pairs = list(sharing.order_by().values_list("job_id", "simhash"))
        for first in range(0, len(pairs), COMPARE_BLOCK):
            block = pairs[first : first + COMPARE_BLOCK]
            values = np.array([v for _, v in block], dtype=np.int64).view(np.uint64)
            nearest = np.bitwise_count(values[:, None] ^ probes[None, :]).min(axis=1)
            close.update(block[k] for k in np.nonzero(nearest <= distance)[0])
        if close:
            found.extend(
                row
                for row in Job.objects.filter(id__in=close, status=JobStatus.READY)
                .order_by()
                .values_list("id", "simhash", "first_seen_at", "company", "title")
                if row[1] == close[row[0]]
            )
    return found


def text_sizes(model: type[Model], column: str, ids: Sequence[int]) -> dict[int, int]:
    sizes: dict[int, int] = {}
    quoted = connection.ops.quote_name(column)
    for start in range(0, len(ids), IDS_PER_QUERY):
        part = list(ids[start : start + IDS_PER_QUERY])
        query = TEXT_SIZES_SQL.format(
            column=quoted, table=model._meta.db_table, marks=", ".join(["%s"] * len(part))
        )
        sizes.update(fetch_all(query, part))
    return sizes


def analyze(model: type[Model]) -> None:
    """Nothing: SQLite's planner has no statistics that a bulk insert leaves stale."""


def analyze_if_stale(model: type[Model]) -> None:
    """Nothing, as analyze()."""


def limit_lock_wait(seconds: int) -> None:
    """Nothing: SQLite's busy timeout bounds the wait."""


SET_LISTED_SQL = "UPDATE ingestion_job SET simhash = %s, duplicate_of_id = %s WHERE id = %s"


def set_listed(decisions: Sequence[tuple[int, int, int | None]]) -> None:
    _executemany(SET_LISTED_SQL, [(value, canonical, pk) for pk, value, canonical in decisions])

"""The store on PostgreSQL: set-based statements over `unnest()`ed arrays, binary COPY, and
lookups bound as one array (`= ANY(%b)`), through ingestion.store.bulk's server-binding
cursor. Each statement is a constant below; the column lists come from the records."""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from ingestion.models import Job, JobFingerprint, JobStatus, RunItem
from ingestion.simhash import bands
from ingestion.store import bulk
from ingestion.store.conflicts import FINGERPRINT_ON_CONFLICT, JOB_ON_CONFLICT
from ingestion.store.records import (
    PENDING_COLUMNS,
    PROCESSED_COLUMNS,
    FingerprintRow,
    ItemRow,
    ItemVerdict,
    JobRow,
    ProcessedJob,
    types,
)

# A second connection may write while the caller's transaction is open (row locks, not a
# database lock).
CONCURRENT_WRITERS = True

_JOB_COLUMNS = ", ".join(JobRow._fields)

# The keys joined as rows, not `external_id = ANY(...)`: on a table the planner has no
# statistics for yet (a first big ingest) it walks the company's rows by another index and
# tests each against the whole array, once the statement is prepared (a generic plan).
# The company comes through a subquery, so the planner does not see its value: a company
# the statistics do not know yet (its first ingests into a large table, well under the
# growth that makes them stale) is estimated at no rows when named, and all of its jobs
# were hashed for every batch of keys. Unseen, it is estimated as the average company of
# the table, whose rows outnumber a batch's keys: each key is probed by the unique key.
# Where the statistics know nothing of the column (a table analyzed while empty) the
# estimate is the same as with the value named.
STORED_JOBS_SQL = """
SELECT {columns}
FROM unnest(%s::text[]) AS k(external_id)
JOIN ingestion_job AS j
  ON j.owner_id = %s AND j.company = (SELECT %s::text) AND j.external_id = k.external_id
"""

UPSERT_JOBS_SQL = f"""
INSERT INTO ingestion_job ({_JOB_COLUMNS})
SELECT * FROM {{rows}} AS v({_JOB_COLUMNS})
{JOB_ON_CONFLICT}
RETURNING external_id, id
"""

# Into the narrow JobSeen, not the wide job row (ingestion.models.JobSeen says why).
TOUCH_UNCHANGED_SQL = """
INSERT INTO ingestion_jobseen (job_id, last_seen_at)
SELECT id, %b FROM unnest(%b::bigint[]) AS v(id)
ON CONFLICT (job_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
"""

REHASH_SQL = """
UPDATE ingestion_job AS j SET raw_hash = v.raw_hash
FROM {rows} AS v(id, raw_hash)
WHERE j.id = v.id
"""

# Ids for the rows a COPY inserts (COPY returns nothing), drawn from the table's sequence.
NEW_JOB_IDS_SQL = """
SELECT nextval(pg_get_serial_sequence('ingestion_job', 'id'))
FROM generate_series(1, %s)
"""

# The status is compared in Python, not in the WHERE: the plan must probe the primary key
# whatever the statistics say (believing few jobs pending, a planner would walk them all
# instead). The items come with their job, each found on the (job, run) index.
PENDING_JOBS_SQL = f"""
SELECT j.status, j.id, {", ".join(f"j.{c}" for c in PENDING_COLUMNS)},
       ARRAY(SELECT i.id FROM ingestion_runitem i WHERE i.run_id = %b AND i.job_id = j.id)
FROM ingestion_job j
WHERE j.id = ANY(%b)
ORDER BY j.id
"""

# Only still-pending rows: a job another worker (or a newer run) already moved is left
# alone. raw_description is dropped once sanitized, but a failed job keeps it (and its need
# of a detail fetch) for "retry failed".
WRITE_PROCESSED_SQL = f"""
UPDATE ingestion_job AS j SET
    {", ".join(f"{c} = v.{c}" for c in PROCESSED_COLUMNS)},
    raw_description = CASE WHEN v.failed THEN j.raw_description ELSE '' END,
    needs_detail = CASE WHEN v.failed THEN j.needs_detail ELSE FALSE END
FROM {{rows}} AS v({", ".join(ProcessedJob._fields)})
WHERE j.id = v.id AND j.status = 'pending'
RETURNING j.id
"""

# By the items' ids (from PENDING_JOBS_SQL), bound as an array too so the plan is a probe of
# the primary key: joined on (run, job), the planner hashed every item of the run per batch
# (its cost model prices a batch's index probes above a scan of a large run's items), a
# cost that grew with the run.
ITEM_STATUS_COLUMNS = ("job_status", "reason", "updated_at", "id")
WRITE_ITEM_STATUS_SQL = """
UPDATE ingestion_runitem AS i SET
    job_status = v.job_status,
    reason = CASE WHEN v.reason <> '' THEN v.reason ELSE i.reason END,
    attempts = i.attempts + 1,
    updated_at = v.updated_at
FROM {rows} AS v(job_status, reason, updated_at, id)
WHERE i.id = ANY(%b) AND i.id = v.id
"""

STORE_FINGERPRINTS_SQL = f"""
INSERT INTO ingestion_jobfingerprint ({", ".join(FingerprintRow._fields)})
SELECT * FROM {{rows}} AS v({", ".join(FingerprintRow._fields)})
{FINGERPRINT_ON_CONFLICT}
"""

DROP_FINGERPRINTS_SQL = """
DELETE FROM ingestion_jobfingerprint WHERE job_id = ANY(%b)
"""

# Each band's probes joined to its index, the distance computed by the server, so only the
# (rare) fingerprints within it come back instead of every one sharing a band (one company's
# postings share bands often: dozens per probe). With each probe's company key, the index
# (owner, band, company key) reaches only that company's fingerprints: the owner's other
# companies' jobs sharing the band (~60 a probe at a million jobs) are never read.
NEAR_FINGERPRINTS_SQL = "\nUNION\n".join(
    f"""SELECT f.job_id, f.simhash
FROM unnest(%(probes)s::bigint[], %(band{band})s::int[]) AS p(simhash, band)
JOIN ingestion_jobfingerprint f ON f.owner_id = %(owner)s AND f.band{band} = p.band
WHERE bit_count((f.simhash # p.simhash)::bit(64)) <= %(distance)s"""
    for band in range(4)
)
NEAR_COMPANY_FINGERPRINTS_SQL = "\nUNION\n".join(
    f"""SELECT f.job_id, f.simhash
FROM unnest(%(probes)s::bigint[], %(band{band})s::int[], %(companies)s::int[])
    AS p(simhash, band, company_key)
JOIN ingestion_jobfingerprint f
    ON f.owner_id = %(owner)s AND f.band{band} = p.band AND f.company_key = p.company_key
WHERE bit_count((f.simhash # p.simhash)::bit(64)) <= %(distance)s"""
    for band in range(4)
)

# Then those whose job is still ready with that simhash, in a statement of its own and with
# the status compared in Python: the plan must be a probe of the primary key whatever the
# statistics say of the job table (joined in one statement, or with the status in its WHERE,
# a planner that believed no job ready walked every ready job instead).
STILL_READY_SQL = """
SELECT id, simhash, first_seen_at, company, title, status FROM ingestion_job WHERE id = ANY(%b)
"""

# octet_length reads the size from the value's header: it does not decompress a TOASTed one.
TEXT_SIZES_SQL = """
SELECT id, octet_length({column}) FROM {table} WHERE id = ANY(%b)
"""


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return bulk.fetch_all(sql, params)


def stored_jobs(
    owner_id: int, company: str, keys: list[str], columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    return bulk.fetch_all(*stored_jobs_query(owner_id, company, keys, columns))


def stored_jobs_query(
    owner_id: int, company: str, keys: list[str], columns: Sequence[str]
) -> tuple[str, list[Any]]:
    """The statement `stored_jobs` runs and its parameters: the keys as one array parameter
    (Django would quote each into an IN list)."""
    sql = STORED_JOBS_SQL.format(columns=", ".join(f"j.{column}" for column in columns))
    return sql, [keys, owner_id, company]


def upsert_jobs(rows: Sequence[JobRow], new_keys: Collection[str]) -> dict[str, int]:
    """One INSERT … ON CONFLICT over unnest(); the rows of `new_keys` by COPY instead, with
    ids drawn beforehand: no conflict check per row. Should one exist after all, the COPY
    fails on the unique key and nothing of the batch is written."""
    ids: dict[str, int] = {}
    if new_keys:
        new_rows = [row for row in rows if row.external_id in new_keys]
        if new_rows:
            rows = [row for row in rows if row.external_id not in new_keys]
            ids.update(_copy_new_jobs(new_rows))
    if rows:
        row_types = types(Job, JobRow._fields)
        ids.update(bulk.execute_unnest(UPSERT_JOBS_SQL, row_types, rows))
    return ids


def _copy_new_jobs(rows: list[JobRow]) -> dict[str, int]:
    ids = [pk for (pk,) in bulk.fetch_all(NEW_JOB_IDS_SQL, [len(rows)])]
    columns = ("id", *JobRow._fields)
    bulk.copy_rows(
        Job, columns, types(Job, columns), [(pk, *row) for pk, row in zip(ids, rows, strict=True)]
    )
    return {row.external_id: pk for pk, row in zip(ids, rows, strict=True)}


def touch_unchanged(
    now: datetime, job_ids: Sequence[int], rehashed: Sequence[tuple[int, str]]
) -> None:
    # One array parameter: Django would quote every id into an IN list in Python.
    with bulk.bulk_cursor() as cursor:
        cursor.execute(TOUCH_UNCHANGED_SQL, [now, list(job_ids)])
    if rehashed:
        bulk.execute_unnest(REHASH_SQL, types(Job, ("id", "raw_hash")), rehashed)


def pending_jobs(run_id: int, ids: list[int]) -> list[tuple[Any, ...]]:
    # One array parameter: Django would quote every id into an IN list in Python.
    rows = bulk.fetch_all(PENDING_JOBS_SQL, [run_id, ids])
    return [row[1:] for row in rows if row[0] == JobStatus.PENDING]


def write_processed(
    run_id: int, now: datetime, jobs: Sequence[ProcessedJob], verdicts: Sequence[ItemVerdict]
) -> set[int]:
    written = {
        pk
        for (pk,) in bulk.execute_unnest(
            WRITE_PROCESSED_SQL, types(Job, ProcessedJob._fields, failed="bool"), jobs
        )
    }
    item_rows = [(v.job_status, v.reason, now, pk) for v in verdicts for pk in v.item_ids]
    bulk.execute_unnest(
        WRITE_ITEM_STATUS_SQL,
        types(RunItem, ITEM_STATUS_COLUMNS),
        item_rows,
        params=[[row[-1] for row in item_rows]],
    )
    return written


_ITEM_COLUMNS = (*ItemRow.__slots__, "created_at", "updated_at")
# An item's values in its columns' order, read in C (an item per row of the listing).
_item_values = operator.attrgetter(*ItemRow.__slots__)


def insert_items(items: Sequence[ItemRow]) -> None:
    """One binary COPY: a preview writes an item per posting, and bulk_create spent more time
    building their SQL than the database spent storing them; a text COPY quotes every value
    (docs/performance.md)."""
    now = timezone.now()
    stamps = (now, now)
    bulk.copy_rows(
        RunItem,
        _ITEM_COLUMNS,
        types(RunItem, _ITEM_COLUMNS),
        [_item_values(item) + stamps for item in items],
    )


def store_fingerprints(rows: Sequence[FingerprintRow], new: bool) -> None:
    """New jobs' by binary COPY: no conflict to look for, and psycopg formats the rows in C."""
    row_types = types(JobFingerprint, FingerprintRow._fields)
    if new:
        bulk.copy_rows(JobFingerprint, FingerprintRow._fields, row_types, rows)
    else:
        bulk.execute_unnest(STORE_FINGERPRINTS_SQL, row_types, rows)


def drop_fingerprints(job_ids: Collection[int]) -> None:
    with bulk.bulk_cursor() as cursor:
        cursor.execute(DROP_FINGERPRINTS_SQL, [list(job_ids)])


def near_fingerprints(
    owner_id: int, simhashes: Sequence[int], distance: int, companies: Sequence[int] | None
) -> list[tuple[Any, ...]]:
    params: dict[str, Any] = {"probes": list(simhashes), "owner": owner_id, "distance": distance}
    all_bands = [bands(value) for value in simhashes]
    for band in range(4):
        params[f"band{band}"] = [b[band] for b in all_bands]
    sql = NEAR_FINGERPRINTS_SQL
    if companies is not None:
        params["companies"] = list(companies)
        sql = NEAR_COMPANY_FINGERPRINTS_SQL
    with bulk.bulk_cursor() as cursor:
        cursor.execute(sql, params)
        close = dict(cursor.fetchall())
        if not close:
            return []
        cursor.execute(STILL_READY_SQL, [list(close)])
        return [
            (pk, value, first_seen_at, company, title)
            for pk, value, first_seen_at, company, title, status in cursor.fetchall()
            if status == JobStatus.READY and value == close[pk]
        ]


def text_sizes(model: type[Model], column: str, ids: Sequence[int]) -> dict[int, int]:
    query = TEXT_SIZES_SQL.format(
        column=connection.ops.quote_name(column), table=model._meta.db_table
    )
    return dict(bulk.fetch_all(query, [list(ids)]))


def analyze(model: type[Model]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {model._meta.db_table}")


# Never analyzed, or grown or shrunk since by more than autovacuum's default threshold (50 +
# 10 %): the plans the statistics decide (probe the unique key or hash a company's jobs)
# depend on how many rows there are, not on how many were rewritten (a re-run rewrites many).
# The live rows reach the statistics views up to seconds late, the table's size at once: a
# file more than three times its analyzed size has grown as well (a rewrite of every row
# leaves a dead version of each until vacuumed: twice the size, for one re-run). The live
# rows are read by the function behind pg_stat_user_tables, for this table alone: the view
# joins every table's statistics, and a work horse's new session plans it from scratch.
STALE_STATISTICS_SQL = """
SELECT c.reltuples < 0
    OR ABS(pg_stat_get_live_tuples(c.oid) - c.reltuples) > 50 + 0.1 * c.reltuples
    OR pg_relation_size(c.oid) / current_setting('block_size')::int > 10 + 3 * c.relpages
FROM pg_class AS c
WHERE c.oid = %s::regclass
"""


def analyze_if_stale(model: type[Model]) -> None:
    with connection.cursor() as cursor:
        if not connection.in_atomic_block and getattr(connection, "pg_version", 0) >= 150000:
            # This session's own writes reach the statistics when it is next idle, at most
            # once a second: flushed first (between the two statements), so that the check
            # counts them, and a flush after the ANALYZE that follows does not add them to
            # its count a second time (the next listing would find the table stale again).
            # PostgreSQL 14, which Django 5.2 still supports, has no such function.
            cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(STALE_STATISTICS_SQL, [model._meta.db_table])
        row = cursor.fetchone()
    if row is not None and row[0]:
        analyze(model)


def limit_lock_wait(seconds: int) -> None:
    """Fail rather than wait longer than this for a lock, until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{int(seconds)}s'")


SET_LISTED_SQL = """
UPDATE ingestion_job AS j SET simhash = v.simhash, duplicate_of_id = v.duplicate_of_id
FROM {rows} AS v(id, simhash, duplicate_of_id)
WHERE j.id = v.id
"""


def set_listed(decisions: Sequence[tuple[int, int, int | None]]) -> None:
    bulk.execute_unnest(SET_LISTED_SQL, ("bigint", "bigint", "bigint"), decisions)

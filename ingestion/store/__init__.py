"""The store: the pipeline's bulk reads and writes, behind one set of domain functions.

The stages (ingestion.pipeline, ingestion.dedupe, ingestion.fetching) say what to read or
write; how is the backend's business, chosen once by the connection's vendor the way
Django's db/backends/<vendor>/operations.py are: `postgresql` (set-based statements over
unnest(), binary COPY, array-bound lookups) or `portable` (the ORM and executemany, for
SQLite). Rows travel as the typed records of ingestion.store.records. Every function works
in the caller's transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from django.db import connection
from django.db.models import Model

from ingestion.store import portable, postgresql
from ingestion.store.records import (
    FingerprintRow,
    ItemRow,
    ItemVerdict,
    JobRow,
    PendingJob,
    ProcessedJob,
)

__all__ = [
    "FingerprintRow",
    "ItemRow",
    "ItemVerdict",
    "JobRow",
    "PendingJob",
    "ProcessedJob",
    "analyze",
    "analyze_if_stale",
    "backend",
    "concurrent_writers",
    "drop_fingerprints",
    "fetch_all",
    "insert_items",
    "limit_lock_wait",
    "near_fingerprints",
    "pending_jobs",
    "set_listed",
    "store_fingerprints",
    "stored_jobs",
    "text_sizes",
    "touch_unchanged",
    "upsert_jobs",
    "write_processed",
]


class Backend(Protocol):
    """What a backend module provides (mypy checks both modules against it)."""

    CONCURRENT_WRITERS: bool

    def fetch_all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...
    def stored_jobs(
        self, owner_id: int, company: str, keys: list[str], columns: Sequence[str]
    ) -> list[tuple[Any, ...]]: ...
    def upsert_jobs(self, rows: Sequence[JobRow], new_keys: Collection[str]) -> dict[str, int]: ...
    def touch_unchanged(
        self, now: datetime, job_ids: Sequence[int], rehashed: Sequence[tuple[int, str]]
    ) -> None: ...
    def pending_jobs(self, run_id: int, ids: list[int]) -> list[tuple[Any, ...]]: ...
    def write_processed(
        self,
        run_id: int,
        now: datetime,
        jobs: Sequence[ProcessedJob],
        verdicts: Sequence[ItemVerdict],
    ) -> set[int]: ...
    def insert_items(self, items: Sequence[ItemRow]) -> None: ...
    def store_fingerprints(self, rows: Sequence[FingerprintRow], new: bool) -> None: ...
    def drop_fingerprints(self, job_ids: Collection[int]) -> None: ...
    def near_fingerprints(
        self,
        owner_id: int,
        simhashes: Sequence[int],
        distance: int,
        companies: Sequence[int] | None,
    ) -> list[tuple[Any, ...]]: ...
    def set_listed(self, decisions: Sequence[tuple[int, int, int | None]]) -> None: ...
    def text_sizes(self, model: type[Model], column: str, ids: Sequence[int]) -> dict[int, int]: ...
    def analyze(self, model: type[Model]) -> None: ...
    def analyze_if_stale(self, model: type[Model]) -> None: ...
    def limit_lock_wait(self, seconds: int) -> None: ...


_BACKENDS: dict[str, Backend] = {"postgresql": postgresql}


@functools.cache
def _backend_for(vendor: str) -> Backend:
    return _BACKENDS.get(vendor, portable)


def backend() -> Backend:
    """The backend of the default database: the one place the vendor is asked."""
    return _backend_for(connection.vendor)


# --- the listing -----------------------------------------------------------------------------


def stored_jobs(
    owner_id: int, company: str, keys: list[str], columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """`columns` of the company's stored jobs (of this owner) with these external ids."""
    return backend().stored_jobs(owner_id, company, keys, columns)


def upsert_jobs(rows: Sequence[JobRow], *, new_keys: Collection[str] = ()) -> dict[str, int]:
    """Insert or update these jobs against the unique key (owner, company, external_id).
    Idempotent: the same rows twice give the same jobs. On conflict the listing's columns
    are taken and the job goes back to pending, unless its content is unchanged (and it is
    not expired). Returns {external_id: job id} of the rows written when the database says
    (PostgreSQL); callers look up what it leaves out.

    `new_keys`: external ids the caller has just found stored nowhere, in this transaction
    of the owner's one active run (the database allows no second one), so nothing else can
    be inserting them; a backend may insert those without a conflict check, and then fails
    the whole batch (IntegrityError) should one exist after all."""
    return backend().upsert_jobs(rows, new_keys)


def touch_unchanged(
    now: datetime, job_ids: Sequence[int], rehashed: Sequence[tuple[int, str]] = ()
) -> None:
    """Stamp these unchanged jobs seen `now` (in JobSeen, not the wide job row); the (id,
    raw hash) pairs of `rehashed`, read again because their raw hash no longer matched, also
    take their new raw hash."""
    if job_ids:
        backend().touch_unchanged(now, job_ids, rehashed)


def insert_items(items: Sequence[ItemRow]) -> None:
    """Insert these RunItems, stamped now."""
    if items:
        backend().insert_items(items)


# --- the ingesting stage ---------------------------------------------------------------------


def pending_jobs(run_id: int, ids: list[int]) -> list[PendingJob]:
    """The still-pending jobs among `ids`, by id, each with its items of run `run_id`
    (PostgreSQL; elsewhere the items are found by job when written)."""
    return [PendingJob(*row) for row in backend().pending_jobs(run_id, ids)]


def write_processed(
    run_id: int, now: datetime, jobs: Sequence[ProcessedJob], verdicts: Sequence[ItemVerdict]
) -> set[int]:
    """Write the ingesting stage's results to the jobs still pending (a job another worker or
    a newer run moved is left alone) and each verdict to the job's items of run `run_id`.
    Returns the ids of the jobs written."""
    if not jobs:
        return set()
    return backend().write_processed(run_id, now, jobs, verdicts)


def text_sizes(model: type[Model], column: str, ids: Sequence[int]) -> dict[int, int]:
    """{id: the size in bytes of `column`} for these rows of `model`."""
    return backend().text_sizes(model, column, ids) if ids else {}


def analyze(model: type[Model]) -> None:
    """Refresh the planner's statistics of `model`'s table, where the database keeps any."""
    backend().analyze(model)


def analyze_if_stale(model: type[Model]) -> None:
    """analyze(), when the table was never analyzed or grew or shrank by more than
    autovacuum's default threshold since (autovacuum may be off, or not there yet); rows
    rewritten in place do not make it stale."""
    backend().analyze_if_stale(model)


# --- near-duplicates -------------------------------------------------------------------------


def store_fingerprints(rows: Sequence[FingerprintRow], *, new: bool = False) -> None:
    """Record these fingerprints, replacing what was recorded for their jobs.

    `new`: the jobs were inserted in this transaction, so none has a fingerprint yet; a
    backend may insert them without a conflict check, and then fails the whole batch
    (IntegrityError) should one exist after all."""
    if rows:
        backend().store_fingerprints(rows, new)


def drop_fingerprints(job_ids: Collection[int]) -> None:
    """Forget the fingerprints of jobs that are no longer ready (skipped, failed, expired)."""
    if job_ids:
        backend().drop_fingerprints(job_ids)


def near_fingerprints(
    owner_id: int,
    simhashes: Sequence[int],
    distance: int,
    companies: Sequence[int] | None = None,
) -> list[tuple[Any, ...]]:
    """(job id, simhash, first_seen_at, company, title) of the owner's ready jobs whose
    simhash is within `distance` of one of `simhashes` (found through the bands they share
    with them). `companies`: each simhash's company key (ingestion.dedupe.company_key), to
    find only jobs of that company; None, of any."""
    if not simhashes:
        return []
    return backend().near_fingerprints(owner_id, simhashes, distance, companies)


def set_listed(decisions: Sequence[tuple[int, int, int | None]]) -> None:
    """Record the listing's fingerprint and near-duplicate decision on pending jobs:
    (job id, simhash, the job it duplicates or None). The ingesting stage reads both with
    the pending job and reuses them instead of computing the simhash again."""
    if decisions:
        backend().set_listed(decisions)


# --- anything else ---------------------------------------------------------------------------


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a query with %s placeholders; on PostgreSQL read in binary (a bytea
    travels as itself, not as hex)."""
    return backend().fetch_all(sql, params)


def concurrent_writers() -> bool:
    """Whether a second connection can write while this one's transaction is open."""
    return backend().CONCURRENT_WRITERS


def limit_lock_wait(seconds: int) -> None:
    """In the current transaction, fail rather than wait longer than this for a lock."""
    backend().limit_lock_wait(seconds)

"""Near-duplicate detection: the same posting listed under another key (re-posted with a new
id, or on two boards), found by the simhash of its text.

Two simhashes within Hamming distance 3 agree on at least one of their four 16-bit bands
(pigeonhole: 3 differing bits touch at most 3 bands), so the stored candidates are found with
the indexed band columns of JobFingerprint (`ingestion_fingerprint_band0..3`) and only they
are compared exactly — never a scan of the owner's jobs. A fingerprint counts only while its
job is ready with that simhash: the few rows within the distance are checked against the job
table, so a fingerprint left behind by a job that moved on finds nothing."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Q

from ingestion.models import Job, JobFingerprint, JobStatus
from ingestion.pipeline import sql
from ingestion.pipeline.batching import batched
from ingestion.simhash import bands, hamming

# The pigeonhole over four bands holds up to this distance.
MAX_DISTANCE = 3
# Batch simhashes per query: 4 IN lists of this many values stay far below SQLite's limit on
# query parameters (32,766) and keep PostgreSQL's plans simple.
_LOOKUP_CHUNK = 500
# Stored rows compared with a chunk's probes at once (a block × probes matrix of uint64).
_COMPARE_BLOCK = 1000


def max_distance() -> int:
    """settings.INTAKE_SIMHASH_DISTANCE, validated against what the band lookup can find."""
    distance = settings.INTAKE_SIMHASH_DISTANCE
    if not isinstance(distance, int) or not 0 <= distance <= MAX_DISTANCE:
        raise ImproperlyConfigured(
            f"INTAKE_SIMHASH_DISTANCE must be an integer from 0 to {MAX_DISTANCE} (the "
            f"four-band lookup cannot find anything further apart), not {distance!r}."
        )
    return distance


class _BandIndex:
    """Simhashes by (band number, band value), each with a rank (lower is earlier seen):
    a lookup compares only the entries that share a band with the value looked up."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], list[tuple[tuple[float, int], int, int]]] = {}

    def add(self, rank: tuple[float, int], job_id: int, value: int) -> None:
        for band, band_value in enumerate(bands(value)):
            self._entries.setdefault((band, band_value), []).append((rank, job_id, value))

    def earliest_within(self, value: int, distance: int) -> int | None:
        """The id of the earliest entry within `distance` of `value`, if any."""
        best: tuple[tuple[float, int], int] | None = None
        for band, band_value in enumerate(bands(value)):
            for rank, job_id, other in self._entries.get((band, band_value), ()):
                if (best is None or rank < best[0]) and hamming(value, other) <= distance:
                    best = (rank, job_id)
        return best[1] if best else None


# PostgreSQL: each band's probes joined to its index, the distance computed by the server,
# so only the (rare) fingerprints within it come back instead of every one sharing a band (one
# company's postings share bands often: dozens per probe).
_NEAR_SQL = " UNION ".join(
    "SELECT f.job_id, f.simhash "
    f"FROM unnest(%(probes)s::bigint[], %(band{band})s::int[]) AS p(simhash, band) "
    f"JOIN ingestion_jobfingerprint f ON f.owner_id = %(owner)s AND f.band{band} = p.band "
    "WHERE bit_count((f.simhash # p.simhash)::bit(64)) <= %(distance)s"
    for band in range(4)
)
# Then those whose job is still ready with that simhash, in a statement of its own and with
# the status compared here: the plan must be a probe of the primary key whatever the
# statistics say of the job table (joined in one statement, or with the status in its WHERE,
# a planner that believed no job ready walked every ready job instead).
_STILL_READY_SQL = "SELECT id, simhash, first_seen_at, status FROM ingestion_job WHERE id = ANY(%b)"
_FINGERPRINT_COLUMNS = ("job_id", "owner_id", "simhash", "band0", "band1", "band2", "band3")
_STORE_SQL = (
    f"INSERT INTO ingestion_jobfingerprint ({', '.join(_FINGERPRINT_COLUMNS)}) "
    "{rows} ON CONFLICT (job_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _FINGERPRINT_COLUMNS[1:])
)


def store_fingerprints(owner_id: int, jobs: Sequence[tuple[int, int]]) -> None:
    """Record (job_id, simhash) of ready jobs of `owner_id` for the lookup, replacing what
    was recorded for them before. In the caller's transaction, with the jobs' status."""
    rows = [(job_id, owner_id, value, *bands(value)) for job_id, value in jobs]
    if not rows:
        return
    if sql.set_based():
        sql.execute_unnest(
            _STORE_SQL.replace(
                "{rows}", f"SELECT * FROM {{rows}} AS v({', '.join(_FINGERPRINT_COLUMNS)})"
            ),
            ("bigint", "integer", "bigint", "integer", "integer", "integer", "integer"),
            rows,
        )
    else:
        placeholders = ", ".join(["%s"] * len(_FINGERPRINT_COLUMNS))
        sql.executemany(_STORE_SQL.replace("{rows}", f"VALUES ({placeholders})"), rows)


def drop_fingerprints(job_ids: Collection[int]) -> None:
    """Forget the fingerprints of jobs that are no longer ready (skipped, failed, expired)."""
    if not job_ids:
        return
    if sql.set_based():
        with sql.bulk_cursor() as cursor:
            cursor.execute(
                "DELETE FROM ingestion_jobfingerprint WHERE job_id = ANY(%b)", [list(job_ids)]
            )
        return
    for ids in batched(list(job_ids), _LOOKUP_CHUNK * 4):
        JobFingerprint.objects.filter(job_id__in=ids).delete()


def _stored_index(owner_id: int, simhashes: Sequence[int], ignored: set[int]) -> _BandIndex:
    """The owner's ready jobs within MAX_DISTANCE of any of `simhashes` (but not `ignored`),
    ranked by (first_seen_at, id): found through the bands they share with them."""
    if connection.vendor == "postgresql":
        rows = _near_rows_postgres(owner_id, simhashes)
    else:
        rows = _near_rows(owner_id, simhashes)
    index = _BandIndex()
    seen: set[int] = set()
    for job_id, value, first_seen_at in rows:
        if value is not None and job_id not in ignored and job_id not in seen:
            seen.add(job_id)
            index.add((first_seen_at.timestamp(), job_id), job_id, value)
    return index


def _near_rows_postgres(owner_id: int, simhashes: Sequence[int]) -> list[tuple[Any, ...]]:
    params: dict[str, Any] = {
        "probes": list(simhashes),
        "owner": owner_id,
        "distance": MAX_DISTANCE,
    }
    all_bands = [bands(value) for value in simhashes]
    for band in range(4):
        params[f"band{band}"] = [b[band] for b in all_bands]
    with sql.bulk_cursor() as cursor:
        cursor.execute(_NEAR_SQL, params)
        close = dict(cursor.fetchall())
        if not close:
            return []
        cursor.execute(_STILL_READY_SQL, [list(close)])
        return [
            (pk, value, first_seen_at)
            for pk, value, first_seen_at, status in cursor.fetchall()
            if status == JobStatus.READY and value == close[pk]
        ]


def _near_rows(owner_id: int, simhashes: Sequence[int]) -> list[tuple[Any, ...]]:
    """(id, simhash, first_seen_at) of the candidates, the portable way: one query per chunk
    of simhashes for the fingerprints sharing a band, compared in numpy."""
    found: list[tuple[Any, ...]] = []
    for i in range(0, len(simhashes), _LOOKUP_CHUNK):
        chunk_bands = [bands(value) for value in simhashes[i : i + _LOOKUP_CHUNK]]
        probe = Q()
        for band in range(4):
            probe |= Q(**{f"band{band}__in": sorted({b[band] for b in chunk_bands})})
        sharing = JobFingerprint.objects.filter(owner_id=owner_id).filter(probe)
        # Sharing a band is common (one company's postings cluster); being within the
        # distance is rare. Keep the fingerprints within the distance of some probe
        # (vectorized), and only then read the jobs, if they are still ready.
        probes = np.array(simhashes[i : i + _LOOKUP_CHUNK], dtype=np.int64).view(np.uint64)
        close: dict[int, int] = {}
        pairs = list(sharing.order_by().values_list("job_id", "simhash"))
        for block in batched(pairs, _COMPARE_BLOCK):
            values = np.array([v for _, v in block], dtype=np.int64).view(np.uint64)
            nearest = np.bitwise_count(values[:, None] ^ probes[None, :]).min(axis=1)
            close.update(block[k] for k in np.nonzero(nearest <= MAX_DISTANCE)[0])
        if close:
            found.extend(
                row
                for row in Job.objects.filter(id__in=close, status=JobStatus.READY)
                .order_by()
                .values_list("id", "simhash", "first_seen_at")
                if row[1] == close[row[0]]
            )
    return found


def find_near_duplicates(
    *,
    owner_id: int,
    candidates: Sequence[tuple[int, int]],
    exclude_ids: Collection[int] = (),
) -> dict[int, int]:
    """{job_id: canonical_job_id} for the candidates — (job_id, signed simhash) of the jobs
    being processed now, earliest seen first — that are near-duplicates (Hamming distance
    ≤ INTAKE_SIMHASH_DISTANCE) of another job of the same owner.

    The canonical job is the earliest seen: the owner's stored `ready` jobs first (by
    first_seen_at, then id), then the earlier candidates of this batch that are not
    themselves duplicates. Skipped duplicates never become canonical, and expired jobs do
    not count (a role re-posted after it closed is live again). A candidate is never matched
    with itself or with the other candidates as stored rows, nor with `exclude_ids`."""
    if not candidates:
        return {}
    distance = max_distance()
    ignored = {job_id for job_id, _ in candidates} | set(exclude_ids)
    stored = _stored_index(owner_id, [value for _, value in candidates], ignored)

    duplicates: dict[int, int] = {}
    batch = _BandIndex()  # this batch's canonical jobs so far, ranked by position
    decided: set[int] = set()
    for position, (job_id, value) in enumerate(candidates):
        if job_id in decided:
            continue  # listed twice: its first occurrence decided
        decided.add(job_id)
        canonical = stored.earliest_within(value, distance)
        if canonical is None:
            canonical = batch.earliest_within(value, distance)
        if canonical is None:
            batch.add((float(position), job_id), job_id, value)
        else:
            duplicates[job_id] = canonical
    return duplicates

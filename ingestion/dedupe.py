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

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ingestion import store
from ingestion.simhash import bands, hamming

# The pigeonhole over four bands holds up to this distance.
MAX_DISTANCE = 3


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


def store_fingerprints(owner_id: int, jobs: Sequence[tuple[int, int]]) -> None:
    """Record (job_id, simhash) of ready jobs of `owner_id` for the lookup, replacing what
    was recorded for them before. In the caller's transaction, with the jobs' status."""
    store.store_fingerprints(
        [store.FingerprintRow(job_id, owner_id, value, *bands(value)) for job_id, value in jobs]
    )


def _stored_index(owner_id: int, simhashes: Sequence[int], ignored: set[int]) -> _BandIndex:
    """The owner's ready jobs within MAX_DISTANCE of any of `simhashes` (but not `ignored`),
    ranked by (first_seen_at, id): found through the bands they share with them."""
    index = _BandIndex()
    seen: set[int] = set()
    for job_id, value, first_seen_at in store.near_fingerprints(owner_id, simhashes, MAX_DISTANCE):
        if value is not None and job_id not in ignored and job_id not in seen:
            seen.add(job_id)
            index.add((first_seen_at.timestamp(), job_id), job_id, value)
    return index


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

"""The listing's pre-check: records told unchanged by their raw hash, before they are mapped.

A record (ingestion.adapters.RawRecord: a row of an uploaded file, not read into a Posting
yet) whose raw hash equals its stored job's, the job not expired, reads as that job's posting
with the same verdict (ingestion.normalize.raw_hasher says what the hash covers). Such a record
is recorded `unchanged` from the stored job alone: no mapping, no content hash. Every other
entry goes on to be mapped and compared as a whole (ingestion.pipeline.diff).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings

from ingestion import normalize, store
from ingestion.adapters import Posting, RawRecord
from ingestion.adapters.base import public_options
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source

# A stored job as the listing compares it: id, content hash, status, raw hash, title, URL.
STORED_COLUMNS = ("external_id", "id", "content_hash", "status", "raw_hash", "title", "url")
Stored = tuple[int, str, str, str, str, str]
# Text columns' lengths of the items, read from the model: a posting's values are cut to fit.
ITEM_MAX = {f.name: f.max_length for f in RunItem._meta.concrete_fields if f.max_length}
_COMPANY_MAX = Job._meta.get_field("company").max_length
_EXTERNAL_ID_MAX, _TITLE_MAX, _URL_MAX = ITEM_MAX["external_id"], ITEM_MAX["title"], ITEM_MAX["url"]


def job_company(posting: Posting | RawRecord, source: Source) -> str:
    """The company a posting's job is stored under, the first part of its unique key: the
    one the posting names (only adapters with `row_companies` keep one), else its source's."""
    return posting.company.strip()[:_COMPANY_MAX] or source.company


def source_raw_hasher(
    source: Source, filters: dict[str, Any], *, row_companies: bool
) -> Callable[[str], str]:
    """The raw hash of one source's records in one run, salted with everything a record's
    reading depends on besides the record and the reading code: a change to any of them
    makes each record read again (ingestion.normalize)."""
    return normalize.raw_hasher(
        {
            "source": source.pk,
            "kind": source.kind,
            "company": source.company,
            # Not the code's own: the companies a stored file names change with every new
            # file, and would make each of its records look new.
            "options": public_options(source.options or {}),
            "format": source.upload_format,
            "filters": filters,
            "rowCompanies": row_companies,
            "descriptionMax": settings.INTAKE_DESCRIPTION_MAX_CHARS,
        }
    )


class UnchangedRecords:
    """The pre-check of one source's listing. `keys` and `contents` are the listing's own
    (company, key) -> label and (company, content hash) -> key of what it has listed: a record
    claimed unchanged enters them as a classified posting would."""

    def __init__(
        self,
        source: Source,
        owner_id: int,
        *,
        keys: dict[tuple[str, str], str],
        contents: dict[tuple[str, str], str],
    ) -> None:
        self.source = source
        self.owner_id = owner_id
        self._keys = keys
        self._contents = contents
        # Records claimed unchanged so far.
        self.claimed = 0

    def keys(self, entries: Sequence[Posting | RawRecord]) -> list[tuple[str, str]]:
        """(company, external id) of each entry's job, its unique key (job_company): worked
        out once per entry of a batch."""
        source = self.source
        return [(job_company(entry, source), entry.external_id.strip()) for entry in entries]

    def look_up(
        self,
        stored: dict[tuple[str, str], Stored],
        asked: set[tuple[str, str]],
        keys: Sequence[tuple[str, str]],
    ) -> None:
        """Add the stored jobs of these keys (self.keys) not `asked` yet to `stored` (one
        query per company: an aggregator's file names many, a board one)."""
        keys_of: dict[str, list[str]] = {}
        for key in keys:
            if key[1] and key not in asked:
                asked.add(key)
                keys_of.setdefault(key[0], []).append(key[1])
        for company, wanted in keys_of.items():
            rows = self.stored(wanted, STORED_COLUMNS, company=company)
            stored.update(((company, row[0]), row[1:]) for row in rows)  # type: ignore[misc]

    def stored(
        self, keys: list[str], columns: tuple[str, ...], *, company: str
    ) -> list[tuple[Any, ...]]:
        """`columns` of `company`'s stored jobs with these external ids."""
        return store.stored_jobs(self.owner_id, company, keys, columns)

    def to_map(self, batch: list[Posting | RawRecord]) -> list[tuple[int, Posting | RawRecord]]:
        """The entries of a batch read ahead that another worker may map (by index): all but
        the records unchanged as the jobs stand now (the batch is compared again when its
        turn comes; mapping more than it needs changes nothing)."""
        stored: dict[tuple[str, str], Stored] = {}
        keys = self.keys(batch)
        # A record without a raw hash (a board's job) is never unchanged: not looked up.
        self.look_up(
            stored,
            set(),
            [k for r, k in zip(batch, keys, strict=True) if type(r) is RawRecord and r.raw_hash],
        )
        return [
            (i, r)
            for i, (r, key) in enumerate(zip(batch, keys, strict=True))
            if type(r) is not RawRecord or not self.is_unchanged(r, key, stored)
        ]

    def is_unchanged(
        self, record: RawRecord, key: tuple[str, str], stored: dict[tuple[str, str], Stored]
    ) -> bool:
        """Whether `record`, its job's key `key`, is its stored job as it was read last (an
        expired job listed again is an update, whatever its content)."""
        job = stored.get(key)
        return (
            job is not None
            and bool(record.raw_hash)
            and job[3] == record.raw_hash
            and job[2] != JobStatus.EXPIRED
        )

    def claim(
        self, record: RawRecord, key: tuple[str, str], stored: dict[tuple[str, str], Stored]
    ) -> bool:
        """Record an unchanged `record` as listed, as the listing's classifying would; False
        when an earlier posting of this listing has its key or its content (then it is mapped
        and classified as a duplicate)."""
        chash = stored[key][1]
        if key in self._keys or (key[0], chash) in self._contents:
            return False
        self._keys[key] = _label(record, key)
        self._contents[key[0], chash] = key[1]
        self.claimed += 1
        return True

    def item(
        self, run_id: int, record: RawRecord, key: tuple[str, str], job: Stored
    ) -> store.ItemRow:
        """The `unchanged` item of a claimed record, from its stored job."""
        pk, _chash, _status, _raw, title, url = job
        return store.ItemRow(
            run_id,
            self.source.pk,
            pk,
            key[1][:_EXTERNAL_ID_MAX],
            title[:_TITLE_MAX],
            url[:_URL_MAX],
            record.row,
            ItemOutcome.UNCHANGED,
        )

    def claim_all(
        self,
        run_id: int,
        batch: Sequence[Posting | RawRecord],
        keys: Sequence[tuple[str, str]],
        stored: dict[tuple[str, str], Stored],
    ) -> tuple[list[store.ItemRow], list[int]] | None:
        """Claim every record of `batch` (`keys`: its jobs' keys) at once, as claim() one
        after another would, when each is a record unchanged that claim() would take: then
        their items (item()) and their jobs' ids. None, claiming nothing, when any entry is
        not (the batch is then compared entry by entry). A re-run's batches are mostly such
        batches: one loop instead of the comparing's steps per entry."""
        taken, contents = self._keys, self._contents
        labels: dict[tuple[str, str], str] = {}
        hashes: dict[tuple[str, str], str] = {}
        items: list[store.ItemRow] = []
        ids: list[int] = []
        for record, key in zip(batch, keys, strict=True):
            if type(record) is not RawRecord or not self.is_unchanged(record, key, stored):
                return None
            job = stored[key]
            content = (key[0], job[1])
            if key in taken or key in labels or content in contents or content in hashes:
                return None  # listed earlier (a duplicate): compared entry by entry
            labels[key] = _label(record, key)
            hashes[content] = key[1]
            ids.append(job[0])
            items.append(self.item(run_id, record, key, job))
        taken.update(labels)
        contents.update(hashes)
        self.claimed += len(items)
        return items, ids


def _label(record: RawRecord, key: tuple[str, str]) -> str:
    """How a claimed record is named to a later posting with its key (as the classifying
    names a posting: ingestion.pipeline.classify)."""
    return f"row {record.row}" if record.row is not None else f"'{key[1]}'"


def to_map_ahead(source: Source, owner_id: int, batch: list[Posting | RawRecord]) -> list[int]:
    """The indexes of UnchangedRecords.to_map's entries, from another worker (a module
    function: pickled to it, ingestion.pipeline.readahead)."""
    records = UnchangedRecords(source, owner_id, keys={}, contents={})
    return [index for index, _ in records.to_map(batch)]

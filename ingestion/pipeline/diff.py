"""List one source and compare each posting with the stored jobs: the stage preview and ingest
share. A preview only records RunItems; an ingest also upserts the new and updated postings as
`pending` jobs, in bulk, in the same transaction as their items (a batch commits whole).

Postings are streamed through in batches, so a 50,000-posting board never sits in memory:
what is kept per source is the set of keys and content hashes seen (to spot postings listed
twice) and a small sample of descriptions (to learn the company's boilerplate).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ingestion import events, normalize, simhash, store
from ingestion.adapters import Posting, RawRecord, SourceFailed, adapter_class, get_adapter
from ingestion.fetching import Fetcher, FetchError
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source
from ingestion.pipeline.batching import batched
from ingestion.pipeline.filters import PostingFilter
from runs.context import RunContext
from runs.exceptions import RunAborted, RunGone

logger = logging.getLogger(__name__)

# Postings per transaction of the listing stage (and jobs per transaction of its expiry):
# a batch commits whole, with its items and counters.
LISTING_BATCH_SIZE = 1000
# Descriptions kept per source to find the paragraphs its company repeats in every posting.
BOILERPLATE_SAMPLE = 200
# Longer descriptions stay out of the sample (it is kept for the whole listing): they are
# not a company's typical posting, and 200 of them could be large.
BOILERPLATE_SAMPLE_MAX_CHARS = 64 * 1024
BOILERPLATE_MIN_SAMPLE = 3
# Each invalid or unreadable posting of a source gets a feed event up to this many; the rest
# are counted in one closing event (and every one is in the run's items and report).
ITEM_EVENTS_MAX = 10
# Companies named in a source's summary (most postings first); the count says how many more.
SUMMARY_COMPANIES_MAX = 20
# Text columns' lengths, read from the models: a posting's values are cut to fit them.
JOB_MAX = {f.name: f.max_length for f in Job._meta.concrete_fields if f.max_length}
ITEM_MAX = {f.name: f.max_length for f in RunItem._meta.concrete_fields if f.max_length}
# Invalid reasons that mean "we could not read it" rather than "it is malformed".
FETCH_FAILED_PREFIX = "fetch failed"

# Which snapshot counter each outcome also feeds, per run kind (every outcome is counted in
# the run's outcome counts). An ingest's ready/skipped/failed count jobs, as the ingesting
# stage decides them: an invalid posting never became a job, so it is not a failed one.
PREVIEW_COUNTERS = {
    ItemOutcome.NEW: "new",
    ItemOutcome.UPDATED: "updated",
    ItemOutcome.EXPIRED: "expired",
    ItemOutcome.DUPLICATE: "skipped",
    ItemOutcome.FILTERED: "skipped",
    ItemOutcome.INVALID: "failed",
    ItemOutcome.ERROR: "failed",
}
INGEST_COUNTERS = {
    ItemOutcome.NEW: "new",
    ItemOutcome.UPDATED: "updated",
    ItemOutcome.EXPIRED: "expired",
}


@dataclass
class SourceOutcome:
    """What listing one source gave: shown in the feed, kept in the run's summary."""

    source_id: int
    company: str
    kind: str
    label: str
    listed: int = 0
    complete: bool = False
    error: str = ""
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ItemOutcome.values, 0))
    expiry_note: str = ""
    sample: list[str] = field(default_factory=list)
    # Postings listed per company, for sources whose rows name their own (an aggregator's
    # file); empty otherwise: every posting is the source's company's.
    companies: Counter[str] = field(default_factory=Counter)

    @property
    def valid_listed(self) -> int:
        return self.listed - self.counts[ItemOutcome.INVALID] - self.counts[ItemOutcome.ERROR]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sourceId": self.source_id,
            "company": self.company,
            "kind": self.kind,
            "label": self.label,
            "listed": self.listed,
            "complete": self.complete,
            "error": self.error,
            "seconds": round(self.seconds, 2),
            "counts": dict(self.counts),
            "expiryNote": self.expiry_note,
            "companies": [
                {"company": name, "listed": count}
                for name, count in self.companies.most_common(SUMMARY_COMPANIES_MAX)
            ],
            "companiesCount": len(self.companies),
        }


def source_label(source: Source) -> str:
    return f"{source.company} ({source.get_kind_display()})"


def job_company(posting: Posting | RawRecord, source: Source) -> str:
    """The company a posting's job is stored under, the first part of its unique key: the
    one the posting names (only adapters with `row_companies` keep one), else its source's."""
    return posting.company.strip()[: JOB_MAX["company"]] or source.company


# A stored job as the listing compares it: id, content hash, status, raw hash, title, URL.
STORED_COLUMNS = ("external_id", "id", "content_hash", "status", "raw_hash", "title", "url")
Stored = tuple[int, str, str, str, str, str]


class SourceDiff:
    def __init__(
        self,
        ctx: RunContext,
        source: Source,
        fetcher: Fetcher,
        *,
        filters: dict[str, Any],
        write: bool,
        on_pending: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.run = ctx.run
        self.source = source
        self.fetcher = fetcher.for_source(source.pk)
        self.filter = PostingFilter(filters)
        self.write = write
        # Called with the ids of each batch's new and updated jobs, in the batch's transaction.
        self.on_pending = on_pending
        self.counters = INGEST_COUNTERS if write else PREVIEW_COUNTERS
        self.now = timezone.now()
        self.outcome = SourceOutcome(
            source_id=source.pk,
            company=source.company,
            kind=source.kind,
            label=source_label(source),
        )
        # (company, key) -> how the first posting with it is named; (company, content hash)
        # -> that posting's key
        self._keys: dict[tuple[str, str], str] = {}
        self._contents: dict[tuple[str, str], str] = {}
        self.source_rows_companies = adapter_class(source.kind).row_companies
        self._item_events = 0
        # Everything a record's reading depends on besides the record and the reading code:
        # a change to any of them makes each record read again (ingestion.normalize).
        self.raw_hash = normalize.raw_hasher(
            {
                "source": source.pk,
                "kind": source.kind,
                "company": source.company,
                "options": source.options,
                "format": source.upload_format,
                "filters": filters,
                "rowCompanies": self.source_rows_companies,
                "descriptionMax": settings.INTAKE_DESCRIPTION_MAX_CHARS,
            }
        )
        # New and updated jobs not yet handed to on_pending, and whether the company's
        # boilerplate has been learned in this run.
        self._held: list[int] = []
        self._learned = False

    def run_diff(self) -> SourceOutcome:
        """List the source and record every posting; returns what happened. A failure of
        the source is recorded on the outcome (the run goes on); abort propagates."""
        started = time.monotonic()
        out = self.outcome
        try:
            postings = get_adapter(self.source, self.fetcher).records(self.raw_hash)
            for batch in batched(postings, LISTING_BATCH_SIZE, weight=posting_text_size):
                self._apply(batch)
            out.complete = True
        except (RunAborted, RunGone):
            raise
        except (SourceFailed, FetchError) as exc:
            out.error = str(exc)
        except Exception as exc:
            logger.exception("Listing source %s failed", self.source.pk)
            out.error = f"Unexpected error reading the source: {type(exc).__name__}: {exc}"
        if self.write:
            with transaction.atomic():
                self._release([], final=True)
        out.seconds = time.monotonic() - started
        unreported = out.counts[ItemOutcome.INVALID] + out.counts[ItemOutcome.ERROR]
        unreported -= self._item_events
        if unreported > 0:
            self.ctx.event(
                "source.items_failed",
                f"{out.label}: {unreported:,} more postings were invalid or could not be "
                "read; the run's items and report list each with its reason.",
                {"sourceId": self.source.pk, "count": unreported},
            )
        return out

    # --- one batch -------------------------------------------------------------------------

    def _apply(self, batch: list[Posting | RawRecord]) -> None:
        self.ctx.checkpoint()
        # Records whose raw hash equals their stored job's are unchanged without being
        # mapped; the rest are mapped to postings and compared as a whole.
        stored: dict[tuple[str, str], Stored] = {}
        asked: set[tuple[str, str]] = set()
        self._look_up(stored, asked, [r for r in batch if isinstance(r, RawRecord)])
        entries: list[Posting | RawRecord] = [
            r if isinstance(r, Posting) or self._unchanged_record(r, stored) else r.posting()
            for r in batch
        ]
        self._look_up(stored, asked, [p for p in entries if isinstance(p, Posting)])
        companies = [job_company(p, self.source) for p in entries]
        items: list[store.ItemRow] = []
        upserts: list[tuple[Posting, str]] = []
        unchanged_ids: list[int] = []
        rehashed: list[tuple[int, str]] = []
        for entry, company in zip(entries, companies, strict=True):
            if self.source_rows_companies:
                self.outcome.companies[company] += 1
            key = (company, entry.external_id.strip())
            if isinstance(entry, RawRecord) and self._claim_unchanged(entry, key, stored):
                pk, _chash, _status, _raw, title, url = stored[key]
                item = store.ItemRow(
                    run_id=self.run.pk,
                    source_id=self.source.pk,
                    job_id=pk,
                    external_id=key[1][: ITEM_MAX["external_id"]],
                    title=title[: ITEM_MAX["title"]],
                    url=url[: ITEM_MAX["url"]],
                    row=entry.row,
                    outcome=ItemOutcome.UNCHANGED,
                    reason="",
                )
                items.append(item)
                self.outcome.counts[ItemOutcome.UNCHANGED] += 1
                unchanged_ids.append(pk)
                continue
            posting = entry.posting() if isinstance(entry, RawRecord) else entry
            outcome, reason, chash = self._classify(posting, stored, company)
            item = store.ItemRow(
                run_id=self.run.pk,
                source_id=self.source.pk,
                external_id=key[1][: ITEM_MAX["external_id"]],
                title=posting.title[: ITEM_MAX["title"]],
                url=posting.url[: ITEM_MAX["url"]],
                row=posting.row,
                outcome=outcome,
                reason=reason,
            )
            if key in stored:
                item.job_id = stored[key][0]
            items.append(item)
            self.outcome.counts[outcome] += 1
            if outcome in (ItemOutcome.NEW, ItemOutcome.UPDATED):
                upserts.append((posting, chash))
                if (
                    len(self.outcome.sample) < BOILERPLATE_SAMPLE
                    and 0 < len(posting.description_html) <= BOILERPLATE_SAMPLE_MAX_CHARS
                ):
                    self.outcome.sample.append(posting.description_html)
            elif outcome == ItemOutcome.UNCHANGED:
                unchanged_ids.append(stored[key][0])
                if posting.raw_hash != stored[key][3]:
                    rehashed.append((stored[key][0], posting.raw_hash))
        self.outcome.listed += len(batch)

        # A preview's progress is postings read; an ingest's is jobs processed (the chunks
        # count them), its total growing as the listing finds new and updated postings.
        increments: dict[str, int] = {} if self.write else {"items_done": len(batch)}
        for item in items:
            counter = self.counters.get(item.outcome)  # type: ignore[call-overload]
            if counter:
                increments[counter] = increments.get(counter, 0) + 1
        with transaction.atomic():
            if self.write:
                for company, group in _by_company(upserts, self.source).items():
                    new_keys = {
                        item.external_id
                        for item, item_company in zip(items, companies, strict=True)
                        if item.outcome == ItemOutcome.NEW and item_company == company
                    }
                    ids = upsert_jobs(self.run, self.source, group, now=self.now, new_keys=new_keys)
                    missing = [p.external_id.strip() for p, _ in group]
                    missing = [key for key in missing if key not in ids]
                    if missing:
                        ids.update(self._stored(missing, ("external_id", "id"), company=company))
                    for item, item_company in zip(items, companies, strict=True):
                        if (
                            item.job_id is None
                            and item.outcome == ItemOutcome.NEW
                            and item_company == company
                        ):
                            item.job_id = ids.get(item.external_id)
                store.touch_unchanged(self.now, unchanged_ids, rehashed)
                pending = []
                for item in items:
                    if item.outcome in (ItemOutcome.NEW, ItemOutcome.UPDATED):
                        item.job_status = JobStatus.PENDING
                        if item.job_id is not None:
                            pending.append(item.job_id)
                self._release(pending)
                for event_type, outcome in (
                    (events.JOB_CREATED, ItemOutcome.NEW),
                    (events.JOB_UPDATED, ItemOutcome.UPDATED),
                ):
                    events.jobs_changed(
                        event_type,
                        run_id=self.run.pk,
                        job_ids=[i.job_id for i in items if i.outcome == outcome and i.job_id],
                        status=JobStatus.PENDING,
                        sourceId=self.source.pk,
                        stage="listing",
                    )
            store.insert_items(items)
            self.ctx.progress(
                increments=increments, outcomes=Counter(str(item.outcome) for item in items)
            )
            for item in items:
                if item.outcome in (ItemOutcome.INVALID, ItemOutcome.ERROR):
                    self._report_item(item)

    def _look_up(
        self,
        stored: dict[tuple[str, str], Stored],
        asked: set[tuple[str, str]],
        entries: list[Posting] | list[RawRecord],
    ) -> None:
        """Add the stored jobs of these entries' keys not `asked` yet to `stored` (one query
        per company: an aggregator's file names many, a board one)."""
        keys_of: dict[str, set[str]] = {}
        for entry in entries:
            key = entry.external_id.strip()
            company = job_company(entry, self.source)
            if key and (company, key) not in asked:
                asked.add((company, key))
                keys_of.setdefault(company, set()).add(key)
        for company, keys in keys_of.items():
            for ext, *job in self._stored(list(keys), STORED_COLUMNS, company=company):
                stored[company, ext] = tuple(job)  # type: ignore[assignment]

    def _unchanged_record(self, record: RawRecord, stored: dict[tuple[str, str], Stored]) -> bool:
        """Whether `record` is its stored job as it was read last (an expired job listed
        again is an update, whatever its content)."""
        job = stored.get((job_company(record, self.source), record.external_id.strip()))
        return (
            job is not None
            and bool(record.raw_hash)
            and job[3] == record.raw_hash
            and job[2] != JobStatus.EXPIRED
        )

    def _claim_unchanged(
        self, record: RawRecord, key: tuple[str, str], stored: dict[tuple[str, str], Stored]
    ) -> bool:
        """Record an unchanged `record` as listed, as _classify would; False when an earlier
        posting of this listing has its key or its content (then it is mapped and classified
        as a duplicate)."""
        chash = stored[key][1]
        if key in self._keys or (key[0], chash) in self._contents:
            return False
        self._keys[key] = f"row {record.row}" if record.row is not None else f"'{key[1]}'"
        self._contents[key[0], chash] = key[1]
        return True

    def _stored(
        self, keys: list[str], columns: tuple[str, ...], *, company: str
    ) -> list[tuple[Any, ...]]:
        """`columns` of `company`'s stored jobs with these external ids."""
        return store.stored_jobs(self.run.owner_id, company, keys, columns)

    def _release(self, job_ids: list[int], *, final: bool = False) -> None:
        """Hand new and updated jobs to on_pending once the company's boilerplate is known:
        the ingesting stage leaves it out of each job's simhash, and a job processed before
        it was learned could be flagged a near-duplicate of another role for their shared
        about-us and benefits paragraphs. Learned as soon as the sample is full (usually in
        the first batch), or at the end of a complete listing."""
        self._held.extend(job_ids)
        if not self._learned:
            if not final and len(self.outcome.sample) < BOILERPLATE_SAMPLE:
                return
            self._learned = True
            if self.outcome.complete or not final:
                self._learn_boilerplate()
        if self._held and self.on_pending is not None:
            self.on_pending(self._held)
        self._held = []

    def _learn_boilerplate(self) -> None:
        if len(self.outcome.sample) < BOILERPLATE_MIN_SAMPLE:
            return  # too few postings to tell what they share: keep what was learned before
        texts = [normalize.html_to_text(html) for html in self.outcome.sample]
        self.source.boilerplate = simhash.company_boilerplate(texts)
        # update(), not save(): the source's own settings may be edited while the run goes on.
        Source.objects.filter(pk=self.source.pk).update(boilerplate=self.source.boilerplate)

    def _report_item(self, item: store.ItemRow) -> None:
        if self._item_events >= ITEM_EVENTS_MAX:
            return
        self._item_events += 1
        where = f"row {item.row}" if item.row is not None else f"'{item.external_id or item.url}'"
        verb = "could not be read" if item.outcome == ItemOutcome.ERROR else "is invalid"
        self.ctx.event(
            f"item.{item.outcome}",
            f"{self.outcome.label}: posting {where} {verb}: {item.reason}",
            {"sourceId": self.source.pk, "externalId": item.external_id, "row": item.row},
        )

    def _classify(
        self, posting: Posting, stored: dict[tuple[str, str], Stored], company: str
    ) -> tuple[str, str, str]:
        """(outcome, reason, content hash) of one posting whose job is `company`'s."""
        key = posting.external_id.strip()
        label = _posting_label(posting)
        if posting.invalid_reasons:
            reasons = "; ".join(posting.invalid_reasons)
            fetch_failed = any(
                r.lower().startswith(FETCH_FAILED_PREFIX) for r in posting.invalid_reasons
            )
            return (ItemOutcome.ERROR if fetch_failed else ItemOutcome.INVALID), reasons, ""
        if not key:
            return ItemOutcome.INVALID, "the posting has no id", ""
        if posting.duplicate_of:
            return ItemOutcome.DUPLICATE, posting.duplicate_of, ""
        # The same id under two companies is two postings; the same content under two
        # companies too (an aggregator's companies may share a template).
        if (company, key) in self._keys:
            return (
                ItemOutcome.DUPLICATE,
                f"listed twice: same id as {self._keys[company, key]}",
                "",
            )
        self._keys[company, key] = label
        chash = normalize.content_hash(posting)
        if (company, chash) in self._contents:
            return (
                ItemOutcome.DUPLICATE,
                f"same content as posting '{self._contents[company, chash]}' under another id",
                chash,
            )
        self._contents[company, chash] = key
        reason = self.filter.reason(posting)
        if reason:
            return ItemOutcome.FILTERED, reason, chash
        if (company, key) not in stored:
            return ItemOutcome.NEW, "", chash
        _, stored_hash, status, *_ = stored[company, key]
        if status == JobStatus.EXPIRED:
            return ItemOutcome.UPDATED, "listed again after it expired", chash
        if stored_hash == chash:
            return ItemOutcome.UNCHANGED, "", chash
        return ItemOutcome.UPDATED, "content changed", chash


def _by_company(
    upserts: list[tuple[Posting, str]], source: Source
) -> dict[str, list[tuple[Posting, str]]]:
    groups: dict[str, list[tuple[Posting, str]]] = {}
    for posting, chash in upserts:
        groups.setdefault(job_company(posting, source), []).append((posting, chash))
    return groups


def posting_text_size(posting: Posting | RawRecord) -> int:
    """What a posting weighs in a batch: its long texts."""
    if isinstance(posting, RawRecord):
        return posting.size
    return len(posting.description_html) + len(posting.requirements_html)


def _posting_label(posting: Posting) -> str:
    if posting.row is not None:
        return f"row {posting.row}"
    return f"'{posting.external_id}'"


# --- the upsert -------------------------------------------------------------------------------


def upsert_jobs(
    run: Any,
    source: Source,
    postings: list[tuple[Posting, str]],
    *,
    now: datetime,
    new_keys: Collection[str] = (),
) -> dict[str, int]:
    """Write these (posting, content hash) pairs, all of one company (job_company), as
    `pending` jobs of the run's owner (ingestion.store.upsert_jobs says how, and what it
    returns: keyed by external id, which one company makes unambiguous)."""
    rows = [
        store.JobRow(
            owner_id=run.owner_id,
            source_id=source.pk,
            company=job_company(p, source),
            external_id=p.external_id.strip()[: JOB_MAX["external_id"]],
            url=p.url[: JOB_MAX["url"]],
            title=p.title.strip()[: JOB_MAX["title"]],
            location=p.location[: JOB_MAX["location"]],
            remote=p.remote,
            workplace_type=p.workplace_type[: JOB_MAX["workplace_type"]],
            employment_type=p.employment_type[: JOB_MAX["employment_type"]],
            department=p.department[: JOB_MAX["department"]],
            raw_description=p.description_html,
            needs_detail=p.needs_detail,
            description="",
            description_text="",
            requirements=(
                normalize.sanitize_html(p.requirements_html) if p.requirements_html else ""
            ),
            posted_at=p.posted_at,
            valid_through=p.valid_through,
            salary_min=p.salary_min,
            salary_max=p.salary_max,
            salary_currency=p.salary_currency[: JOB_MAX["salary_currency"]],
            salary_period=p.salary_period[: JOB_MAX["salary_period"]],
            salary_text=p.salary_text[: JOB_MAX["salary_text"]],
            status=JobStatus.PENDING.value,
            content_hash=chash,
            raw_hash=p.raw_hash,
            first_seen_at=now,
            last_seen_at=now,
            expired_at=None,
            last_run_id=run.pk,
            error_message="",
            created_at=now,
            updated_at=now,
        )
        for p, chash in postings
    ]
    return store.upsert_jobs(rows, new_keys=new_keys)

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

from django.db import connection, transaction
from django.utils import timezone

from ingestion import normalize, simhash
from ingestion.adapters import Posting, SourceFailed, get_adapter
from ingestion.fetching import Fetcher, FetchError
from ingestion.models import ItemOutcome, Job, JobStatus, Source
from ingestion.pipeline import sql
from ingestion.pipeline.batching import batched
from ingestion.pipeline.filters import PostingFilter
from runs.context import RunContext
from runs.exceptions import RunAborted, RunGone

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
# Descriptions kept per source to find the paragraphs its company repeats in every posting.
BOILERPLATE_SAMPLE = 200
# Longer descriptions stay out of the sample (it is kept for the whole listing): they are
# not a company's typical posting, and 200 of them could be large.
BOILERPLATE_SAMPLE_MAX_CHARS = 64 * 1024
BOILERPLATE_MIN_SAMPLE = 3
# Each invalid or unreadable posting of a source gets a feed event up to this many; the rest
# are counted in one closing event (and every one is in the run's items and report).
ITEM_EVENTS_MAX = 10
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
        }


def source_label(source: Source) -> str:
    return f"{source.company} ({source.get_kind_display()})"


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
        # key -> how the first posting with it is named; content hash -> that posting's key
        self._keys: dict[str, str] = {}
        self._contents: dict[str, str] = {}
        self._item_events = 0
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
            postings = get_adapter(self.source, self.fetcher).postings()
            for batch in batched(postings, BATCH_SIZE, weight=posting_text_size):
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

    def _apply(self, batch: list[Posting]) -> None:
        self.ctx.checkpoint()
        keys = {p.external_id.strip() for p in batch if p.external_id.strip()}
        stored = {
            ext: (pk, chash, status)
            for ext, pk, chash, status in self._stored(
                list(keys), ("external_id", "id", "content_hash", "status")
            )
        }
        items: list[sql.ItemRow] = []
        upserts: list[tuple[Posting, str]] = []
        unchanged_ids: list[int] = []
        for posting in batch:
            outcome, reason, chash = self._classify(posting, stored)
            key = posting.external_id.strip()
            item = sql.ItemRow(
                run_id=self.run.pk,
                source_id=self.source.pk,
                external_id=key[:255],
                title=posting.title[:500],
                url=posting.url[:2000],
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
                if upserts:
                    new_keys = {
                        item.external_id for item in items if item.outcome == ItemOutcome.NEW
                    }
                    ids = upsert_jobs(
                        self.run, self.source, upserts, now=self.now, new_keys=new_keys
                    )
                    missing = [p.external_id.strip() for p, _ in upserts]
                    missing = [key for key in missing if key not in ids]
                    if missing:
                        ids.update(self._stored(missing, ("external_id", "id")))
                    for item in items:
                        if item.job_id is None and item.outcome == ItemOutcome.NEW:
                            item.job_id = ids.get(item.external_id)
                if unchanged_ids:
                    Job.objects.filter(id__in=unchanged_ids).update(last_seen_at=self.now)
                pending = []
                for item in items:
                    if item.outcome in (ItemOutcome.NEW, ItemOutcome.UPDATED):
                        item.job_status = JobStatus.PENDING
                        if item.job_id is not None:
                            pending.append(item.job_id)
                self._release(pending)
            sql.insert_items(items)
            self.ctx.progress(
                increments=increments, outcomes=Counter(str(item.outcome) for item in items)
            )
            for item in items:
                if item.outcome in (ItemOutcome.INVALID, ItemOutcome.ERROR):
                    self._report_item(item)

    def _stored(self, keys: list[str], columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """`columns` of this source's company's stored jobs with these external ids."""
        if sql.set_based():
            # The keys as one array parameter: Django would quote each into an IN list.
            return sql.fetch_all(
                f"SELECT {', '.join(columns)} FROM ingestion_job "
                "WHERE owner_id = %s AND company = %s AND external_id = ANY(%s)",
                [self.run.owner_id, self.source.company, keys],
            )
        # order_by(): the model's default order would have the database walk the company's
        # jobs in posted order instead of probing the unique key.
        return list(
            Job.objects.filter(
                owner_id=self.run.owner_id, company=self.source.company, external_id__in=keys
            )
            .order_by()
            .values_list(*columns)
        )

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

    def _report_item(self, item: sql.ItemRow) -> None:
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
        self, posting: Posting, stored: dict[str, tuple[int, str, str]]
    ) -> tuple[str, str, str]:
        """(outcome, reason, content hash) of one posting."""
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
        if key in self._keys:
            return ItemOutcome.DUPLICATE, f"listed twice: same id as {self._keys[key]}", ""
        self._keys[key] = label
        chash = normalize.content_hash(posting)
        if chash in self._contents:
            return (
                ItemOutcome.DUPLICATE,
                f"same content as posting '{self._contents[chash]}' under another id",
                chash,
            )
        self._contents[chash] = key
        reason = self.filter.reason(posting)
        if reason:
            return ItemOutcome.FILTERED, reason, chash
        if key not in stored:
            return ItemOutcome.NEW, "", chash
        _, stored_hash, status = stored[key]
        if status == JobStatus.EXPIRED:
            return ItemOutcome.UPDATED, "listed again after it expired", chash
        if stored_hash == chash:
            return ItemOutcome.UNCHANGED, "", chash
        return ItemOutcome.UPDATED, "content changed", chash


def posting_text_size(posting: Posting) -> int:
    """What a posting weighs in a batch: its long texts."""
    return len(posting.description_html) + len(posting.requirements_html)


def _posting_label(posting: Posting) -> str:
    if posting.row is not None:
        return f"row {posting.row}"
    return f"'{posting.external_id}'"


# --- the upsert -------------------------------------------------------------------------------

_JOB_COLUMNS = (
    "owner_id",
    "source_id",
    "company",
    "external_id",
    "url",
    "title",
    "location",
    "remote",
    "workplace_type",
    "employment_type",
    "department",
    "raw_description",
    "needs_detail",
    "description",
    "description_text",
    "requirements",
    "posted_at",
    "valid_through",
    "salary_min",
    "salary_max",
    "salary_currency",
    "salary_period",
    "salary_text",
    "status",
    "content_hash",
    "first_seen_at",
    "last_seen_at",
    "expired_at",
    "last_run_id",
    "error_message",
    "created_at",
    "updated_at",
)
# On conflict everything the listing says is taken, the job goes back to pending (the
# ingesting stage redoes sanitizing, simhash and the duplicate check), and first_seen_at /
# created_at stay. The WHERE skips rows whose content did not change: an unchanged re-run
# writes nothing (and an expired job listed again comes back).
_KEEP_ON_CONFLICT = {"owner_id", "company", "external_id", "first_seen_at", "created_at"}
# Their types, for the set-based statement on PostgreSQL (sql.execute_unnest).
_JOB_TYPES = {
    "owner_id": "bigint",
    "source_id": "bigint",
    "remote": "boolean",
    "needs_detail": "boolean",
    "posted_at": "timestamptz",
    "valid_through": "timestamptz",
    "salary_min": "numeric",
    "salary_max": "numeric",
    "first_seen_at": "timestamptz",
    "last_seen_at": "timestamptz",
    "expired_at": "timestamptz",
    "last_run_id": "bigint",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
_ON_CONFLICT = (
    "ON CONFLICT (owner_id, company, external_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _JOB_COLUMNS if c not in _KEEP_ON_CONFLICT)
    + ", duplicate_of_id = NULL, simhash = NULL "
    "WHERE ingestion_job.content_hash <> EXCLUDED.content_hash "
    "OR ingestion_job.status = 'expired'"
)
_UPSERT_SQL = (
    f"INSERT INTO ingestion_job ({', '.join(_JOB_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_JOB_COLUMNS))}) {_ON_CONFLICT}"
)
_UPSERT_SET_SQL = (
    f"INSERT INTO ingestion_job ({', '.join(_JOB_COLUMNS)}) "
    f"SELECT * FROM {{rows}} AS v({', '.join(_JOB_COLUMNS)}) {_ON_CONFLICT} "
    "RETURNING external_id, id"
)


def upsert_jobs(
    run: Any,
    source: Source,
    postings: list[tuple[Posting, str]],
    *,
    now: datetime,
    new_keys: Collection[str] = (),
) -> dict[str, int]:
    """Insert or update these postings as `pending` jobs in one statement (PostgreSQL) or one
    executemany against the unique key (owner, company, external_id). Idempotent: the same
    postings twice give the same rows. Returns {external_id: job id} of the rows written
    when the database says (PostgreSQL); callers look up what it leaves out.

    `new_keys`: external ids the caller has just found stored nowhere, in this transaction
    of the owner's one active run (the database allows no second one), so nothing else can
    be inserting them. On PostgreSQL those rows go in by COPY with ids drawn beforehand:
    no conflict check per row, and a third of the client's time of the upsert. Should one
    exist after all, the COPY fails on the unique key and nothing of the batch is written."""
    ops = connection.ops
    stamp = ops.adapt_datetimefield_value(now)

    def when(value: datetime | None) -> Any:
        return ops.adapt_datetimefield_value(value) if value else None

    def money(value: Any) -> Any:
        return ops.adapt_decimalfield_value(value, 12, 2) if value is not None else None

    rows = []
    for p, chash in postings:
        rows.append(
            (
                run.owner_id,
                source.pk,
                source.company,
                p.external_id.strip()[:255],
                p.url[:2000],
                p.title.strip()[:500],
                p.location[:500],
                p.remote,
                p.workplace_type[:16],
                p.employment_type[:32],
                p.department[:200],
                p.description_html,
                p.needs_detail,
                "",
                "",
                normalize.sanitize_html(p.requirements_html) if p.requirements_html else "",
                when(p.posted_at),
                when(p.valid_through),
                money(p.salary_min),
                money(p.salary_max),
                p.salary_currency[:3],
                p.salary_period[:8],
                p.salary_text[:200],
                JobStatus.PENDING.value,
                chash,
                stamp,
                stamp,
                None,
                run.pk,
                "",
                stamp,
                stamp,
            )
        )
    if sql.set_based():
        ids: dict[str, int] = {}
        if new_keys:
            new_rows = [row for row in rows if row[_KEY] in new_keys]
            if new_rows:
                rows = [row for row in rows if row[_KEY] not in new_keys]
                ids.update(_copy_new_jobs(new_rows))
        if rows:
            types = [_JOB_TYPES.get(column, "text") for column in _JOB_COLUMNS]
            ids.update(sql.execute_unnest(_UPSERT_SET_SQL, types, rows))
        return ids
    sql.executemany(_UPSERT_SQL, rows)
    return {}


_KEY = _JOB_COLUMNS.index("external_id")


def _copy_new_jobs(rows: list[tuple[Any, ...]]) -> dict[str, int]:
    """Insert rows of _JOB_COLUMNS by binary COPY, with ids drawn from the table's sequence
    first (COPY returns nothing). Returns {external_id: id}."""
    ids = [
        pk
        for (pk,) in sql.fetch_all(
            "SELECT nextval(pg_get_serial_sequence('ingestion_job', 'id')) "
            "FROM generate_series(1, %s)",
            [len(rows)],
        )
    ]
    pairs = list(zip(ids, rows, strict=True))
    sql.copy_rows(Job, ("id", *_JOB_COLUMNS), [(pk, *row) for pk, row in pairs])
    return {row[_KEY]: pk for pk, row in pairs}

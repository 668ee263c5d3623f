"""List one source and compare each posting with the stored jobs: the stage preview and ingest
share. A preview only records RunItems; an ingest also upserts the new and updated postings'
jobs, in bulk, in the same transaction as their items (a batch commits whole): processed, in
their final state, when the listing carries their description (ingestion.pipeline.content),
else `pending` for a chunk to fetch their detail.

Postings are streamed through in batches, so a 50,000-posting board never sits in memory:
what is kept per source is the set of keys and content hashes seen (to spot postings listed
twice) and a small sample of descriptions (to learn the company's boilerplate).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, cast

from django.utils import timezone

from ingestion import dedupe, events, normalize, simhash, store
from ingestion.adapters import Posting, RawRecord, SourceFailed, adapter_class, get_adapter
from ingestion.fetching import Fetcher, FetchError
from ingestion.models import ItemOutcome, JobStatus, Source
from ingestion.pipeline import collector
from ingestion.pipeline.batching import batched
from ingestion.pipeline.batchwrite import BatchWriter, Held
from ingestion.pipeline.chunks import live_workers
from ingestion.pipeline.classify import Classifier
from ingestion.pipeline.content import JOB_MAX, announce_failures
from ingestion.pipeline.filters import PostingFilter
from ingestion.pipeline.finishing import Final, final_jobs, finish
from ingestion.pipeline.jobwrites import write_jobs
from ingestion.pipeline.mapping import NOTHING, Offers
from ingestion.pipeline.neardup import Decided, listed_decisions, near_duplicates
from ingestion.pipeline.outcome import SourceOutcome, source_label
from ingestion.pipeline.readahead import ReadAhead
from ingestion.pipeline.unchanged import (
    ITEM_MAX,
    Stored,
    UnchangedRecords,
    source_raw_hasher,
    to_map_ahead,
)
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


class SourceDiff:
    def __init__(
        self,
        ctx: RunContext,
        source: Source,
        fetcher: Fetcher,
        *,
        filters: dict[str, Any],
        write: bool,
        near: dedupe.NearDuplicates,
        on_pending: Callable[[list[int]], None] | None = None,
        on_processed: Callable[[int], None] | None = None,
        savepoint: Callable[[], Callable[[], None]] | None = None,
        on_batch: Callable[[SourceOutcome], None] | None = None,
        listing_elsewhere: Callable[[], int] = lambda: 0,
    ) -> None:
        self.ctx = ctx
        self.run = ctx.run
        self.source = source
        self.fetcher = fetcher.for_source(source.pk)
        self.filter = PostingFilter(filters)
        self.filters = filters
        self.write = write
        # The run's near-duplicate decisions, shared by its sources (listed one after another).
        self.near = near
        # Called with the ids of each batch's new and updated jobs, in the batch's transaction.
        self.on_pending = on_pending
        # Called with how many of each batch's jobs it wrote processed (their listing carried
        # their description: no chunk takes them), in the batch's transaction.
        self.on_processed = on_processed
        # Called before each batch's transaction; what it returns puts what the callbacks
        # keep in memory back as it was, when the transaction is rolled back to be retried.
        self.savepoint = savepoint
        # Called with the outcome so far after each batch (how far the listing has come).
        self.on_batch = on_batch
        # How many other workers are busy listing other sources of the run at the same time
        # (ingestion.pipeline.groups), asked as the listing goes: they cannot help it until
        # they are done.
        self.listing_elsewhere = listing_elsewhere
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
        self.writer = BatchWriter(
            self.run, source.pk, label=self.outcome.label, savepoint=self._savepoint
        )
        # Records told unchanged by their raw hash (ingestion.pipeline.unchanged).
        self.unchanged = UnchangedRecords(
            source, self.run.owner_id, keys=self._keys, contents=self._contents
        )
        self.classifier = Classifier(self.filter, keys=self._keys, contents=self._contents)
        # Whether the company's boilerplate has been learned in this run (after the first
        # batch), and what it is.
        self._learned = False
        self.boilerplate = frozenset(source.boilerplate or ())
        # Its lines, when learned in this run (a faster lookup than the fingerprints).
        self.boilerplate_lines: frozenset[bytes] | None = None
        # What other workers computed ahead for the batch being applied.
        self._mapped = NOTHING
        # Batches that write no job, applied but not written yet (batchwrite.Held): only
        # while reading an upload, which never waits on a remote site between batches.
        self._holds = adapter_class(source.kind).reads_upload
        self._held = Held()

    def run_diff(self) -> SourceOutcome:
        """List the source and record every posting; returns what happened. A failure of
        the source is recorded on the outcome (the run goes on); abort propagates."""
        started = time.monotonic()
        out = self.outcome
        workers = self._free_workers()
        offers = Offers(
            self.run.pk,
            self.source.pk,
            workers=workers,
            recount=self._free_workers,
            process=self.write,
            # A preview reads a posting's description only to filter it by keywords and to
            # learn the boilerplate (from the first batch, never offered).
            slim=not self.write and not self.filter.reads_text,
        )
        reader: Callable[[], Iterator[list[Posting | RawRecord]]]
        if adapter_class(self.source.kind).reads_upload:
            # Picklable: a read-ahead helper reads the source with the very same call.
            reader = functools.partial(listing_batches, self.source, self.filters)
        else:
            reader = functools.partial(listing_batches, self.source, self.filters, self.fetcher)
            workers = 1  # read here: the fetcher (its limits, its payloads) is this worker's
        reading = ReadAhead(self.run.pk, self.source.pk, workers=workers)
        batches = reading.batches(
            reader,
            hint=functools.partial(to_map_ahead, self.source, self.run.owner_id),
            worth=self._mostly_unchanged,
            checkpoint=self.ctx.checkpoint,
        )
        try:
            with collector.fewer_collections():
                try:
                    for batch, mapped in offers.batches(
                        batches,
                        to_map=reading.to_map(self.unchanged.to_map),
                        boilerplate=lambda: (self.boilerplate, self.boilerplate_lines),
                        checkpoint=self.ctx.checkpoint,
                        unhelped=reading.takes_every_worker,
                    ):
                        self._mapped = mapped
                        self._apply(batch)
                        if self.on_batch is not None:
                            self.on_batch(out)
                except RunGone:
                    raise  # the run is no longer this worker's to write to: nothing held is
                except BaseException:
                    # However else the listing ends, the batches applied before are written,
                    # as they would have been one by one (nothing is held once writing failed).
                    self._write_held()
                    raise
                self._write_held()
            out.complete = True
        except (RunAborted, RunGone):
            raise
        except (SourceFailed, FetchError) as exc:
            out.error = str(exc)
        except Exception as exc:
            logger.exception("Listing source %s failed", self.source.pk)
            out.error = f"Unexpected error reading the source: {type(exc).__name__}: {exc}"
        finally:
            self._mapped = NOTHING
            offers.close()
            reading.close()
        out.mapped_elsewhere = offers.helped
        out.read_elsewhere = reading.helped
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

    def _free_workers(self) -> int:
        """The live workers that could help this listing now, itself included."""
        return max(1, live_workers() - self.listing_elsewhere())

    def _mostly_unchanged(self) -> bool:
        """Whether most of what was listed so far was unchanged by its raw hash, never mapped
        (a re-run): then reading is most of the listing's work, and worth another worker's
        (ingestion.pipeline.readahead); otherwise mapping is, which
        ingestion.pipeline.mapping spreads."""
        return self.unchanged.claimed * 2 > self.outcome.listed

    # --- one batch -------------------------------------------------------------------------

    def _apply(self, batch: list[Posting | RawRecord]) -> None:
        self.ctx.checkpoint()
        # Records whose raw hash equals their stored job's are unchanged without being
        # mapped; the rest are mapped to postings and compared as a whole.
        stored: dict[tuple[str, str], Stored] = {}
        asked: set[tuple[str, str]] = set()
        unchanged = self.unchanged
        keys = unchanged.keys(batch)
        unchanged.look_up(stored, asked, keys)
        if self._holds and batch and self._hold_unchanged(batch, keys, stored):
            return
        entries: list[Posting | RawRecord] = [
            r
            if type(r) is not RawRecord or unchanged.is_unchanged(r, key, stored)
            else self._mapped.posting(i, r)
            for i, (r, key) in enumerate(zip(batch, keys, strict=True))
        ]
        # A record mapped here is keyed as its posting reads.
        mapped = [i for i, (e, r) in enumerate(zip(entries, batch, strict=True)) if e is not r]
        if mapped:
            for i, key in zip(mapped, unchanged.keys([entries[i] for i in mapped]), strict=True):
                keys[i] = key
            unchanged.look_up(stored, asked, [keys[i] for i in mapped])
        companies = [company for company, _ in keys]
        items: list[store.ItemRow] = []
        upserts: list[tuple[Posting, str]] = []
        unchanged_ids: list[int] = []
        rehashed: list[tuple[int, str]] = []
        # Each item's posting (None: a record unchanged without being mapped).
        item_postings: list[Posting | None] = []
        for index, (entry, key) in enumerate(zip(entries, keys, strict=True)):
            company = key[0]
            if self.source_rows_companies:
                self.outcome.companies[company] += 1
            if type(entry) is RawRecord and unchanged.claim(entry, key, stored):
                items.append(unchanged.item(self.run.pk, entry, key, stored[key]))
                item_postings.append(None)
                self.outcome.counts[ItemOutcome.UNCHANGED] += 1
                unchanged_ids.append(stored[key][0])
                continue
            posting = self._mapped.posting(index, entry) if isinstance(entry, RawRecord) else entry
            outcome, reason, chash = self.classifier.classify(
                posting, stored, company, self._mapped.content_hash
            )
            item = store.ItemRow(
                run_id=self.run.pk,
                source_id=self.source.pk,
                job_id=stored[key][0] if key in stored else None,
                external_id=key[1][: ITEM_MAX["external_id"]],
                title=posting.title[: ITEM_MAX["title"]],
                url=posting.url[: ITEM_MAX["url"]],
                row=posting.row,
                outcome=outcome,
                reason=reason,
            )
            items.append(item)
            item_postings.append(posting)
            self.outcome.counts[outcome] += 1
            if outcome in (ItemOutcome.NEW, ItemOutcome.UPDATED):
                upserts.append((posting, chash))
                if (
                    not self._learned
                    and len(self.outcome.sample) < BOILERPLATE_SAMPLE
                    and 0 < len(posting.description_html) <= BOILERPLATE_SAMPLE_MAX_CHARS
                ):
                    self.outcome.sample.append(posting.description_html)
            elif outcome == ItemOutcome.UNCHANGED:
                unchanged_ids.append(stored[key][0])
                if posting.raw_hash != stored[key][3]:
                    rehashed.append((stored[key][0], posting.raw_hash))
        self.outcome.listed += len(batch)
        if not self._learned:
            self._learned = True
            self._learn_boilerplate()
        # The jobs this batch rewrites change under the lookup once the workers take them.
        self.near.exclude(
            [item.job_id for item in items if item.outcome == ItemOutcome.UPDATED and item.job_id]
        )
        # As listed, before the near-duplicates among them are marked: the jobs written.
        listed_as = {
            outcome: {id(i) for i in items if i.outcome == outcome}
            for outcome in (ItemOutcome.NEW, ItemOutcome.UPDATED)
        }
        near = near_duplicates(
            item_postings,
            items,
            source=self.source,
            near=self.near,
            fingerprints=self._mapped.fingerprints,
            boilerplate=self.boilerplate,
            lines=self.boilerplate_lines,
            counts=self.outcome.counts,
        )
        # An ingest writes the jobs the listing decided (it had their description) processed,
        # in their final state: (item, candidate, match, status, processed fields).
        final = final_jobs(near, item_postings, items, self._mapped.content) if self.write else []

        # A preview's progress is postings read; an ingest's is jobs processed (the chunks
        # count them), its total growing as the listing finds new and updated postings.
        increments: dict[str, int] = {} if self.write else {"items_done": len(batch)}
        for item in items:
            counter = self.counters.get(item.outcome)  # type: ignore[call-overload]
            if counter:
                increments[counter] = increments.get(counter, 0) + 1
        if final:
            # Counted as the ingesting stage counts the jobs it processes.
            increments["items_done"] = len(final)
            for _, _, _, status, _ in final:
                name = {"ready": "ready", "skipped": "skipped"}.get(status, "failed")
                increments[name] = increments.get(name, 0) + 1
        outcomes = Counter(str(item.outcome) for item in items)
        if not upserts and self._holds:
            # No job to write (so nothing near-duplicate or processed either): held.
            if self._held.add(items, unchanged_ids, rehashed, increments, outcomes):
                self._write_held()
            return
        self._write_held()
        # The batch's transaction (the writer runs it, and again should the database
        # connection break).
        write = functools.partial(
            self._write,
            items=items,
            companies=companies,
            upserts=upserts,
            near=near,
            final=final,
            unchanged_ids=unchanged_ids,
            rehashed=rehashed,
            listed_as=listed_as,
            increments=increments,
            outcomes=outcomes,
        )
        self.writer.write(write, items, [candidate for _, candidate, _ in near])

    def _hold_unchanged(
        self,
        batch: list[Posting | RawRecord],
        keys: list[tuple[str, str]],
        stored: dict[tuple[str, str], Stored],
    ) -> bool:
        """Apply a batch whose every entry is a record unchanged by its raw hash and listed
        for the first time (UnchangedRecords.claim_all), as the comparing entry by entry
        would, and hold it: it writes no job, so none of the comparing's later steps (near
        duplicates, jobs written processed, counters of other outcomes) has anything to do.
        False, having done nothing, for any other batch."""
        claimed = self.unchanged.claim_all(self.run.pk, batch, keys, stored)
        if claimed is None:
            return False
        items, unchanged_ids = claimed
        out = self.outcome
        if self.source_rows_companies:
            out.companies.update([company for company, _ in keys])
        out.counts[ItemOutcome.UNCHANGED] += len(items)
        out.listed += len(batch)
        if not self._learned:
            self._learned = True
            self._learn_boilerplate()
        # A preview's progress is postings read; an unchanged posting feeds no other counter.
        increments = {} if self.write else {"items_done": len(batch)}
        outcomes = Counter({str(ItemOutcome.UNCHANGED): len(items)})
        if self._held.add(items, unchanged_ids, [], increments, outcomes):
            self._write_held()
        return True

    def _write(
        self,
        *,
        items: list[store.ItemRow],
        companies: list[str],
        upserts: list[tuple[Posting, str]],
        near: list[Decided],
        final: list[Final],
        unchanged_ids: list[int],
        rehashed: list[tuple[int, str]],
        listed_as: dict[ItemOutcome, set[int]],
        increments: dict[str, int],
        outcomes: Counter[str],
    ) -> None:
        """A batch's writes, in its transaction: its jobs and items, the run's counters and
        the batch's events."""
        processed = {item.external_id: (status, done) for item, _, _, status, done in final}
        if self.write:
            unresolved = write_jobs(
                self.run,
                self.source,
                now=self.now,
                upserts=upserts,
                items=items,
                companies=companies,
                near=near,
                processed=processed,
                stored=self.unchanged.stored,
                exclude=self.near.exclude,
            )
            store.set_listed(listed_decisions(unresolved))
            store.touch_unchanged(self.now, unchanged_ids, rehashed)
            pending = []
            written = {id(item) for item, _, _ in near}
            done = {id(item) for item, *_ in final}
            for item in items:
                if id(item) in done:
                    continue
                if item.outcome in (ItemOutcome.NEW, ItemOutcome.UPDATED) or (id(item) in written):
                    item.job_status = JobStatus.PENDING
                    if item.job_id is not None:
                        pending.append(item.job_id)
            if pending and self.on_pending is not None:
                self.on_pending(pending)
            for event_type, outcome in (
                (events.JOB_CREATED, ItemOutcome.NEW),
                (events.JOB_UPDATED, ItemOutcome.UPDATED),
            ):
                events.jobs_changed(
                    event_type,
                    run_id=self.run.pk,
                    job_ids=[i.job_id for i in items if id(i) in listed_as[outcome] and i.job_id],
                    status=JobStatus.PENDING,
                    sourceId=self.source.pk,
                    stage="listing",
                )
            finish(self.run.pk, self.run.owner_id, final)
            if final and self.on_processed is not None:
                self.on_processed(len(final))
        self._write_items(items, increments, outcomes, final)

    def _write_items(
        self,
        items: list[store.ItemRow],
        increments: dict[str, int],
        outcomes: Counter[str],
        final: list[Final],
    ) -> None:
        """The items of one transaction's batches, the run's counters, and the feed's events
        of its failed jobs and invalid or failed items: the last of every batch's writes,
        held or not."""
        store.insert_items(items)
        failed_before = self.run.jobs_failed
        self.ctx.progress(increments=increments, outcomes=outcomes)
        announce_failures(
            self.ctx,
            (
                (
                    item.job_id,
                    item.external_id,
                    candidate.company,
                    (candidate.title or "")[: JOB_MAX["title"]],
                    done_.error,
                )
                for item, candidate, _, status, done_ in final
                if status == JobStatus.ERROR
            ),
            failed_before=failed_before,
        )
        for item in items:
            if item.outcome in (ItemOutcome.INVALID, ItemOutcome.ERROR):
                self._report_item(item)

    def _write_held(self) -> None:
        """Write the batches held, in one transaction: what each batch's own would have
        written, in the same order (none of them writes a job, so no later batch's lookup
        depends on it)."""
        held, self._held = self._held, Held()
        if not held.batches:
            return

        def write() -> None:
            if self.write:
                store.touch_unchanged(self.now, held.unchanged_ids, held.rehashed)
            self._write_items(held.items, dict(held.increments), held.outcomes, [])

        self.writer.write(write, held.items, [])

    def _savepoint(self) -> Callable[[], None]:
        """What puts the item events told and the callbacks' memory (the chunk stream)
        back as they are now (ingestion.pipeline.batchwrite)."""
        item_events = self._item_events
        restore_stream = self.savepoint() if self.savepoint is not None else None

        def restore() -> None:
            self._item_events = item_events
            if restore_stream is not None:
                restore_stream()

        return restore

    def _learn_boilerplate(self) -> None:
        """Learn the paragraphs the company repeats from the first batch's sample, before
        any simhash of this run is computed (the listing's near-duplicate check and the
        ingesting stage leave them out, and must agree): without it, a company's different
        roles look alike for their shared about-us and benefits paragraphs. An ingest keeps
        it on the source, where the ingesting stage reads it; a preview only uses it."""
        if len(self.outcome.sample) < BOILERPLATE_MIN_SAMPLE:
            return  # too few postings to tell what they share: keep what was learned before
        texts = [normalize.fingerprint_text(html) for html in self.outcome.sample]
        learned, self.boilerplate_lines = simhash.learn_boilerplate(texts)
        self.boilerplate = frozenset(learned)
        if self.write:
            self.source.boilerplate = learned
            # update(), not save(): the source's own settings may be edited meanwhile.
            Source.objects.filter(pk=self.source.pk).update(boilerplate=learned)

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


def listing_batches(
    source: Source, filters: dict[str, Any], fetcher: Fetcher | None = None
) -> Iterator[list[Posting | RawRecord]]:
    """A source's listing from its start, in the listing's batches: the listing's own reading,
    and a read-ahead helper's (without `fetcher`: only a source read from its upload)."""
    row_companies = adapter_class(source.kind).row_companies
    raw_hash = source_raw_hasher(source, filters, row_companies=row_companies)
    adapter = get_adapter(source, cast(Fetcher, fetcher))
    return batched(adapter.records(raw_hash), LISTING_BATCH_SIZE, weight=posting_text_size)


def posting_text_size(posting: Posting | RawRecord) -> int:
    """What a posting weighs in a batch: its long texts."""
    if isinstance(posting, RawRecord):
        return posting.size
    return len(posting.description_html) + len(posting.requirements_html)

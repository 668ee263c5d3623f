"""The listing's transactions (ingestion.pipeline.diff): each batch's writes go into one,
tried again on a new connection when the database connection breaks; and the batches that
write no job are held to go into one together."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from ingestion import dedupe, store
from ingestion.models import RunItem
from runs import dbretry
from runs.models import IngestionRun

logger = logging.getLogger(__name__)

# A batch that writes no job (every posting unchanged, a duplicate, filtered or invalid) of a
# source read from its upload is held, and up to this many go into one transaction: the items'
# COPY, the seen stamps' upsert, the run's progress and the commit once, not once a batch.
HELD_BATCHES_MAX = 5
# Nor held longer than this (the run's progress and heartbeat wait for them).
HELD_SECONDS_MAX = 1.0


@dataclasses.dataclass
class Held:
    """What the batches held for one transaction write: their items, the unchanged jobs'
    ids and new raw hashes, and the run's counters they add to."""

    items: list[store.ItemRow] = dataclasses.field(default_factory=list)
    unchanged_ids: list[int] = dataclasses.field(default_factory=list)
    rehashed: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    increments: Counter[str] = dataclasses.field(default_factory=Counter)
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    batches: int = 0
    since: float = 0.0

    def add(
        self,
        items: list[store.ItemRow],
        unchanged_ids: list[int],
        rehashed: list[tuple[int, str]],
        increments: dict[str, int],
        outcomes: Counter[str],
    ) -> bool:
        """Hold a batch that writes no job; True once what is held is enough batches, or
        held long enough, to be written."""
        if not self.batches:
            self.since = time.monotonic()
        self.items.extend(items)
        self.unchanged_ids.extend(unchanged_ids)
        self.rehashed.extend(rehashed)
        self.increments.update(increments)
        self.outcomes.update(outcomes)
        self.batches += 1
        return self.batches >= HELD_BATCHES_MAX or time.monotonic() - self.since >= HELD_SECONDS_MAX


class BatchWriter:
    """The transactions of one source's listing in `run`. `savepoint` is called before each
    transaction; what it returns puts what the listing and its callbacks keep in memory back
    as it was, when the transaction is rolled back to be tried again."""

    def __init__(
        self,
        run: IngestionRun,
        source_id: int,
        *,
        label: str,
        savepoint: Callable[[], Callable[[], None]],
    ) -> None:
        self.run = run
        self.source_id = source_id
        self.label = label
        self.savepoint = savepoint
        # The items of this source's batches committed so far.
        self.items_written = 0

    def write(
        self,
        write: Callable[[], None],
        items: list[store.ItemRow],
        candidates: list[dedupe.Candidate],
    ) -> None:
        """Run `write`, a batch's writes, in one transaction; when the database connection
        breaks (runs.dbretry), again on a new connection, from the state as it was before
        the first try: what `write` changes in memory (the items' and the candidates' job
        ids, reasons and statuses, the item events told, the run's counters, the chunk
        stream) is put back, and what it wrote was rolled back with its transaction (ids
        drawn for new jobs included: the retry draws its own; publishing and queueing wait
        for the commit).

        A COMMIT whose answer was lost may have happened: then every item of the batch is
        stored, and the try that wrote it left the memory as committed. The retry sees that
        and, instead of writing the batch again (its new jobs would collide), runs the
        commit's hooks (the events' broadcasts, the chunks' queueing) that Django dropped
        with the broken connection. The jobs excluded from the near-duplicate lookup are
        not put back: a failed try excluded only this batch's jobs, which the retry
        excludes again, and ids it drew that become no job or one of those."""
        saved_items = [(i.job_id, i.reason, i.job_status, i.attempts) for i in items]
        saved_candidates = [c.job_id for c in candidates]
        restore = self.savepoint()
        expected = self.items_written + len(items)
        hooks: list[tuple[Callable[[], None], bool]] = []
        tries = 0

        def attempt() -> None:
            nonlocal tries
            tries += 1
            if tries > 1:
                self.run.refresh_from_db()
                if self._items_stored() >= expected:
                    for hook, robust in hooks:
                        _run_hook(hook, robust=robust)
                    return
                for item, (job_id, reason, job_status, attempts) in zip(
                    items, saved_items, strict=True
                ):
                    item.job_id, item.reason = job_id, reason
                    item.job_status, item.attempts = job_status, attempts
                for candidate, job_id in zip(candidates, saved_candidates, strict=True):
                    candidate.job_id = job_id
                restore()
            hooks.clear()
            with transaction.atomic():
                write()
                # Django drops them when the COMMIT fails: kept for a retry that finds the
                # batch committed all the same.
                # (Django's entries are (savepoint ids, hook, robust); its stubs omit robust.)
                pending: list[tuple[Any, ...]] = list(connection.run_on_commit)
                hooks.extend((func, robust) for _, func, robust in pending)

        dbretry.retry_transient(
            attempt, what=f"a batch of the listing of {self.label} in run {self.run.pk}"
        )
        self.items_written = expected

    def _items_stored(self) -> int:
        """The run's items of this source in the database: those of the batches this
        listing committed (a run lists each of its sources once)."""
        return RunItem.objects.filter(run_id=self.run.pk, source_id=self.source_id).count()


def _run_hook(hook: Callable[[], None], *, robust: bool) -> None:
    """Run an on-commit hook as Django would have (a robust one's error is logged)."""
    if not robust:
        hook()
        return
    try:
        hook()
    except Exception:
        logger.exception("An on-commit hook of a listing batch failed")

"""A batch's new and updated postings written as jobs (ingestion.pipeline.jobrows), company by
company, in the listing's transaction (ingestion.pipeline.diff): the near-duplicate decisions
go into the rows, and the items and candidates take the ids of the jobs written."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from ingestion import store
from ingestion.adapters import Posting
from ingestion.models import ItemOutcome, Source
from ingestion.pipeline.content import Content
from ingestion.pipeline.jobrows import upsert_jobs
from ingestion.pipeline.neardup import Decided
from ingestion.pipeline.unchanged import job_company
from runs.models import IngestionRun


def write_jobs(
    run: IngestionRun,
    source: Source,
    *,
    now: datetime,
    upserts: list[tuple[Posting, str]],
    items: list[store.ItemRow],
    companies: list[str],
    near: list[Decided],
    processed: dict[str, tuple[str, Content]],
    stored: Callable[..., list[tuple[Any, ...]]],
    exclude: Callable[[Collection[int]], None],
) -> list[Decided]:
    """Upsert the batch's `upserts` (posting, content hash) as jobs, `items` and `companies`
    being the batch's items and each one's company, `near` the listing's near-duplicate
    decisions and `processed` the jobs written processed (by external id); `stored` looks up
    stored jobs' columns (ingestion.pipeline.unchanged) and `exclude` leaves the jobs written
    out of the near-duplicate lookup. Returns the decisions whose canonical is a new job of
    this batch that had no id when its row was built: their jobs are marked once every row
    is written."""
    # The listing's decisions go into the rows it writes (each job written once);
    # those whose canonical is a new job of this batch without an id when its row
    # is built are set once every row is written.
    for item, candidate, _ in near:
        if item.job_id:
            candidate.job_id = item.job_id
    unresolved: list[Decided] = []
    for company, group in _by_company(upserts, source).items():
        new_keys = {
            item.external_id
            for item, item_company in zip(items, companies, strict=True)
            if item.outcome == ItemOutcome.NEW and item_company == company
        }
        # New postings the listing found to be near-duplicates are stored too
        # (skipped, pointing at the job they duplicate).
        new_keys.update(
            item.external_id
            for item, candidate, _ in near
            if not item.job_id and candidate.company == company
        )
        listed: dict[str, tuple[int, int | None]] = {}
        for item, candidate, match in near:
            if candidate.company != company:
                continue
            canonical = match.canonical.job_id if match is not None else None
            if match is not None and canonical is None:
                unresolved.append((item, candidate, match))
            listed[item.external_id] = (candidate.simhash, canonical)
        ids = upsert_jobs(
            run,
            source,
            group,
            now=now,
            new_keys=new_keys,
            listed=listed,
            processed=processed,
        )
        missing = [p.external_id.strip() for p, _ in group]
        missing = [key for key in missing if key not in ids]
        if missing:
            ids.update(stored(missing, ("external_id", "id"), company=company))
        for item, item_company in zip(items, companies, strict=True):
            if item.job_id is None and item.outcome == ItemOutcome.NEW and item_company == company:
                item.job_id = ids.get(item.external_id)
        for item, candidate, _ in near:
            if candidate.company != company:
                continue
            if item.job_id is None:
                item.job_id = ids.get(item.external_id)
            candidate.job_id = item.job_id
        exclude(ids.values())
    # The jobs they duplicate have ids now: the reasons link them.
    for item, _, match in near:
        if match is not None:
            item.reason = match.reason
    return unresolved


def _by_company(
    upserts: list[tuple[Posting, str]], source: Source
) -> dict[str, list[tuple[Posting, str]]]:
    groups: dict[str, list[tuple[Posting, str]]] = {}
    for posting, chash in upserts:
        groups.setdefault(job_company(posting, source), []).append((posting, chash))
    return groups

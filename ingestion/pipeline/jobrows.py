"""A listing batch's new and updated postings as job rows, written in bulk: `pending`, or in
their final state when the listing processed them (ingestion.pipeline.content)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from ingestion import normalize, store
from ingestion.adapters import Posting
from ingestion.models import JobStatus, Source
from ingestion.pipeline.content import JOB_MAX, Content
from ingestion.pipeline.unchanged import job_company


def upsert_jobs(
    run: Any,
    source: Source,
    postings: list[tuple[Posting, str]],
    *,
    now: datetime,
    new_keys: Collection[str] = (),
    listed: Mapping[str, tuple[int, int | None]] | None = None,
    processed: Mapping[str, tuple[str, Content]] | None = None,
) -> dict[str, int]:
    """Write these (posting, content hash) pairs, all of one company (job_company), as
    `pending` jobs of the run's owner (ingestion.store.upsert_jobs says how, and what it
    returns: keyed by external id, which one company makes unambiguous). `listed`: the
    listing's (simhash, id of the job it duplicates or None) by external id; the jobs it
    leaves out get neither. `processed`: (status, processed fields) by external id of the
    jobs written in their final state instead (ingestion.pipeline.content)."""
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
            simhash=None,
            content_hash=chash,
            raw_hash=p.raw_hash,
            duplicate_of_id=None,
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
    if listed:
        rows = [
            row._replace(simhash=decided[0], duplicate_of_id=decided[1])
            if (decided := listed.get(row.external_id))
            else row
            for row in rows
        ]
    if processed:
        rows = [
            _processed_row(row, *done) if (done := processed.get(row.external_id)) else row
            for row in rows
        ]
    return store.upsert_jobs(rows, new_keys=new_keys)


def _processed_row(row: store.JobRow, status: str, done: Content) -> store.JobRow:
    """`row` as the ingesting stage leaves it: a failed job keeps its raw description
    (for "retry failed"); the others keep the sanitized one only."""
    failed = status == JobStatus.ERROR
    return row._replace(
        status=status,
        description="" if failed else done.description,
        description_text=done.text,
        raw_description=row.raw_description if failed else "",
        location=done.location[: JOB_MAX["location"]],
        remote=done.remote,
        workplace_type=done.workplace_type[: JOB_MAX["workplace_type"]],
        employment_type=done.employment_type[: JOB_MAX["employment_type"]],
        salary_min=done.salary_min,
        salary_max=done.salary_max,
        salary_currency=done.salary_currency[: JOB_MAX["salary_currency"]],
        salary_period=done.salary_period[: JOB_MAX["salary_period"]],
        error_message=done.error,
    )

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

# A job the listing did not decide: no simhash, no job it duplicates.
_UNDECIDED: tuple[int | None, int | None] = (None, None)


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
    listed = listed or {}
    processed = processed or {}
    # What every row shares, and the columns' lengths, looked up once: per row each lookup
    # is a dictionary's or a model's attribute (a property, for the pk).
    owner_id, source_id, run_id = run.owner_id, source.pk, run.pk
    pending = JobStatus.PENDING.value
    error = JobStatus.ERROR.value
    external_id_max, url_max, title_max = JOB_MAX["external_id"], JOB_MAX["url"], JOB_MAX["title"]
    location_max, workplace_max = JOB_MAX["location"], JOB_MAX["workplace_type"]
    employment_max, department_max = JOB_MAX["employment_type"], JOB_MAX["department"]
    currency_max, period_max = JOB_MAX["salary_currency"], JOB_MAX["salary_period"]
    salary_text_max = JOB_MAX["salary_text"]
    sanitize_html = normalize.sanitize_html
    rows = []
    for p, chash in postings:
        external_id = p.external_id.strip()[:external_id_max]
        simhash, duplicate_of_id = listed.get(external_id, _UNDECIDED)
        # Each row built once, in its final state: a NamedTuple's _replace costs as much again.
        # The fields the ingesting stage normalizes are the processed ones when the listing
        # processed the job (Content has them under the posting's names), else as listed.
        done = processed.get(external_id)
        fields: Posting | Content
        if done is None:
            status, fields, error_message = pending, p, ""
            description = description_text = ""
            raw_description = p.description_html
        else:
            # As the ingesting stage leaves it: a failed job keeps its raw description (for
            # "retry failed"); the others keep the sanitized one only.
            status, fields = done
            failed = status == error
            description = "" if failed else fields.description
            description_text = fields.text
            raw_description = p.description_html if failed else ""
            error_message = fields.error
        rows.append(
            store.JobRow(
                owner_id,
                source_id,
                job_company(p, source),
                external_id,
                p.url[:url_max],
                p.title.strip()[:title_max],
                fields.location[:location_max],
                fields.remote,
                fields.workplace_type[:workplace_max],
                fields.employment_type[:employment_max],
                p.department[:department_max],
                raw_description,
                p.needs_detail,
                description,
                description_text,
                sanitize_html(p.requirements_html) if p.requirements_html else "",
                p.posted_at,
                p.valid_through,
                fields.salary_min,
                fields.salary_max,
                fields.salary_currency[:currency_max],
                fields.salary_period[:period_max],
                p.salary_text[:salary_text_max],
                status,
                simhash,
                chash,
                p.raw_hash,
                duplicate_of_id,
                now,  # first_seen_at
                now,  # last_seen_at
                None,  # expired_at
                run_id,  # last_run_id
                error_message,
                now,  # created_at
                now,  # updated_at
            )
        )
    return store.upsert_jobs(rows, new_keys=new_keys)

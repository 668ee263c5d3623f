"""A job's processing that depends on nothing but its own fields: the description sanitized
and read as plain text, the location, workplace, employment type and salary normalized.

The ingesting stage (ingestion.pipeline.process) runs it on a pending job once its detail is
fetched; the listing (ingestion.pipeline.diff) runs it — or has other workers run it ahead,
ingestion.pipeline.mapping — on each new or updated posting whose listing carries its
description, and writes that job once, in its final state. One function, so both give the
same job."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from ingestion import normalize
from ingestion.adapters import Posting
from ingestion.models import Job

if TYPE_CHECKING:
    from runs.context import RunContext

logger = logging.getLogger(__name__)

# Each failure (the listing's or a chunk's) gets its own feed event up to this many per run;
# past that the counts and the run's items say the rest (a board of 50,000 broken postings
# must not flood the page).
FAILURE_EVENTS_MAX = 25

# Text columns' lengths, read from the model: a posting's values are cut to fit them.
JOB_MAX = {f.name: f.max_length for f in Job._meta.concrete_fields if f.max_length}


@dataclass(slots=True)
class Content:
    """A job's fields as processed; `error` non-empty when processing failed (the other
    fields are then as given)."""

    description: str
    text: str
    location: str
    remote: bool | None
    workplace_type: str
    employment_type: str
    salary_min: Decimal | None
    salary_max: Decimal | None
    salary_currency: str
    salary_period: str
    error: str = ""


def process(given: Content, *, title: str, raw_description: str, salary_text: str) -> Content:
    """The processed fields of a job with these (`given`: its other fields, as stored).
    Raises ValueError for a job that cannot be ready (no title)."""
    if not title.strip():
        raise ValueError("the posting has no title")
    description, as_written = normalize.sanitize_html_as_written(raw_description)
    text = normalize.sanitized_html_to_text(description, as_written=as_written)
    location = normalize.normalize_location(given.location)
    remote, workplace_type = normalize.normalize_workplace(
        location, given.workplace_type, given.remote, text
    )
    salary_min, salary_max = given.salary_min, given.salary_max
    currency, period = given.salary_currency, given.salary_period
    if salary_min is None and salary_max is None and salary_text:
        salary_min, salary_max, parsed_currency, parsed_period = normalize.parse_salary(salary_text)
        currency = currency or parsed_currency
        period = period or parsed_period
    return Content(
        description=description,
        text=text,
        location=location,
        remote=remote,
        workplace_type=workplace_type,
        employment_type=normalize.normalize_employment_type(given.employment_type),
        salary_min=salary_min,
        salary_max=salary_max,
        salary_currency=currency,
        salary_period=period,
    )


def failure(exc: Exception, what: object) -> str:
    """The error a job's processing failed with, as its item and job record it: a
    ValueError says what is wrong with the posting; anything else is unexpected (logged)."""
    if isinstance(exc, ValueError):
        return str(exc)
    logger.error("Processing %s failed", what, exc_info=exc)
    return f"unexpected error: {type(exc).__name__}: {exc}"


def of_posting(posting: Posting) -> Content:
    """The processed fields of the job the listing writes for `posting` (its values cut to
    the columns first, as the job row stores them), or its failure."""
    given = Content(
        description="",
        text="",
        location=posting.location[: JOB_MAX["location"]],
        remote=posting.remote,
        workplace_type=posting.workplace_type[: JOB_MAX["workplace_type"]],
        employment_type=posting.employment_type[: JOB_MAX["employment_type"]],
        salary_min=posting.salary_min,
        salary_max=posting.salary_max,
        salary_currency=posting.salary_currency[: JOB_MAX["salary_currency"]],
        salary_period=posting.salary_period[: JOB_MAX["salary_period"]],
    )
    try:
        return process(
            given,
            title=posting.title.strip()[: JOB_MAX["title"]],
            raw_description=posting.description_html,
            salary_text=posting.salary_text[: JOB_MAX["salary_text"]],
        )
    except Exception as exc:  # one broken posting must not fail its batch
        given.error = failure(exc, f"posting {posting.external_id!r}")
        return given


def announce_failures(
    ctx: RunContext,
    failures: Iterable[tuple[int | None, str, str | None, str, str]],
    *,
    failed_before: int,
) -> None:
    """The feed's `job.failed` events of a batch's failed jobs, each given as (job id,
    external id, company, title, error): one per job while the run, which had
    `failed_before` failures before this batch, has announced fewer than FAILURE_EVENTS_MAX."""
    announced = failed_before
    for job_id, external_id, company, title, error in failures:
        if announced >= FAILURE_EVENTS_MAX:
            return
        announced += 1
        ctx.event(
            "job.failed",
            f"{company}: '{title or external_id}' failed: {error}",
            {"jobId": job_id, "externalId": external_id, "error": error},
        )

"""Jobs: the list with the jobs browser's filters (read by its own JobFilters, narrowed by
selectors.jobs_for_owner) and one job with its near-duplicate group."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from django.http import Http404, HttpRequest, QueryDict
from django.shortcuts import get_object_or_404
from ninja import Query
from pydantic import Field

from api.auth import user_of
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor
from api.problems import Problem
from api.routing import api_router
from api.schemas import CamelSchema
from ingestion import selectors
from ingestion.models import Job, JobStatus
from ingestion.views.jobs import JobFilters
from runs.models import IngestionRun

router = api_router(tags=["jobs"])

# What a row of the list carries beyond the jobs browser's columns.
LIST_FIELDS = (*selectors.JOB_LIST_FIELDS, "url", "source", "duplicate_of")

# A database id as a client may send one: past a bigint is a 422, not a database error.
ID_MAX = 2**63 - 1

# --- schemas --------------------------------------------------------------------------------


class JobQuery(CamelSchema):
    q: str | None = Field(
        None, description="Every word in the title, company, location or external id."
    )
    company: str | None = Field(None, description="Exactly this company.")
    status: JobStatus | None = None
    remote: Literal["remote", "hybrid", "onsite"] | None = Field(
        None, description="The workplace: its normalized type, else the board's remote flag."
    )
    location: str | None = Field(None, description="Location contains this.")
    posted: Literal["1", "7", "30"] | None = Field(None, description="Posted in the last N days.")
    posted_from: date | None = Field(None, description="Posted on or after this day.")
    posted_to: date | None = Field(None, description="Posted on or before this day.")
    source: int | None = Field(None, ge=1, le=ID_MAX, description="Only this source's jobs.")
    run: int | None = Field(
        None, ge=1, le=ID_MAX, description="Only the jobs this run touched last."
    )
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class JobRow(CamelSchema):
    id: int
    title: str
    company: str
    location: str
    remote: bool | None
    workplace_type: str
    status: str
    posted_at: datetime | None
    last_seen_at: datetime
    url: str
    source_id: int | None
    duplicate_of_id: int | None
    links: dict[str, str]


class JobList(CamelSchema):
    items: list[JobRow]
    next_cursor: str | None


class GroupJob(CamelSchema):
    id: int
    title: str
    company: str
    location: str
    status: str
    posted_at: datetime | None
    first_seen_at: datetime


class DuplicateGroupOut(CamelSchema):
    canonical: GroupJob | None = Field(
        description="The job the group's others duplicate (this job, or the one it duplicates)."
    )
    duplicates: list[GroupJob] = Field(description="Jobs duplicating it, earliest seen first.")
    truncated: bool = Field(description="More duplicates than listed.")
    size: int


class JobOut(JobRow):
    external_id: str
    employment_type: str
    department: str
    description: str = Field(description="Sanitized HTML.")
    description_text: str
    requirements: str
    valid_through: datetime | None
    salary_min: Decimal | None
    salary_max: Decimal | None
    salary_currency: str
    salary_period: str
    salary_text: str
    first_seen_at: datetime
    expired_at: datetime | None
    last_run_id: int | None
    error_message: str
    created_at: datetime
    updated_at: datetime
    duplicate_group: DuplicateGroupOut


# --- helpers --------------------------------------------------------------------------------


def _filters(query: JobQuery) -> dict[str, Any]:
    """The query as selectors.jobs_for_owner's keyword arguments, read by the jobs browser's
    JobFilters (the same words, the same date arithmetic)."""
    data = QueryDict(mutable=True)
    for name, value in query.model_dump(exclude={"cursor", "limit", "run"}, by_alias=False).items():
        if value is not None:
            data[name] = value.isoformat() if isinstance(value, date) else str(value)
    form = JobFilters(data)
    if form.ignored:
        raise Problem(400, form.ignored[0], kind="bad-parameter")
    return form.filters()


def _after(cursor: str | None) -> tuple[datetime | None, int] | None:
    key = decode_cursor(cursor, fields={"postedAt": str, "id": int})
    if key is None:
        return None
    if not key["postedAt"]:
        return None, key["id"]
    try:
        posted = datetime.fromisoformat(key["postedAt"])
    except ValueError:
        posted = None
    if posted is None or posted.tzinfo is None:
        raise Problem(400, "The cursor is not one this API handed out.", kind="bad-cursor")
    return posted, key["id"]


def _row(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "title": job.title,
        "company": job.company,
        "location": job.location,
        "remote": job.remote,
        "workplace_type": job.workplace_type,
        "status": job.status,
        "posted_at": job.posted_at,
        "last_seen_at": job.seen_at,
        "url": job.url,
        "source_id": job.source_id,
        "duplicate_of_id": job.duplicate_of_id,
        "links": {
            "self": f"/api/v1/jobs/{job.pk}",
            "source": f"/api/v1/sources/{job.source_id}" if job.source_id else "",
        },
    }


# --- endpoints ------------------------------------------------------------------------------


@router.get(
    "",
    response={200: JobList, 404: None},
    summary="Your jobs, newest posting first, with the jobs browser's filters",
    description="Undated postings come last. `run`: a run of yours (404 otherwise).",
)
def job_list(request: HttpRequest, filters: Query[JobQuery]) -> Any:
    owner = user_of(request)
    run = None
    if filters.run is not None:
        # A run that is not the user's is a 404, as on the jobs page.
        run = IngestionRun.objects.filter(pk=filters.run, owner=owner).first()
        if run is None:
            raise Http404("No such run.")
    jobs = selectors.jobs_for_owner(owner, run=run, **_filters(filters)).only(*LIST_FIELDS)
    rows = selectors.jobs_after(jobs, after=_after(filters.cursor), limit=filters.limit + 1)
    page = Page.read(
        rows,
        filters.limit,
        key=lambda job: {
            "postedAt": job.posted_at.isoformat() if job.posted_at else "",
            "id": job.pk,
        },
    )
    return {"items": [_row(job) for job in page.rows], "next_cursor": page.next_cursor}


@router.get(
    "/{int:job_id}",
    response={200: JobOut, 404: None},
    summary="One job, with its near-duplicate group",
)
def job_detail(request: HttpRequest, job_id: int) -> Any:
    job = get_object_or_404(Job.objects.with_last_seen(), pk=job_id, owner=user_of(request))
    group = selectors.duplicate_group(job)
    return {
        **_row(job),
        **{name: getattr(job, name) for name in JobOut.model_fields if hasattr(job, name)},
        "last_seen_at": job.seen_at,
        "duplicate_group": {
            "canonical": group.canonical,
            "duplicates": group.duplicates,
            "truncated": group.truncated,
            "size": group.size,
        },
    }

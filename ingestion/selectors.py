"""Reads for pages, commands and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import CharField, Count, F, Func, Q, QuerySet

from ingestion.models import ItemOutcome, Job, JobSeen, JobStatus, RawPayload, RunItem, Source
from project import paging
from runs.models import IngestionRun


def sources_for_owner(owner: User) -> QuerySet[Source]:
    return Source.objects.filter(owner=owner).annotate(job_count=Count("jobs"))


def outcome_counts(run: IngestionRun) -> dict[str, int]:
    """Items of the run per outcome (every outcome present, zero when none)."""
    counts = dict.fromkeys(ItemOutcome.values, 0)
    for row in RunItem.objects.filter(run=run).values("outcome").annotate(n=Count("id")):
        counts[row["outcome"]] = row["n"]
    return counts


def outcome_counts_by_source(run: IngestionRun) -> dict[int | None, dict[str, int]]:
    result: dict[int | None, dict[str, int]] = {}
    rows = RunItem.objects.filter(run=run).values("source_id", "outcome").annotate(n=Count("id"))
    for row in rows:
        per = result.setdefault(row["source_id"], dict.fromkeys(ItemOutcome.values, 0))
        per[row["outcome"]] = row["n"]
    return result


def failed_job_count(run: IngestionRun) -> int:
    """Jobs that ended in error in this run (what "Retry failed" would retry)."""
    return Job.objects.filter(owner_id=run.owner_id, last_run=run, status=JobStatus.ERROR).count()


def pending_job_count(run: IngestionRun) -> int:
    """Jobs this run wrote and did not process (aborted or failed first): what "Resume"
    would process."""
    return Job.objects.filter(owner_id=run.owner_id, last_run=run, status=JobStatus.PENDING).count()


# --- Jobs -----------------------------------------------------------------------------------

# What the jobs list shows: never the descriptions, which are most of a row's bytes.
JOB_LIST_FIELDS = (
    "id",
    "title",
    "company",
    "location",
    "remote",
    "workplace_type",
    "status",
    "posted_at",
    "last_seen_at",
)
# Search words beyond this many are ignored: each is one more LIKE per row.
MAX_SEARCH_WORDS = 6


class Spaced(Func):
    """Its arguments joined by spaces, with `||` (the same SQL on PostgreSQL and SQLite)."""

    arg_joiner = " || ' ' || "
    template = "(%(expressions)s)"
    output_field = CharField()


# What the jobs list's search and the admin's search look in: one text, so one LIKE per word,
# which a trigram index on PostgreSQL answers (migration 0011 spells the same SQL): a rare
# word's few jobs without walking the owner's until a page fills (a million rows when none
# matches). One condition, not an OR per column, also lets the planner estimate a common
# word's share from that index's statistics and walk the list's order instead.
SEARCH_TEXT = Spaced(F("title"), F("company"), F("location"), F("external_id"))
# A trigram index has nothing to look up for a shorter word.
MIN_INDEXED_WORD = 3


def with_search_words(jobs: QuerySet[Job], words: list[str]) -> QuerySet[Job]:
    """`jobs` whose SEARCH_TEXT holds every one of `words` (case-insensitive)."""
    if not words:
        return jobs
    jobs = jobs.alias(search_text=SEARCH_TEXT)
    for word in words:
        jobs = jobs.filter(search_text__icontains=word)
    return jobs


def jobs_for_owner(
    owner: User,
    *,
    q: str = "",
    company: str = "",
    status: str = "",
    remote: str = "",
    location: str = "",
    posted_after: datetime | None = None,
    posted_before: datetime | None = None,
    source: int | None = None,
    run: IngestionRun | None = None,
) -> QuerySet[Job]:
    """The owner's jobs narrowed by the list's filters (unordered: `jobs_page` orders them).

    `q`: every word in the title, company, location or external id (case-insensitive).
    `remote`: "remote", "hybrid" or "onsite", by the normalized workplace type, else the
    board's remote flag.
    `posted_after` inclusive, `posted_before` exclusive. `run`: the jobs it touched last."""
    # Without their last-seen stamps: the pages read those for the rows they show
    # (with_seen), since PostgreSQL evaluates an annotation's subquery for every row it reads
    # before the LIMIT, the OFFSET's too (9,500 for page 190) and a sort's input.
    jobs = with_search_words(Job.objects.filter(owner=owner), q.split()[:MAX_SEARCH_WORDS])
    if company:
        jobs = jobs.filter(company=company)
    if status:
        jobs = jobs.filter(status=status)
    if remote:
        # As normalize.effective_workplace reads a job: its type, else the board's flag.
        wanted = Q(workplace_type=remote)
        flag = {"remote": True, "onsite": False}.get(remote)
        if flag is not None:
            wanted |= Q(workplace_type="", remote=flag)
        jobs = jobs.filter(wanted)
    if location:
        jobs = jobs.filter(location__icontains=location)
        if len(location) >= MIN_INDEXED_WORD:
            # Met by every job in the location: its rare values' jobs by the trigram index.
            jobs = with_search_words(jobs, [location])
    if posted_after is not None:
        jobs = jobs.filter(posted_at__gte=posted_after)
    if posted_before is not None:
        jobs = jobs.filter(posted_at__lt=posted_before)
    if source is not None:
        jobs = jobs.filter(source_id=source)
    if run is not None:
        jobs = jobs.filter(last_run=run)
    return jobs.only(*JOB_LIST_FIELDS).order_by()


def with_seen(jobs: list[Job]) -> list[Job]:
    """`jobs` with their `last_seen` (Job.seen_at), as `Job.objects.with_last_seen()` gives
    it, read in one query for these jobs only."""
    stamps = dict(
        JobSeen.objects.filter(job_id__in=[job.pk for job in jobs]).values_list(
            "job_id", "last_seen_at"
        )
    )
    for job in jobs:
        stamp = stamps.get(job.pk)
        job.last_seen = max(job.last_seen_at, stamp) if stamp else job.last_seen_at  # type: ignore[attr-defined]
    return jobs


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    number: int
    per_page: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def next_number(self) -> int:
        return self.number + 1

    @property
    def previous_number(self) -> int:
        return self.number - 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.jobs else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.jobs)


def jobs_page(jobs: QuerySet[Job], *, number: int, per_page: int) -> JobPage:
    """One page of `jobs`, newest posting first (then newest id), undated postings last.

    No COUNT(*): a page reads per_page + 1 rows, the extra one only saying whether there is a
    next page, so page 1 of 100,000 jobs reads 51 index entries, not 100,000.

    Dated and undated jobs are read in two passes. One `ORDER BY posted_at DESC NULLS LAST`
    would need an index declared NULLS LAST on PostgreSQL (its DESC puts NULLs first) that
    SQLite cannot declare; each pass here is an index-ordered read on both. The second pass
    runs only on the page where the dated jobs end, and the count of dated jobs only on a
    page entirely past them (it is known otherwise)."""
    offset = (number - 1) * per_page
    wanted = per_page + 1
    dated = jobs.filter(posted_at__isnull=False)
    rows = list(dated.order_by("-posted_at", "-id")[offset : offset + wanted])
    if len(rows) < wanted:
        # Where the dated jobs end: known unless this page starts past them.
        dated_total = offset + len(rows) if rows or offset == 0 else dated.count()
        start = offset + len(rows) - dated_total
        undated = jobs.filter(posted_at__isnull=True).order_by("-id")
        rows += undated[start : start + wanted - len(rows)]
    return JobPage(
        jobs=with_seen(rows[:per_page]),
        number=number,
        per_page=per_page,
        has_next=len(rows) > per_page,
    )


def jobs_after(
    jobs: QuerySet[Job], *, after: tuple[datetime | None, int] | None, limit: int
) -> list[Job]:
    """Up to `limit` of `jobs` in jobs_page's order after the job keyed `after` (its
    posted_at and id; None: from the start). A keyset read for the API's cursors: each pass
    is an index range, whatever the depth, and a job added meanwhile neither repeats nor
    skips one. As in jobs_page, dated and undated jobs are read in two passes."""
    rows: list[Job] = []
    if after is None or after[0] is not None:
        dated = jobs.filter(posted_at__isnull=False)
        if after is not None:
            posted, last_id = after
            dated = dated.filter(Q(posted_at__lt=posted) | Q(posted_at=posted, id__lt=last_id))
        rows = list(dated.order_by("-posted_at", "-id")[:limit])
    if len(rows) < limit:
        undated = jobs.filter(posted_at__isnull=True)
        if after is not None and after[0] is None:
            undated = undated.filter(id__lt=after[1])
        rows += undated.order_by("-id")[: limit - len(rows)]
    return with_seen(rows)


def jobs_total(jobs: QuerySet[Job], page: JobPage, *, cap: int) -> tuple[int, bool]:
    """How many jobs match, for the list's "of 1,234", and whether that is only a lower bound:
    exact from the page itself when it is the last one, else counted up to `cap` (a count
    over a LIMIT subquery, so it reads at most `cap` + 1 index entries however many jobs
    there are); past `cap`: (cap, True)."""
    if page.jobs and not page.has_next:
        return page.end_index, False
    counted = jobs.order_by()[: cap + 1].count()
    return (cap, True) if counted > cap else (counted, False)


def estimated_count(jobs: QuerySet[Job]) -> int | None:
    """The planner's estimate of how many jobs `jobs` holds (PostgreSQL; None elsewhere)."""
    return paging.estimated_rows(jobs)


# "about 1,000,000": an estimate to two significant figures, as the admin's lists say it.
about = paging.about


def job_companies(owner: User) -> list[str]:
    """The owner's distinct job companies, in order, for the list's filter.

    A loose index scan: one probe of ingestion_job_company_posted per company ("the least
    company after the last one"), so 250 companies cost 250 index lookups, not a read of all
    100,000 rows that a plain DISTINCT makes on PostgreSQL (a sequential scan there). The same
    SQL runs on SQLite."""
    table = connection.ops.quote_name(Job._meta.db_table)
    sql = f"""
        WITH RECURSIVE companies(name) AS (
            SELECT MIN(company) FROM {table} WHERE owner_id = %s
            UNION ALL
            SELECT (SELECT MIN(company) FROM {table} WHERE owner_id = %s AND company > name)
            FROM companies WHERE name IS NOT NULL
        )
        SELECT name FROM companies WHERE name IS NOT NULL
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [owner.pk, owner.pk])
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class DuplicateGroup:
    canonical: Job | None
    # The canonical's near-duplicates (skipped, duplicate_of = canonical), earliest seen first.
    duplicates: list[Job]
    # More duplicates than shown.
    truncated: bool

    @property
    def size(self) -> int:
        return len(self.duplicates) + (1 if self.canonical else 0)


DUPLICATE_GROUP_LIMIT = 50
_GROUP_FIELDS = ("id", "title", "company", "location", "status", "posted_at", "first_seen_at")


def duplicate_group(job: Job, *, limit: int = DUPLICATE_GROUP_LIMIT) -> DuplicateGroup:
    """The near-duplicate group `job` belongs to: its canonical job (itself, or the job it
    duplicates) and the jobs that duplicate that canonical, at most `limit` of them.

    The pipeline points every duplicate at a canonical that is not itself a duplicate, so one
    level is the whole group. Scoped to the job's owner, whatever the foreign keys say."""
    canonical: Job | None = job
    if job.duplicate_of_id is not None:
        canonical = (
            Job.objects.filter(pk=job.duplicate_of_id, owner_id=job.owner_id)
            .only(*_GROUP_FIELDS)
            .first()
        )
    canonical_id = canonical.pk if canonical else job.duplicate_of_id
    rows = list(
        Job.objects.filter(owner_id=job.owner_id, duplicate_of_id=canonical_id)
        .only(*_GROUP_FIELDS)
        .order_by("first_seen_at", "id")[: limit + 1]
    )
    return DuplicateGroup(canonical=canonical, duplicates=rows[:limit], truncated=len(rows) > limit)


# --- Operators' counts (/metrics) -----------------------------------------------------------


def fetch_errors_by_kind(*, since: datetime) -> dict[str, int]:
    """Fetches (after their tries) that failed since `since`, per source kind ("" when the
    fetch had no source), from the RawPayload each fetch leaves: the created_at index bounds
    the rows read to that window."""
    rows = (
        RawPayload.objects.filter(created_at__gte=since)
        .exclude(error="")
        .values("source__kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["source__kind"] or "": row["n"] for row in rows}


def failing_sources_by_kind() -> dict[str, int]:
    """Sources whose last listing failed, per kind."""
    rows = (
        Source.objects.filter(last_fetch_ok=False).values("kind").annotate(n=Count("id")).order_by()
    )
    return {row["kind"]: row["n"] for row in rows}

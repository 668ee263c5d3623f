"""Jobs: a searchable, filterable list (fast on 100,000 jobs) and a job's page."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from ingestion import selectors
from ingestion.adapters import registry
from ingestion.models import Job, JobStatus, Source
from ingestion.normalize.workplace import WORKPLACE_LABELS
from ingestion.views.common import HtmxHttpRequest, get_job_for_user, owner_of
from project.params import Params
from runs.models import IngestionRun

PAGE_SIZE = 50
# The jobs list counts its matches up to here, then says "more than 10,000" (or the
# planner's estimate, "about 1,000,000": _total_text).
TOTAL_CAP = 10_000
ESTIMATE_TRUSTED = 3 * TOTAL_CAP
# Workplaces filtered as "this type, or no type and the board's remote flag" (jobs_for_owner):
# the planner estimates that OR as if the two columns were unrelated.
ESTIMATE_OFF = ("remote", "onsite")

# The rows show a job's workplace in the same words (the `workplace` filter of intake's tags).
REMOTE_CHOICES = [("", "Any workplace"), *WORKPLACE_LABELS.items()]
POSTED_CHOICES = [
    ("", "Any time"),
    ("1", "Last 24 hours"),
    ("7", "Last 7 days"),
    ("30", "Last 30 days"),
]


class JobFilters:
    """The list's query string, read strictly (project/params.py); the template writes the
    form out itself. Kept beside its only view. An invalid value (a mistyped date, an unknown
    status, a page past the last possible one) drops that filter, not the page, and the page
    says which and why (`ignored`)."""

    TEXT_FIELDS = ("q", "company", "location")

    def __init__(self, data: QueryDict) -> None:
        params = Params(data, strict=False)
        self.values: dict[str, Any] = {
            "q": params.text("q"),
            "company": params.text("company"),
            "status": params.choice("status", JobStatus.values),
            "remote": params.choice("remote", [value for value, _ in REMOTE_CHOICES[1:]]),
            "location": params.text("location"),
            "posted": params.choice("posted", [value for value, _ in POSTED_CHOICES[1:]]),
            "posted_from": params.day("posted_from"),
            "posted_to": params.day("posted_to"),
            "source": params.object_id("source"),
            "run": params.object_id("run"),
            "page": params.page(),
        }
        self.ignored = params.ignored

    def current(self) -> dict[str, str]:
        """Each valid filter as its query-string value, for the form to show what applies."""
        current = {}
        for name, value in self.values.items():
            current[name] = value.isoformat() if isinstance(value, date) else str(value or "")
        current["page"] = "" if self.values["page"] == 1 else current["page"]
        return current

    def value(self, name: str) -> Any:
        return self.values[name]

    def is_filtered(self) -> bool:
        return any(value for name, value in self.values.items() if name not in ("page", "run"))

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for selectors.jobs_for_owner (all but the run)."""
        posted_after = posted_before = None
        if days := self.value("posted"):
            posted_after = timezone.now() - timedelta(days=int(days))
        if day := self.value("posted_from"):
            start = _start_of(day)
            posted_after = max(posted_after, start) if posted_after else start
        if day := self.value("posted_to"):
            posted_before = _start_of(day + timedelta(days=1))
        return {
            "q": self.value("q"),
            "company": self.value("company"),
            "status": self.value("status"),
            "remote": self.value("remote"),
            "location": self.value("location").strip(),
            "posted_after": posted_after,
            "posted_before": posted_before,
            "source": self.value("source"),
        }


def _start_of(day: date) -> datetime:
    """Midnight starting `day` in the site's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


@login_required
@require_GET
def job_list(request: HtmxHttpRequest) -> HttpResponse:
    owner = owner_of(request)
    form = JobFilters(request.GET)

    run = None
    if run_id := form.value("run"):
        # A run that is not the user's is a 404, as on its own page.
        run = IngestionRun.objects.filter(pk=run_id, owner=owner).first()
        if run is None:
            raise Http404("No such run.")

    jobs = selectors.jobs_for_owner(owner, run=run, **form.filters())
    page = selectors.jobs_page(jobs, number=form.value("page"), per_page=PAGE_SIZE)
    context: dict[str, Any] = {
        "page": page,
        "total_text": _total_text(jobs, page, either_or=form.value("remote") in ESTIMATE_OFF),
        "run": run,
        "filtered": form.is_filtered(),
        "current": form.current(),
        "ignored": form.ignored,
    }

    # htmx's history restore (the back button after a swap) asks for the whole page.
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "ingestion/jobs.html#job-results", context)
    else:
        # The selects are written out in the template: Django's widgets render each <option>
        # through an include, a third of the page's time with a few hundred companies.
        context |= {
            "companies": selectors.job_companies(owner),
            "sources": Source.objects.filter(owner=owner).only("id", "company", "kind"),
            "statuses": JobStatus.choices,
            "workplaces": REMOTE_CHOICES[1:],
            "posted_choices": POSTED_CHOICES[1:],
        }
        response = render(request, "ingestion/jobs.html", context)
    # The same URL answers a fragment or a page: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def _total_text(jobs: QuerySet[Job], page: selectors.JobPage, *, either_or: bool = False) -> str:
    """ "1,234", "more than 10,000" or "about 1,000,000".

    Counting up to the cap reads cap ÷ (the share of jobs matching) rows: 50,000 of a
    million for a word one job in five holds. The planner's estimate costs a plan, and is
    close for one filter (a search word's share comes from the trigram index's statistics);
    for several it multiplies their shares, which undercounts related ones, the safe way.
    From three times the cap it is the total shown and nothing is counted.

    `either_or`: a filter of two alternatives over correlated columns (ESTIMATE_OFF), whose
    estimate can be hundreds of times the truth (about 390,000 for 1,000 on-site jobs of a
    million) and whose count would walk every job where few match: on PostgreSQL the total
    says only what the page shows, "more than 50"."""
    estimate = None
    if page.has_next and either_or and connection.vendor == "postgresql":
        return f"more than {page.end_index:,}"
    if page.has_next:
        estimate = selectors.estimated_count(jobs)
        if estimate is not None and estimate >= ESTIMATE_TRUSTED:
            return selectors.about(estimate)
    total, more = selectors.jobs_total(jobs, page, cap=TOTAL_CAP)
    if not more:
        return f"{total:,}"
    return (
        selectors.about(estimate) if estimate and estimate > TOTAL_CAP else f"more than {total:,}"
    )


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request, job_id)
    group = selectors.duplicate_group(job)
    context = {
        "job": job,
        "source": job.source,
        "posting_link_text": _posting_link_text(job.source),
        "group": group,
        "salary": _salary(job),
    }
    return render(request, "ingestion/job_detail.html", context)


def _posting_link_text(source: Source | None) -> str:
    """The words of the link to a job's own page. An uploaded file or URL list is not a site
    the posting is "on": its URL is the posting's own page, and says so."""
    if source is None or registry.reads_upload(source.kind):
        return "Open the posting ↗"
    return f"Open on {source.get_kind_display()} ↗"


def _amount(value: Decimal) -> str:
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"


def _salary(job: Job) -> str:
    """ "USD 120,000–150,000 per year" from the parsed fields, else the salary as written."""
    low, high = job.salary_min, job.salary_max
    if low is None and high is None:
        return job.salary_text
    if low is not None and high is not None and low != high:
        amount = f"{_amount(low)}–{_amount(high)}"
    elif low is not None:
        amount = _amount(low) if high is not None else f"from {_amount(low)}"
    else:
        assert high is not None
        amount = f"up to {_amount(high)}"
    parts = [job.salary_currency, amount]
    if job.salary_period:
        parts.append(f"per {job.salary_period}")
    return " ".join(p for p in parts if p)

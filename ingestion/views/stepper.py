"""The stepper's run steps: Preview (a dry run, live, then its diff) and Ingest (the run, live,
then its summary), the items table, retry failed, and home (resume the active run)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from ingestion import run_kinds, selectors, services, vocabulary
from ingestion.models import ItemOutcome, JobStatus, RunItem, Source
from ingestion.views.common import HtmxHttpRequest, get_run_for_user, owner_of
from project.params import Params
from runs import stale
from runs.exceptions import RunError, RunInProgress
from runs.models import IngestionRun
from runs.numbers import counted

ITEMS_PER_PAGE = 50
FEED_PAGE_EVENTS = 2000  # the live view keeps as many (run-live.js FEED_MAX)


def step_url(run: IngestionRun) -> str:
    """Where a run is shown: its stepper step, or the generic run page for other kinds."""
    if run.kind == run_kinds.PREVIEW:
        return reverse("ingestion:preview", args=[run.pk])
    if run.kind == run_kinds.INGEST:
        return reverse("ingestion:ingest", args=[run.pk])
    return reverse("runs:detail", args=[run.pk])


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The stepper's entry: the active run's step if one is in progress, else Configure."""
    active = stale.run_active_for_owner(owner_of(request))
    if active is not None:
        return redirect(step_url(active))
    return redirect("ingestion:configure")


def _refuse(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A run that could not start: show the active run instead of an error page, or say why
    on the page the user came from."""
    if isinstance(exc, RunInProgress):
        messages.info(request, str(exc))
        return redirect(step_url(exc.active_run))
    messages.error(request, str(exc))
    back = request.POST.get("back", "")
    # Only a path on this site: "//host" and "/\\host" are other sites to a browser.
    if not back.startswith("/") or not url_has_allowed_host_and_scheme(back, allowed_hosts=None):
        back = reverse("ingestion:configure")
    return redirect(back)


@login_required
@require_POST
def preview_start(request: HttpRequest) -> HttpResponse:
    params = Params(request.POST, strict=True)
    try:
        run = services.preview_start(
            owner=owner_of(request),
            source_ids=params.ids("source"),
            idempotency_key=_idempotency_key(params),
        )
    except ValueError as exc:  # SourceError, or a ParamError
        return _refuse(request, exc)
    except RunError as exc:
        return _refuse(request, exc)
    return redirect("ingestion:preview", run_id=run.pk)


@login_required
@require_POST
def ingest_start(request: HttpRequest) -> HttpResponse:
    owner = owner_of(request)
    params = Params(request.POST, strict=True)
    try:
        preview_id = params.object_id("preview")
        if preview_id:
            preview = get_run_for_user(request, preview_id)
            run = services.ingest_start(
                owner=owner, preview=preview, idempotency_key=_idempotency_key(params)
            )
        else:
            ids = params.ids("source")
            run = services.ingest_start(owner=owner, source_ids=ids or None)
    except ValueError as exc:  # SourceError, or a ParamError
        return _refuse(request, exc)
    except RunError as exc:
        return _refuse(request, exc)
    return redirect("ingestion:ingest", run_id=run.pk)


def _idempotency_key(params: Params) -> str | None:
    # At most what the column holds (PostgreSQL refuses a longer one).
    return params.text("idempotency_key", max_length=255) or None


@login_required
@require_POST
def retry_failed(request: HttpRequest, run_id: int) -> HttpResponse:
    return _follow_up(request, run_id, services.ingest_retry_failed)


@login_required
@require_POST
def resume(request: HttpRequest, run_id: int) -> HttpResponse:
    return _follow_up(request, run_id, services.ingest_resume)


def _follow_up(
    request: HttpRequest, run_id: int, start: Callable[..., IngestionRun]
) -> HttpResponse:
    """Start an ingest that carries on from an ended one (retry its failed jobs, resume its
    pending ones) and show it, or say on the page why it cannot start."""
    run = get_run_for_user(request, run_id)
    try:
        follow_up = start(owner=owner_of(request), run=run)
    except (services.SourceError, RunError) as exc:
        return _refuse(request, exc)
    return redirect("ingestion:ingest", run_id=follow_up.pk)


@login_required
@require_GET
def preview_page(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request, run_id)
    if run.kind != run_kinds.PREVIEW:
        return redirect(step_url(run))
    return _run_step(request, run, step="preview")


@login_required
@require_GET
def ingest_page(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_run_for_user(request, run_id)
    if run.kind != run_kinds.INGEST:
        return redirect(step_url(run))
    return _run_step(request, run, step="ingest")


def _run_step(request: HtmxHttpRequest, run: IngestionRun, *, step: str) -> HttpResponse:
    stale.run_end_if_stale(run)
    listing = vocabulary.listing_rows(run)
    context = {
        "run": run,
        "step": step,
        "preview_run": run if step == "preview" else run.preview,
        "ingest_run": run if step == "ingest" else None,
        "counters": vocabulary.run_counters(run, request.path),
        "listing": listing,
        "listing_open": any(row.state in vocabulary.OPEN_LISTING_STATES for row in listing),
        "listing_states": vocabulary.LISTING_STATES,
        **_results_context(request, run),
    }
    if request.htmx and request.htmx.target == "run-results":
        return render(request, "ingestion/run_step.html#results", context)
    if request.htmx and request.htmx.target == "run-items" and run.is_terminal:
        return render(request, "ingestion/run_step.html#items", context)
    events = list(reversed(run.events.order_by("-id")[:FEED_PAGE_EVENTS]))
    context.update(
        {
            "events": events,
            "last_event_id": events[-1].pk if events else 0,
            "last_event_seq": events[-1].seq if events else 0,
            "stream_url": reverse("runs:stream", args=[run.pk]),
            "events_url": reverse("runs:events", args=[run.pk]),
        }
    )
    return render(request, "ingestion/run_step.html", context)


def _results_context(request: HttpRequest, run: IngestionRun) -> dict:
    """What the results region shows once the run ended: per-source outcome counts, the
    staleness of a preview, the items table's first page."""
    context: dict = {"outcomes": ItemOutcome.choices}
    if not run.is_terminal:
        return context
    per_source = selectors.outcome_counts_by_source(run)
    sources = []
    for entry in run.summary.get("sources", []):
        counts = per_source.get(entry.get("sourceId"), {})
        sources.append({**entry, "cells": [counts.get(v, 0) for v in ItemOutcome.values]})
    context["sources"] = sources
    totals = selectors.outcome_counts(run)
    context["totals"] = [totals[v] for v in ItemOutcome.values]
    context["outcomes_text"] = vocabulary.outcomes_text(totals)
    context["jobs_text"] = vocabulary.jobs_text(run.counts())
    context.update(_items_context(request, run))
    if run.kind == run_kinds.PREVIEW:
        context["staleness"] = preview_staleness(run)
        context["ingests"] = list(run.ingests.order_by("-id")[:5])
    if run.kind == run_kinds.INGEST:
        context.update(_ingest_actions(run, totals))
    return context


def _ingest_actions(run: IngestionRun, outcomes: dict[str, int]) -> dict:
    """What an ended ingest offers beyond its report, and why an action is not offered: Retry
    for jobs that failed, Resume for jobs an abort or failure left pending."""
    failed = selectors.failed_job_count(run) if run.jobs_failed else 0
    unretryable = outcomes[ItemOutcome.INVALID] + outcomes[ItemOutcome.ERROR]
    retry_note = ""
    if unretryable:
        # Invalid postings and unreadable ones never became jobs: nothing to process again.
        retry_note = (
            f"{counted(unretryable, 'posting')} could not be read or "
            f"{'was' if unretryable == 1 else 'were'} invalid and "
            f"{'has' if unretryable == 1 else 'have'} no job to retry — fix the source (or the "
            "file) and ingest again."
        )
    pending = 0
    if run.status in services.RESUMABLE_STATUSES:
        pending = selectors.pending_job_count(run)
    return {"failed_jobs": failed, "retry_note": retry_note, "pending_jobs": pending}


def preview_staleness(preview: IngestionRun) -> list[str]:
    """Reasons to look again before ingesting what a preview showed: it is older than
    INTAKE_PREVIEW_MAX_AGE, or its sources changed (edited or deleted) since it ran."""
    reasons = []
    if preview.finished_at:
        age = timezone.now() - preview.finished_at
        limit = timedelta(seconds=settings.INTAKE_PREVIEW_MAX_AGE)
        if age > limit:
            minutes = int(age.total_seconds() // 60)
            reasons.append(
                f"This preview is {_age_text(minutes)} old; the boards may have changed since."
            )
    ids = [entry.get("id") for entry in preview.config.get("sources", [])]
    current = {s.pk: s for s in Source.objects.filter(owner_id=preview.owner_id, pk__in=ids)}
    for entry in preview.config.get("sources", []):
        source = current.get(entry.get("id"))
        name = f"{entry.get('company')} ({entry.get('kind')})"
        if source is None:
            reasons.append(f"{name} was deleted since this preview.")
        elif source.filters() != entry.get("filters") or (
            preview.created_at and source.updated_at > preview.created_at
        ):
            reasons.append(f"{name} was changed since this preview.")
    return reasons


def _age_text(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} minutes"
    if minutes < 48 * 60:
        return f"{minutes // 60} hours"
    return f"{minutes // (24 * 60)} days"


def _items_context(request: HttpRequest, run: IngestionRun) -> dict:
    params = Params(request.GET, strict=False)
    outcome = params.choice("outcome", ItemOutcome.values)
    job_status = params.choice("status", JobStatus.values)
    source_id = params.object_id("source")
    items = RunItem.objects.filter(run=run).order_by("id")
    if outcome:
        items = items.filter(outcome=outcome)
    if job_status:
        items = items.filter(job_status=job_status)
    if source_id is not None:
        items = items.filter(source_id=source_id)
    items = items.select_related("source").only(
        "id",
        "row",
        "external_id",
        "title",
        "url",
        "outcome",
        "job_status",
        "reason",
        "job_id",
        "source__company",
        "source__kind",
    )
    page = Paginator(items, ITEMS_PER_PAGE).get_page(params.page())
    source = "" if source_id is None else str(source_id)
    return {
        "items_page": page,
        "item_filters": {"outcome": outcome, "status": job_status, "source": source},
        # Filters and pages are links to the step page itself (not this fragment's URL).
        "step_path": step_url(run),
        "job_statuses": JobStatus.choices,
        "ignored": params.ignored,
    }


@login_required
@require_GET
def run_items(request: HttpRequest, run_id: int) -> HttpResponse:
    """The items table alone (htmx: filters and pages swap it in place)."""
    run = get_run_for_user(request, run_id)
    context = {
        "run": run,
        "outcomes": ItemOutcome.choices,
        "sources": run.summary.get("sources", []),
        **_items_context(request, run),
    }
    return render(request, "ingestion/run_step.html#items", context)

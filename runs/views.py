"""Run pages, the status fragment, abort, and the live feed (SSE and its polling fallback)."""

from __future__ import annotations

import hashlib
from typing import cast

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    JsonResponse,
)
from django.http.response import HttpResponseBase
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from project import streaming
from project.params import ParamError, Params, parse_int
from runs import executors, feed, grip, selectors, services, stale, stream
from runs.exceptions import RunError, RunInProgress, RunNotActive
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


FEED_PAGE_EVENTS = 200
EVENTS_JSON_LIMIT = 500


def _owner(request: HttpRequest) -> User:
    # Every view that calls this is behind @login_required.
    return cast(User, request.user)


def _get_run_for_user(request: HttpRequest, run_id: int) -> IngestionRun:
    # Another user's run is a 404, not a 403: its existence is not theirs to know.
    return get_object_or_404(IngestionRun, pk=run_id, owner=request.user)


@login_required
@require_GET
def run_list(request: HtmxHttpRequest) -> HttpResponse:
    params = Params(request.GET, strict=False)
    status = params.choice("status", RunStatus.values)
    kind = params.choice("kind", executors.kinds())
    runs = selectors.runs_for_owner(_owner(request), status=status or None, kind=kind or None)
    page = Paginator(runs, 25).get_page(params.page())
    for run in page.object_list:
        run.page_url = _page_url(run)
        # A kind's own counters (ingestion's outcome words), the ones its page shows.
        run.counters = [
            counter
            for counter in executors.counters(run, run.kind, run.page_url) or []
            if counter.value
        ]
    context = {
        "page": page,
        "status": status,
        "kind": kind,
        "statuses": RunStatus.choices,
        "kinds": executors.kind_choices(),
        "active_run": stale.run_active_for_owner(_owner(request)),
        "ignored": params.ignored,
    }
    template = "runs/list.html#run-table" if request.htmx else "runs/list.html"
    return render(request, template, context)


@login_required
@require_POST
def run_start_diagnostic(request: HttpRequest) -> HttpResponse:
    params = Params(request.POST, strict=True)
    try:
        items = params.integer("items", 20, minimum=1, maximum=100_000, label="Items")
        delay = params.number("delay", 0.2, minimum=0, maximum=10, label="Seconds per item")
    except ParamError as exc:
        messages.error(request, str(exc))
        return redirect("runs:list")
    try:
        run = services.run_start(
            owner=_owner(request), kind=DIAGNOSTIC, config={"items": items, "delay": delay}
        )
    except RunInProgress as exc:
        # Show the run that is in progress rather than an error page.
        messages.info(request, str(exc))
        return redirect("runs:detail", run_id=exc.active_run.pk)
    except RunError as exc:
        messages.error(request, str(exc))
        return redirect("runs:list")
    return redirect("runs:detail", run_id=run.pk)


def _page_url(run: IngestionRun) -> str:
    """The page that shows this run: its app's own page when one is registered for its kind
    (runs.executors.register_page), else the generic run page."""
    name = executors.page_url_name(run.kind)
    return reverse(name or "runs:detail", kwargs={"run_id": run.pk})


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    if executors.page_url_name(run.kind):
        return redirect(_page_url(run))
    stale.run_end_if_stale(run)
    events = list(reversed(run.events.order_by("-id")[:FEED_PAGE_EVENTS]))
    context = {
        "run": run,
        "events": events,
        "last_event_id": events[-1].pk if events else 0,
        "last_event_seq": events[-1].seq if events else 0,
        "stream_url": reverse("runs:stream", args=[run.pk]),
        "events_url": reverse("runs:events", args=[run.pk]),
    }
    return render(request, "runs/detail.html", context)


@login_required
@require_GET
def run_status(request: HttpRequest, run_id: int) -> HttpResponseBase:
    """The status fragment, polled while the page's live feed is down. It answers 304 Not
    Modified to an If-None-Match of the fragment's current ETag (a browser revalidates on
    its own: `Cache-Control: no-cache`), so a poll of an unchanged run renders nothing."""
    return status_response(request, _get_run_for_user(request, run_id))


def status_response(request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
    """The status poll's answer for `run`, which the request's user owns: what run_status
    answers, and what runs.status_poll answers without the middleware stack."""
    stale.run_end_if_stale(run)
    return status_answer(request, run)


def status_answer(request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
    """status_response for a run known not to be stale: no read, no write (runs.status_poll
    calls it on the event loop with a run it read moments ago)."""
    etag = _status_etag(run)
    response = get_conditional_response(request, etag=etag)
    if response is None:
        html = _status_fragment(run, etag).replace(CSRF_TOKEN_SLOT, get_token(request))
        response = HttpResponse(html)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


def _status_etag(run: IngestionRun) -> str:
    """What the status fragment shows, as a validator: every field of the run's row, and the
    rate and time left that the fragment derives from the clock. (The fragment's CSRF token
    differs on every render, but a stale one stays valid: it is left out.)"""
    state = [getattr(run, field.attname) for field in run._meta.concrete_fields]
    state += [run.rate_per_second, round(run.eta_seconds or 0)]
    digest = hashlib.blake2b(repr(state).encode(), digest_size=12).hexdigest()
    return f'W/"{digest}"'


# The status fragment, rendered once per state of a run (its ETag) rather than per poll, with
# this in place of the CSRF token, which is each request's own. A plain dict: cleared when full,
# which at this size is rare enough; threads may race to render the same state, harmlessly.
_STATUS_FRAGMENTS: dict[str, str] = {}
STATUS_FRAGMENTS_MAX = 1024
CSRF_TOKEN_SLOT = "\x00csrf-token\x00"


def _status_fragment(run: IngestionRun, etag: str) -> str:
    html = _STATUS_FRAGMENTS.get(etag)
    if html is None:
        # No request: the fragment shows the run and nothing of who asks (see its template).
        context = {**_status_context(run), "csrf_token": CSRF_TOKEN_SLOT}
        html = render_to_string("runs/_live.html#run-status", context)
        if len(_STATUS_FRAGMENTS) >= STATUS_FRAGMENTS_MAX:
            _STATUS_FRAGMENTS.clear()
        _STATUS_FRAGMENTS[etag] = html
    return html


def _status_context(run: IngestionRun, **extra: object) -> dict[str, object]:
    """What the status fragment needs: the run and its kind's counters, if it has its own."""
    return {"run": run, "counters": executors.counters(run, run.kind, _page_url(run)), **extra}


@login_required
@require_POST
def run_abort(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    error = ""
    try:
        services.run_request_abort(run)
    except RunNotActive as exc:
        error = str(exc)
    if request.htmx:
        run.refresh_from_db()
        return render(
            request, "runs/_live.html#run-status", _status_context(run, abort_error=error)
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Abort requested for run #{run.pk}.")
    return redirect("runs:detail", run_id=run.pk)


@login_required
@require_GET
def run_events(request: HttpRequest, run_id: int) -> JsonResponse:
    """Events after `?after=<id>` with the run's current state: the page's fallback while
    its SSE connection is down, and a simple way for scripts to follow a run."""
    run = _get_run_for_user(request, run_id)
    stale.run_end_if_stale(run)
    try:
        after = Params(request.GET, strict=True).integer("after", 0)
    except ParamError as exc:
        return JsonResponse({"detail": f"{exc} It is an event id."}, status=400)
    rows = list(run.events.filter(id__gt=after).order_by("id")[: EVENTS_JSON_LIMIT + 1])
    return JsonResponse(
        {
            "run": run.snapshot(),
            "events": [row.envelope() for row in rows[:EVENTS_JSON_LIMIT]],
            "more": len(rows) > EVENTS_JSON_LIMIT,
        }
    )


@require_GET
async def run_stream(request: HttpRequest, run_id: int) -> HttpResponseBase:
    """The run's live feed over SSE, readable only by its owner (see `stream_response`).

    An async view with an async body: an open stream holds no thread of its own (see
    streaming.release_request_thread), only its listener on the event loop; the checks before it
    opens run in a thread, with one short-lived connection."""
    return await sync_to_async(_page_stream)(request, run_id)


def _page_stream(request: HttpRequest, run_id: int) -> HttpResponseBase:
    with feed.short_lived_connection():
        if not request.user.is_authenticated:
            return HttpResponseForbidden("Sign in to follow a run.\n", content_type="text/plain")
        owner = _owner(request)
    try:
        return stream_response(request, run_id, owner=owner)
    except ParamError as exc:
        return HttpResponseBadRequest(f"{exc}\n", content_type="text/plain")


def stream_response(request: HttpRequest, run_id: int, *, owner: User) -> HttpResponseBase:
    """The SSE response of `owner`'s run (Http404 for anyone else's): the page's stream and
    the API's events endpoint are this one stream.

    Resume: the `Last-Event-ID` header (EventSource sends it on its own reconnects, as
    `run-<id>:<event id>` or a bare event id), or `?after=<event id>` (htmx's SSE extension
    reconnects without the header), or `?lastEventId=`; ParamError for junk. With none of
    them, the stream starts with the run's latest event, so a new subscriber is correct at
    once. The stream ends after the run's terminal event; resuming after it gets 204 No
    Content. `?batch=1` asks for events that arrive together as one `batch` event (see
    stream.stream_run_events).
    """
    batched = Params(request.GET, strict=True).flag("batch")
    with feed.short_lived_connection():
        run = IngestionRun.objects.filter(pk=run_id, owner=owner).first()
        if run is None:
            raise Http404("No such run.")
        stale.run_end_if_stale(run)
        after = _resume_after(request, feed.channel_for(run.pk))
        if after == -1:
            previous = run.events.order_by("-id").values_list("id", flat=True)[1:2]
            after = previous.first() or 0
        elif run.is_terminal and not run.events.filter(id__gt=after).exists():
            # Nothing more will ever come: 204 tells EventSource to stop reconnecting.
            return HttpResponse(status=204)
    if grip.is_proxied(request):  # Pushpin holds the stream (runs/grip.py)
        return grip.hold_response(run.pk, after_id=after, user_id=owner.pk, first=True)
    # The handler attaches the writer to the connection; fan_out writes live events with it.
    writer = streaming.DirectWriter()
    response = streaming.EventStreamResponse(
        stream.stream_run_events(
            run.pk, after_id=after, user_id=owner.pk, batched=batched, writer=writer
        ),
        writer=writer,
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


@require_GET
def run_stream_grip_next(request: HttpRequest, run_id: int) -> HttpResponse:
    """Pushpin's recovery request for a stream it holds (runs/grip.py)."""
    return grip.next_response(request, run_id)


def _resume_after(request: HttpRequest, channel: str) -> int:
    """The event id to resume after, or -1 for a fresh subscriber. ParamError for junk."""
    header = request.META.get("HTTP_LAST_EVENT_ID", "")
    name = "Last-Event-ID" if header else "after" if request.GET.get("after") else "lastEventId"
    raw = (header or request.GET.get("after") or request.GET.get("lastEventId") or "").strip()
    if not raw:
        return -1
    # EventSource sends back the id it was given: `run-<id>:<event id>`, or a bare event id.
    prefix, _, number = raw.rpartition(":")
    if prefix and prefix == channel:
        raw = number
    try:
        return parse_int(raw, name=name)
    except ParamError:
        raise ParamError(
            name, f"{name} must be an event id (a whole number), not {raw[:40]!r}."
        ) from None

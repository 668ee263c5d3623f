"""Runs: start (preview or ingest), follow, abort, retry failed, resume, items, report and the
live events. Thin handlers over runs.services and ingestion.services: the same code paths as
the pages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from ninja import Header, Query, Status
from pydantic import Field

from api.auth import user_of
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor
from api.problems import Problem
from api.routing import api_router
from api.schemas import CamelSchema, ObjectId, StrictCamelSchema
from ingestion import report, run_kinds
from ingestion import services as ingestion_services
from ingestion.models import ItemOutcome, RunItem
from runs import executors, stale
from runs import services as run_services
from runs.models import IngestionRun, RunStatus
from runs.views import stream_response

router = api_router(tags=["runs"])

# --- schemas --------------------------------------------------------------------------------


class StartOptions(StrictCamelSchema):
    preview_id: ObjectId | None = Field(
        None, description="Ingest: apply this finished preview's sources and filters."
    )


class RunStart(StrictCamelSchema):
    kind: Literal["preview", "ingest"]
    sources: list[ObjectId] | None = Field(
        None,
        max_length=1000,
        description="Source ids to read; omitted: every enabled source.",
    )
    options: StartOptions = Field(default_factory=lambda: StartOptions(preview_id=None))


class RunLinks(CamelSchema):
    run_id: int
    status_url: str
    items_url: str
    report_url: str
    events_url: str


class RunAccepted(RunLinks):
    kind: str
    status: str


class RunState(CamelSchema):
    """IngestionRun.snapshot(): what every event and the report carry."""

    id: int
    kind: str
    status: str
    phase: str
    terminal: bool
    total_jobs: int
    items_done: int
    rate_per_second: float | None
    eta_seconds: float | None
    counts: dict[str, int]
    outcomes: dict[str, int]
    abort_requested: bool
    error_message: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


class RunOut(RunState):
    preview_id: int | None
    links: RunLinks


class RunList(CamelSchema):
    items: list[RunOut]
    next_cursor: str | None


class ItemOut(CamelSchema):
    id: int
    source_id: int | None
    row: int | None
    external_id: str
    title: str
    url: str
    outcome: str
    job_status: str
    job_id: int | None
    reason: str
    attempts: int


class ItemList(CamelSchema):
    items: list[ItemOut]
    next_cursor: str | None


class RunFilters(CamelSchema):
    status: RunStatus | None = None
    kind: str | None = Field(None, description="A run kind: preview, ingest, …")
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class ItemFilters(CamelSchema):
    outcome: ItemOutcome | None = None
    source: ObjectId | None = Field(None, description="Only this source's items.")
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


# --- helpers --------------------------------------------------------------------------------


def _links(run_id: int) -> dict[str, Any]:
    base = f"/api/v1/runs/{run_id}"
    return {
        "run_id": run_id,
        "status_url": base,
        "items_url": f"{base}/items",
        "report_url": f"{base}/report",
        "events_url": f"{base}/events",
    }


def _run_out(run: IngestionRun) -> dict[str, Any]:
    return {**run.snapshot(), "preview_id": run.preview_id, "links": _links(run.pk)}


def _accepted(run: IngestionRun, *, replayed: bool = False) -> HttpResponse:
    body = RunAccepted(**_links(run.pk), kind=run.kind, status=run.status)
    response = HttpResponse(body.model_dump_json(by_alias=True), status=202)
    response["Content-Type"] = "application/json"
    response["Location"] = f"/api/v1/runs/{run.pk}"
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _get_run(request: HttpRequest, run_id: int) -> IngestionRun:
    # Another user's run is a 404, not a 403: its existence is not theirs to know.
    return get_object_or_404(IngestionRun, pk=run_id, owner=user_of(request))


def _invalid(pointer: str, detail: str, *, where: str = "body") -> Problem:
    """A 422 for one field the handler itself judged."""
    return Problem(
        422,
        detail,
        kind="validation-failed",
        title="The request is not valid",
        errors=[{"in": where, "pointer": pointer, "detail": detail}],
    )


def _fingerprint(body: RunStart) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _etag(run: IngestionRun) -> str:
    # Weak: the rate and ETA are worked out from the clock at each read; everything else in
    # the body changes only when the row does.
    state = {k: v for k, v in run.snapshot().items() if k not in ("ratePerSecond", "etaSeconds")}
    digest = hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()
    return f'W/"{digest[:32]}"'


def _matches(header: str, etag: str) -> bool:
    wanted = {tag.strip() for tag in header.split(",")}
    return "*" in wanted or etag in wanted or etag.removeprefix("W/") in wanted


# --- endpoints ------------------------------------------------------------------------------

START_RESPONSES: dict[int, Any] = {202: RunAccepted, 409: None, 422: None, 429: None}


@router.post(
    "",
    response=START_RESPONSES,
    summary="Start a preview or an ingest",
    description=(
        "202 with the run and its URLs. `Idempotency-Key`: the same key returns the same run "
        "(422 when it comes with a different body). 409 names the run already in progress; "
        "429 (Retry-After) when today's run quota is used up."
    ),
)
def run_create(
    request: HttpRequest,
    body: RunStart,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255),
) -> HttpResponse:
    owner = user_of(request)
    fingerprint = _fingerprint(body) if idempotency_key else ""
    key = idempotency_key.strip() if idempotency_key else None
    known = key and IngestionRun.objects.filter(owner=owner, idempotency_key=key).exists()
    if body.kind == run_kinds.PREVIEW:
        if body.options.preview_id is not None:
            raise Problem(
                422,
                "options.previewId is for an ingest; a preview reads the sources.",
                kind="validation-failed",
                errors=[
                    {"in": "body", "pointer": "#/options/previewId", "detail": "Not for a preview."}
                ],
            )
        run = ingestion_services.preview_start(
            owner=owner,
            source_ids=body.sources,
            idempotency_key=key,
            request_fingerprint=fingerprint,
        )
    else:
        preview = None
        if body.options.preview_id is not None and body.sources is not None:
            raise _invalid(
                "#/sources", "An ingest of a preview reads the preview's sources; give one."
            )
        if body.options.preview_id is not None:
            preview = IngestionRun.objects.filter(pk=body.options.preview_id, owner=owner).first()
            if preview is None:
                raise Problem(
                    422,
                    f"No such preview: #{body.options.preview_id}.",
                    kind="validation-failed",
                    errors=[
                        {
                            "in": "body",
                            "pointer": "#/options/previewId",
                            "detail": "No such preview.",
                        }
                    ],
                )
        run = ingestion_services.ingest_start(
            owner=owner,
            source_ids=None if preview else body.sources,
            preview=preview,
            idempotency_key=key,
            request_fingerprint=fingerprint,
        )
    return _accepted(run, replayed=bool(known))


@router.get("/current", response=RunOut | None, summary="The active run, or null")
def run_current(request: HttpRequest) -> Any:
    run = stale.run_active_for_owner(user_of(request))
    return _run_out(run) if run else None


@router.get("", response=RunList, summary="Runs, newest first")
def run_list(request: HttpRequest, filters: Query[RunFilters]) -> Any:
    if filters.kind and filters.kind not in executors.kinds():
        known = ", ".join(executors.kinds())
        raise _invalid(
            "#/kind", f"Unknown run kind {filters.kind!r}; expected one of {known}.", where="query"
        )
    runs = IngestionRun.objects.filter(owner=user_of(request))
    if filters.status:
        runs = runs.filter(status=filters.status)
    if filters.kind:
        runs = runs.filter(kind=filters.kind)
    after = decode_cursor(filters.cursor, fields={"createdAt": str, "id": int})
    if after:
        created = _cursor_time(after["createdAt"])
        runs = runs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=after["id"]))
    rows = list(runs.order_by("-created_at", "-id")[: filters.limit + 1])
    page = Page.read(
        rows,
        filters.limit,
        key=lambda run: {"createdAt": run.created_at.isoformat(), "id": run.pk},
    )
    return {"items": [_run_out(run) for run in page.rows], "next_cursor": page.next_cursor}


def _cursor_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Problem(400, "The cursor is not one this API handed out.", kind="bad-cursor")
    return parsed


@router.get(
    "/{int:run_id}",
    response={200: RunOut, 304: None, 404: None},
    summary="A run's status, counts and timestamps",
    description="Cheap to poll: one indexed read. Send If-None-Match with the ETag: 304.",
)
def run_detail(request: HttpRequest, run_id: int) -> Any:
    # Most polls with a token are answered before they get here: api.run_poll.
    return run_state_response(request, _get_run(request, run_id))


def run_state_response(request: HttpRequest, run: IngestionRun) -> HttpResponse:
    """GET /runs/{id}'s answer for `run`, which the request's user owns (it ends the run if
    it is stale)."""
    stale.run_end_if_stale(run)
    return run_state_answer(request, run)


def run_state_answer(request: HttpRequest, run: IngestionRun) -> HttpResponse:
    """run_state_response for a run known not to be stale: no read, no write (api.run_poll
    calls it on the event loop with a run it read moments ago)."""
    etag = _etag(run)
    if _matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(
            RunOut.model_validate(_run_out(run)).model_dump_json(by_alias=True),
            content_type="application/json",
        )
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


@router.post(
    "/{int:run_id}/abort",
    response={202: RunOut, 404: None, 409: None},
    summary="Abort a run (202; 409 once it has ended)",
)
def run_abort(request: HttpRequest, run_id: int) -> Any:
    run = _get_run(request, run_id)
    if run.is_terminal:
        raise Problem(
            409,
            f"Run #{run.pk} is already {run.status}; only a pending or running run can be aborted.",
            kind="run-not-active",
        )
    run_services.run_request_abort(run)
    run.refresh_from_db()
    return Status(202, _run_out(run))


def _follow_up(
    request: HttpRequest, run_id: int, start: Callable[..., IngestionRun]
) -> HttpResponse:
    run = _get_run(request, run_id)
    return _accepted(start(owner=user_of(request), run=run))


@router.post(
    "/{int:run_id}/retry-failed",
    response=START_RESPONSES | {404: None},
    summary="A new ingest over the jobs that failed in this one",
)
def run_retry_failed(request: HttpRequest, run_id: int) -> HttpResponse:
    return _follow_up(request, run_id, ingestion_services.ingest_retry_failed)


@router.post(
    "/{int:run_id}/resume",
    response=START_RESPONSES | {404: None},
    summary="A new ingest over the jobs an aborted or failed ingest left pending",
)
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    return _follow_up(request, run_id, ingestion_services.ingest_resume)


@router.get(
    "/{int:run_id}/items",
    response={200: ItemList, 404: None},
    summary="Per-item outcome and reason, in order",
)
def run_items(request: HttpRequest, run_id: int, filters: Query[ItemFilters]) -> Any:
    run = _get_run(request, run_id)
    items = RunItem.objects.filter(run=run)
    if filters.outcome:
        items = items.filter(outcome=filters.outcome)
    if filters.source is not None:
        items = items.filter(source_id=filters.source)
    after = decode_cursor(filters.cursor, fields={"id": int})
    if after:
        items = items.filter(id__gt=after["id"])
    rows = list(items.order_by("id")[: filters.limit + 1])
    page = Page.read(rows, filters.limit, key=lambda item: {"id": item.pk})
    return {"items": page.rows, "next_cursor": page.next_cursor}


@router.get(
    "/{int:run_id}/report",
    response={200: dict[str, Any], 404: None, 406: None, 409: None},
    summary="The run's report: JSON, or CSV with Accept: text/csv (409 until it has ended)",
    openapi_extra={
        "responses": {
            200: {
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/csv": {"schema": {"type": "string"}},
                }
            }
        }
    },
)
def run_report(request: HttpRequest, run_id: int) -> Any:
    run = _get_run(request, run_id)
    wanted = _report_type(request.headers.get("Accept", ""))
    if not run.is_terminal:
        raise Problem(
            409,
            f"Run #{run.pk} is still {run.status}; its report is ready once it has ended.",
            kind="run-not-terminal",
        )
    if wanted == "text/csv":
        response = StreamingHttpResponse(
            report.report_csv_stream(run), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-items.csv"'
        return response
    return report.report_summary(run)


def _report_type(accept: str) -> str:
    """application/json or text/csv, whichever the Accept header prefers (JSON when it
    says nothing); a 406 problem when it takes neither."""
    best, best_q = "", 0.0
    for part in accept.split(",") if accept.strip() else ["*/*"]:
        media, *params = (p.strip().lower() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for offered in ("application/json", "text/csv"):
            # Strictly better only: ties go to the earlier entry, then to JSON.
            if media in (offered, offered.split("/")[0] + "/*", "*/*") and q > best_q:
                best, best_q = offered, q
    if not best:
        raise Problem(
            406,
            "The report is application/json or text/csv; the Accept header takes neither.",
            kind="not-acceptable",
        )
    return best


@router.get(
    "/{int:run_id}/events",
    response={200: None, 204: None, 404: None},
    summary="The run's live events (Server-Sent Events), as the run page follows them",
    description=(
        "`text/event-stream`; each event's data is the JSON envelope of a run event with the "
        "run's state. Resume with `Last-Event-ID`. Ends after the run's terminal event; 204 "
        "once there is nothing more to send. With `?batch=1`, events that arrive together (a "
        "burst of per-item events, a replay) come as one `batch` event whose data is the JSON "
        "array of their envelopes, its id the last one's."
    ),
    openapi_extra={
        "responses": {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}}
    },
)
def run_events(request: HttpRequest, run_id: int) -> HttpResponseBase:
    return stream_response(request, run_id, owner=user_of(request))

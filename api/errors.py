"""Every exception that reaches the API becomes a problem (RFC 9457): the services' refusals,
ninja's validation and parse errors, and anything unforeseen (500, logged, no traceback).
The database or Redis being unreachable is a 503 with Retry-After: the client should wait and
try again, nothing is wrong with its request."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from api.auth import unauthorized
from api.problems import Problem, problem_response
from ingestion.quota import QuotaExceeded
from ingestion.services import SourceError
from project.params import ParamError
from runs.exceptions import IdempotencyMismatch, RunError, RunInProgress, RunNotActive

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait when the database or Redis is unreachable.
OUTAGE_RETRY_AFTER = 5
OUTAGES: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)


class UnsupportedMediaType(Exception):
    """A body the API cannot read (not JSON where JSON is expected)."""


class MalformedBody(ValueError):
    """A body that is JSON but not the object every endpoint reads."""


def run_in_progress(exc: RunInProgress) -> Problem:
    active = exc.active_run
    return Problem(
        409,
        str(exc),
        kind="run-in-progress",
        extra={"activeRunId": active.pk, "activeRunUrl": f"/api/v1/runs/{active.pk}"},
    )


def quota_exceeded(exc: QuotaExceeded) -> Problem:
    from django.utils import timezone

    wait = max(1, int((exc.resets_at - timezone.now()).total_seconds()) + 1)
    return Problem(
        429,
        str(exc),
        kind="quota-exceeded",
        extra={"quota": exc.quota, "resetsAt": exc.resets_at.isoformat()},
        headers={"Retry-After": str(wait)},
    )


def field_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """ninja's validation errors as RFC 9457 `errors`: a JSON pointer into the part of the
    request that was wrong (`#/sources/0` of the body, `#/status` of the query) and why."""
    found = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where, path = (loc[0], loc[1:]) if loc else ("body", [])
        if where == "body" and path[:1] == ["body"]:
            # ninja puts the handler's argument name first; every handler calls it `body`.
            path = path[1:]
        found.append(
            {
                "in": where,
                "pointer": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path),
                "detail": str(error.get("msg", "Invalid value.")),
            }
        )
    return found


def problem_for(exc: BaseException) -> Problem:
    """The problem an exception is to the client."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ValidationError):
        errors = field_errors(exc.errors)
        first = errors[0] if errors else {"pointer": "#/", "detail": "Invalid request."}
        return Problem(
            422,
            f"{first['pointer'][2:] or 'The request'}: {first['detail']}",
            kind="validation-failed",
            title="The request is not valid",
            errors=errors,
        )
    if isinstance(exc, AuthenticationError):
        return unauthorized("Authentication required: send `Authorization: Bearer <token>`.")
    if isinstance(exc, HttpError):
        cause = exc.__cause__
        if isinstance(cause, RequestDataTooBig):
            return Problem(413, "The request body is too large.", kind="payload-too-large")
        if isinstance(cause, UnsupportedMediaType):
            return Problem(415, str(cause), kind="unsupported-media-type")
        if exc.status_code == 400:
            detail = (
                str(cause) if isinstance(cause, MalformedBody) else "The body is not valid JSON."
            )
            return Problem(400, detail, kind="malformed-body")
        return Problem(exc.status_code, str(exc))
    if isinstance(exc, Http404):
        return Problem(404, "Not found.", kind="not-found")
    if isinstance(exc, PermissionDenied):
        return Problem(403, str(exc) or "Forbidden.")
    if isinstance(exc, RequestDataTooBig):
        return Problem(413, "The request body is too large.", kind="payload-too-large")
    if isinstance(exc, UnsupportedMediaType):
        return Problem(415, str(exc), kind="unsupported-media-type")
    if isinstance(exc, MultiPartParserError):
        # Django's parser refuses a multipart body it cannot split (no boundary, a torn part).
        return Problem(
            400,
            f"The multipart body could not be read ({exc}); send it as multipart/form-data "
            "with a boundary, as HTTP clients do.",
            kind="malformed-body",
        )
    if isinstance(exc, ParamError):
        pointer = {"in": "query", "pointer": f"#/{exc.name}", "detail": str(exc)}
        return Problem(400, str(exc), kind="bad-parameter", errors=[pointer])
    if isinstance(exc, RunInProgress):
        return run_in_progress(exc)
    if isinstance(exc, QuotaExceeded):
        return quota_exceeded(exc)
    if isinstance(exc, IdempotencyMismatch):
        return Problem(422, str(exc), kind="idempotency-key-reused", extra={"runId": exc.run.pk})
    if isinstance(exc, RunNotActive):
        return Problem(409, str(exc), kind="run-not-active")
    if isinstance(exc, (RunError, SourceError)):
        return Problem(422, str(exc), kind="refused", title="The request was refused")
    if isinstance(exc, OUTAGES):
        logger.warning("API request failed on an outage: %s: %s", type(exc).__name__, exc)
        return Problem(
            503,
            "A backing service (the database or Redis) is unreachable; try again shortly.",
            kind="service-unavailable",
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
        )
    logger.error("Unhandled exception in the API", exc_info=exc)
    return Problem(500, "Something went wrong on our side; it was logged.", kind="server-error")


def handle(request: HttpRequest, exc: Any) -> HttpResponse:
    return problem_response(request, problem_for(exc))


def install(api: NinjaAPI) -> None:
    """Route every exception the API meets through `handle` (ninja looks a handler up by the
    exception's classes, most specific first: one for Exception catches all)."""
    for cls in (Exception, Http404, HttpError, ValidationError):
        api.add_exception_handler(cls, handle)

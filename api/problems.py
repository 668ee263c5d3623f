"""Problem details (RFC 9457): the one shape every error of the API has.

`Problem` is raised by handlers (or built by the exception handlers in api.errors) and
rendered by `problem_response` as `application/problem+json`: `type`, `title`, `status`,
`detail`, `instance`, and extension members in camelCase (`errors` for field errors,
`activeRunId` for a 409 naming the active run, …).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse

from ingestion.upload_limits import too_big_message

CONTENT_TYPE = "application/problem+json"
# Every problem type is a URN under this prefix; docs/api.md lists them.
TYPE_PREFIX = "urn:intake:problem:"


class Problem(Exception):
    """An error the client should read. `kind` is the last part of its type URN
    (`run-in-progress`); `errors` are field errors ({"pointer", "detail"}); `extra` are more
    members of the body (camelCase keys); `headers` go on the response (Retry-After)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str = "",
        title: str = "",
        errors: Sequence[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or default_kind(status)
        self.title = title or HTTPStatus(status).phrase
        self.errors = list(errors)
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


def default_kind(status: int) -> str:
    """The type of a problem with nothing more specific to say: its status, in words
    (`not-found`, `method-not-allowed`)."""
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


def problem_body(problem: Problem, *, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
    }
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extra)
    return body


def problem_response(request: HttpRequest, problem: Problem) -> HttpResponse:
    body = problem_body(problem, instance=request.get_full_path())
    response = HttpResponse(
        json.dumps(body, cls=DjangoJSONEncoder), status=problem.status, content_type=CONTENT_TYPE
    )
    for name, value in problem.headers.items():
        response[name] = value
    return response


def too_large_refusal(scope: dict[str, Any]) -> tuple[str, bytes] | None:
    """The 413 of a body refused before Django saw it (ingestion.upload_limits.BodyLimit): a
    problem under /api/, else None (the pages' own answer)."""
    path = str(scope.get("path", ""))
    if not path.startswith("/api/"):
        return None
    problem = Problem(413, too_big_message(), kind="payload-too-large")
    return CONTENT_TYPE, json.dumps(problem_body(problem, instance=path)).encode()


def is_problem(response: HttpResponse) -> bool:
    return str(response.get("Content-Type", "")).startswith(CONTENT_TYPE)

"""The last word on error responses under /api/: whatever answered (ninja's 405 for a wrong
method, Django's 404 or 500 page, a CSRF failure), the client gets a problem
(application/problem+json), never an HTML page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from api.problems import Problem, is_problem, problem_response

PATH_PREFIX = "/api/"
# Headers of the original answer that still hold for its problem.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
DETAILS = {
    404: "There is no such endpoint; see /api/v1/docs for the ones there are.",
    405: "This endpoint does not take that method; the Allow header lists those it takes.",
}


def _as_problem(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    status = response.status_code
    if status < 400 or not request.path.startswith(PATH_PREFIX) or is_problem(response):  # type: ignore[arg-type]
        return response
    if status >= 500:
        detail = "Something went wrong on our side; it was logged."
    else:
        detail = DETAILS.get(status, "The request could not be answered.")
    headers = {name: response[name] for name in KEPT_HEADERS if name in response}
    return problem_response(request, Problem(status, detail, headers=headers))


@sync_and_async_middleware
def api_problems(get_response: Callable[[HttpRequest], Any]) -> Callable[..., Any]:
    # Both flavours, as project.middleware: no SSE stream is handed to a thread for this.
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            return _as_problem(request, await get_response(request))

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        return _as_problem(request, get_response(request))

    return sync_middleware

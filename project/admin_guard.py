"""Django admin's list filters and search pass query values to the database as they are; a NUL
character in one makes PostgreSQL refuse the query, and the admin answers 500. Intake's own
views read every parameter through project.params; the admin is third-party code, so its
requests are checked here before they reach it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

ADMIN_PREFIX = "/admin/"


def _refusal(request: HttpRequest) -> HttpResponseBadRequest | None:
    if not request.path.startswith(ADMIN_PREFIX):
        return None
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return HttpResponseBadRequest(
                "A query parameter contains a NUL character; remove it and try again.\n",
                content_type="text/plain",
            )
    return None


@sync_and_async_middleware
def refuse_nul_in_admin_queries(get_response: Callable[[HttpRequest], Any]) -> Callable[..., Any]:
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            return _refusal(request) or await get_response(request)

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        return _refusal(request) or get_response(request)

    return sync_middleware

"""The Content-Security-Policy header: Django 5.2 has none built in (6.0 will)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

HEADER = "Content-Security-Policy"
# django-rq's dashboard (staff only) is third-party markup with inline scripts and onclick
# handlers: it keeps working with inline script and style allowed there, and nowhere else.
INLINE_ALLOWED_PREFIXES = ("/django-rq/", "/admin/django_rq/")
INLINE_ALLOWED = {"script-src": "'self' 'unsafe-inline'", "style-src": "'self' 'unsafe-inline'"}


def policy_for(path: str) -> str:
    """The policy of a response to `path` (settings.INTAKE_CONTENT_SECURITY_POLICY; empty: no
    header)."""
    policy = settings.INTAKE_CONTENT_SECURITY_POLICY
    if not policy or not path.startswith(INLINE_ALLOWED_PREFIXES):
        return policy
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    kept = [d for d in directives if d.split()[0] not in INLINE_ALLOWED]
    return "; ".join(kept + [f"{name} {value}" for name, value in INLINE_ALLOWED.items()])


def _apply(request: HttpRequest, response: HttpResponseBase) -> None:
    if HEADER not in response:
        policy = policy_for(request.path)
        if policy:
            response[HEADER] = policy


@sync_and_async_middleware
def content_security_policy(get_response: Callable[[HttpRequest], Any]) -> Callable[..., Any]:
    # Both flavours, so that under ASGI no request (an SSE stream least of all) is handed to
    # a thread for the sake of one header.
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            response = await get_response(request)
            _apply(request, response)
            return response

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        _apply(request, response)
        return response

    return sync_middleware

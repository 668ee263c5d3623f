"""Static files answered in front of Django's request handler, from WhiteNoise's own index.

Through Django a static file crosses the middleware stack, and WhiteNoise being sync-only
under ASGI, that costs a hop from the event loop to a thread and back for every file. Here
the file WhiteNoise would serve (the same index, the same headers, 304s and compressed
variants) is read and sent on the event loop, with what the one middleware before WhiteNoise
that touches static files adds (SecurityMiddleware: the HTTPS redirect, its headers).
Anything else goes to Django as before: a path WhiteNoise does not know, a range request, a
large file (read in a thread by Django's path rather than on the loop), other settings (see
`enabled()`).
"""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.security import SecurityMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

WHITENOISE = "whitenoise.middleware.WhiteNoiseMiddleware"
SECURITY = "django.middleware.security.SecurityMiddleware"
# Only what answers the request before WhiteNoise may run before it (api_problems acts on
# /api/ only): another middleware there would be skipped for static files.
BEFORE_WHITENOISE = [SECURITY, "api.middleware.api_problems"]
# Larger files are left to Django's path, which streams them from a thread.
LARGEST_ON_THE_LOOP = 512 * 1024


def enabled() -> bool:
    middleware = list(settings.MIDDLEWARE)
    return (
        WHITENOISE in middleware
        and middleware[: middleware.index(WHITENOISE)] == BEFORE_WHITENOISE
        and not getattr(settings, "WHITENOISE_AUTOREFRESH", settings.DEBUG)
        and not settings.FORCE_SCRIPT_NAME
    )


def _unused(request: HttpRequest) -> HttpResponseBase:
    raise AssertionError("only the middleware's hooks are called here")


class StaticFiles:
    """ASGI middleware: answers GET and HEAD of a file in WhiteNoise's index; hands
    everything else to `app`."""

    def __init__(self, app: Any, handler: ASGIHandler | None = None) -> None:
        self.app = app
        self.handler = handler or app
        self.whitenoise = WhiteNoiseMiddleware(_unused) if enabled() else None
        self.security = SecurityMiddleware(_unused)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            self.whitenoise is not None
            and scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and not scope.get("root_path")
            and scope["path"].startswith(self.whitenoise.static_prefix)
        ):
            response = self.answer(scope)
            if response is not None:
                await self.handler.send_response(response, send)
                return
        await self.app(scope, receive, send)

    def answer(self, scope: dict[str, Any]) -> HttpResponseBase | None:
        assert self.whitenoise is not None
        static_file = self.whitenoise.files.get(scope["path"])
        if static_file is None:
            return None
        request = ASGIRequest(scope, io.BytesIO())
        if "HTTP_RANGE" in request.META or self.security.process_request(request) is not None:
            return None
        found = static_file.get_response(request.method, request.META)
        headers = dict(found.headers)
        if int(headers.get("Content-Length", 0)) > LARGEST_ON_THE_LOOP:
            if found.file is not None:
                found.file.close()
            return None
        body = b""
        if found.file is not None:
            with found.file:
                body = found.file.read()
        response = HttpResponse(body, status=int(found.status))
        del response["Content-Type"]  # WhiteNoise's own, if any, is among its headers
        for name, value in found.headers:
            response[name] = value
        self.security.process_response(request, response)
        return response

"""INTAKE_UPLOAD_MAX_BYTES applied while a request arrives, not after it was read and parsed.

Two layers, because the web servers receive differently:

* `BodyLimit` wraps the ASGI application (project/asgi.py). Django's ASGI handler reads the
  whole body into a temporary file before any view or upload handler runs, so a 300 MB upload
  used to be received, parsed and checked row by row before the size limit refused it. This
  refuses a request whose body is larger than the upload limit plus room for the form's other
  fields (`request_max_bytes()`) with 413, from its Content-Length before a byte of the body is
  read, or as soon as the bytes received pass it; what was sent is discarded, never stored.
* `UploadLimitHandler` (first of FILE_UPLOAD_HANDLERS) stops receiving one file at the limit
  itself (Django's SkipFile: the rest of it is read past and dropped) and reads nothing of a
  request declaring more than request_max_bytes(), under WSGI as under ASGI, and notes why on
  the request: the views show it as the upload field's error (`refusal(request)`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict
from django.utils.html import escape

# Multipart boundaries and part headers, beyond the file and the form's other fields.
FRAMING_BYTES = 64 * 1024
_REFUSAL = "_intake_upload_refusal"


def size_text(size: int) -> str:
    """A byte count as people read it: "200 MB", "1.5 MB", "64 KB"."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            value = size / scale
            return (
                f"{value:,.0f} {unit}"
                if value >= 10 or value == int(value)
                else f"{value:.1f} {unit}"
            )
    return f"{size} bytes"


def too_big_message(name: str = "") -> str:
    what = repr(name) if name else "The file"
    limit = size_text(settings.INTAKE_UPLOAD_MAX_BYTES)
    return f"{what} is larger than the {limit} limit (INTAKE_UPLOAD_MAX_BYTES)."


def request_max_bytes() -> int:
    """The largest request body accepted: an upload at the limit and the other fields of its
    form (at most DATA_UPLOAD_MAX_MEMORY_SIZE, Django's own limit for them)."""
    fields = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return settings.INTAKE_UPLOAD_MAX_BYTES + fields + FRAMING_BYTES


def refusal(request: HttpRequest) -> str:
    """Why an upload of this request was not received ("" when none was refused)."""
    return str(getattr(request, _REFUSAL, ""))


class UploadLimitHandler(FileUploadHandler):
    """Passes each file's data on to the next handlers until it passes the limit, then skips
    the rest of that file (and refuses a request declaring more than request_max_bytes())."""

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict[str, UploadedFile]] | None:
        if content_length > request_max_bytes():
            # Nothing of it is read: an empty form, the refusal noted.
            setattr(self.request, _REFUSAL, too_big_message())
            return QueryDict(), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > settings.INTAKE_UPLOAD_MAX_BYTES:
            setattr(self.request, _REFUSAL, too_big_message(self.file_name or ""))
            raise SkipFile
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler makes the file


# What a 413 says, for a request's ASGI scope: (content type, body), or None for the default
# (the pages' HTML). The API gives its problem this way (project/asgi.py wires it).
Refusal = Callable[[dict[str, Any]], tuple[str, bytes] | None]


class BodyLimit:
    """ASGI middleware: 413 for a request body larger than request_max_bytes()."""

    def __init__(self, app: Any, *, refusal: Refusal | None = None) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = request_max_bytes()
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > limit:
            # With "Expect: 100-continue" the client waits for our word before sending; a
            # body of more than twice the limit is not worth reading past.
            expects = headers.get(b"expect", b"").lower() == b"100-continue"
            if not expects and int(declared) <= 2 * limit:
                await _drain(receive, int(declared))
            await self._refuse(scope, send)
            return

        received = 0
        over = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    if message.get("more_body", False):
                        await _drain(receive, limit)
                    # Django's handler stops reading and answers nothing; we answer.
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited_receive, send)
        if over:
            await self._refuse(scope, send)

    async def _refuse(self, scope: dict[str, Any], send: Any) -> None:
        answer = self.refusal(scope) if self.refusal else None
        content_type, body = answer or ("text/html; charset=utf-8", _html_refusal())
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Any, budget: int) -> None:
    """Read past up to `budget` more bytes of the body, keeping none of them: a client that
    sends its whole body before reading the answer then gets the 413 instead of a reset."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _html_refusal() -> bytes:
    text = escape(too_big_message())
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>File too large · Intake</title>"
        f"<h1>File too large</h1><p>{text} Nothing was saved: go back and choose a smaller "
        "file, or split it.</p>"
    ).encode()

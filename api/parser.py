"""Request bodies: JSON only (a JSON body sent as a form or as text is a 415, not a puzzling
validation error), parsed with Django's limits (DATA_UPLOAD_MAX_MEMORY_SIZE: 413 beyond)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from api.errors import MalformedBody, UnsupportedMediaType

JSON_TYPES = ("application/json",)


class JsonOnlyParser(Parser):
    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        content_type = request.content_type or ""
        if content_type not in JSON_TYPES and not content_type.endswith("+json"):
            raise UnsupportedMediaType(
                f"Send the body as application/json (it came as {content_type or 'no type'!r})."
            )
        data = json.loads(request.body)
        if not isinstance(data, dict):
            # Every body this API reads is an object; a list or a number is not one.
            raise MalformedBody("The body must be a JSON object.")
        return data

"""The OpenAPI document says what the API really answers: every error is a Problem in
`application/problem+json`, and every operation can answer 401 (it needs credentials), 500
and 503 besides the codes its handler declares."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error, as RFC 9457 problem details. Extension members are camelCase.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": "urn:intake:problem:<kind>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "instance": {"type": "string", "description": "The path that was asked."},
        "errors": {
            "type": "array",
            "description": "Field errors: where (body, query, header, path) and a JSON pointer.",
            "items": {
                "type": "object",
                "required": ["in", "pointer", "detail"],
                "properties": {
                    "in": {"type": "string"},
                    "pointer": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
# Whatever the operation: its credentials may be wrong, and the server or what it depends on
# may fail.
EVERY_OPERATION = (401, 500, 503)
# Operations that read parameters or a body can find them malformed (400: a bad cursor, JSON
# that does not parse) or invalid (422).
WITH_INPUT = (400, 422)
# A body can be too large or of a type the operation does not read.
WITH_BODY = (413, 415)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _problem_response(status: int, description: str = "") -> dict[str, Any]:
    return {
        "description": description or HTTPStatus(status).phrase,
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }


def with_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its error responses described as problems (changed in place)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS:
                continue
            # ninja keys its responses by int; JSON (and the validators) by string.
            responses = {str(code): value for code, value in operation.get("responses", {}).items()}
            operation["responses"] = responses
            codes = {int(code) for code in responses if code.isdigit()}
            codes |= set(EVERY_OPERATION)
            if operation.get("parameters") or operation.get("requestBody"):
                codes |= set(WITH_INPUT)
            if operation.get("requestBody"):
                codes |= set(WITH_BODY)
            for code in sorted(codes):
                if code < 400:
                    continue
                description = responses.get(str(code), {}).get("description", "")
                responses[str(code)] = _problem_response(code, description)
    return schema

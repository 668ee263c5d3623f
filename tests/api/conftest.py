from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from api import tokens


class ApiClient:
    """The test client speaking to /api/v1/ with a bearer token (or none)."""

    def __init__(self, token: str | None = None) -> None:
        self.client = Client()
        self.token = token

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        return sent

    def get(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self._headers(headers), **kwargs)

    def post(
        self, path: str, json: Any = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        if json is not None:
            kwargs.setdefault("content_type", "application/json")
            kwargs["data"] = json
        return self.client.post(f"/api/v1{path}", headers=self._headers(headers), **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = self._headers(kwargs.pop("headers", None))
        return self.client.generic(method, f"/api/v1{path}", headers=headers, **kwargs)


@pytest.fixture
def token(user) -> str:  # type: ignore[no-untyped-def]
    return tokens.token_create(owner=user, name="tests")[1]


@pytest.fixture
def api(token: str) -> ApiClient:
    return ApiClient(token)


@pytest.fixture
def anonymous() -> ApiClient:
    return ApiClient()


def assert_problem(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status (and type), and its body."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status
    assert body["type"].startswith("urn:intake:problem:")
    if kind is not None:
        assert body["type"] == f"urn:intake:problem:{kind}", body
    assert "Traceback" not in body["detail"]
    return body


# The ingestion tests' board server, in-process RQ worker and a source.
from tests.ingestion.conftest import boards, greenhouse_source, work  # noqa: E402, F401

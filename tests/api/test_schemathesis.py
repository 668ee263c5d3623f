"""Schemathesis against the live API (uvicorn, an RQ worker, real database and Redis, so the
whole app is healthy and a 5xx is always a fault): requests generated
from the OpenAPI document, valid and invalid, for every operation; none may answer 5xx, and
every answer must match the document (status codes, content types, bodies, headers)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from api import tokens
from api.main import api
from tests.support import Proc, start_asgi, start_worker

pytestmark = pytest.mark.django_db(transaction=True)

# What the issue asks of the API: no server errors, no schema violations. Left out on
# purpose: positive_data_acceptance (a schema-valid id of a run that does not exist is
# rightly a 404) and the stateful checks, which need links between operations.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
EXAMPLES = 20


@pytest.fixture(scope="module")
def live_api(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One uvicorn and one RQ worker for every operation's cases: starting a pair per
    operation cost most of this module's time. Each test still gets an emptied database (and
    its own user and token); Redis is left alone so the worker stays registered."""
    log_dir = tmp_path_factory.mktemp("schemathesis")
    started: list[Proc] = []
    try:
        started.append(start_worker(log_dir))
        web, base = start_asgi(log_dir)
        started.append(web)
        yield base
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def fuzz_token(user) -> str:  # type: ignore[no-untyped-def]
    return tokens.token_create(owner=user, name="schemathesis")[1]


# The document as the app serves it at /api/v1/openapi.json (built in-process: schemathesis'
# fixture-based loader does not work under this pytest); the requests go to the live server.
schema = schemathesis.openapi.from_dict(api.get_openapi_schema(path_prefix="/api/v1"))


def _wait_until_healthy(base: str, timeout: float = 30.0) -> None:
    """The worker process registers with Redis a moment after it starts; until then the
    health endpoint rightly answers 503."""
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base}/api/v1/health", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the worker never showed up as live"
        time.sleep(0.2)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_within_its_schema(case, live_api, fuzz_token):  # type: ignore[no-untyped-def]
    if case.operation.path.endswith("/health"):
        _wait_until_healthy(live_api)
    case.call_and_validate(
        base_url=live_api,
        headers={"Authorization": f"Bearer {fuzz_token}"},
        checks=CHECKS,
        # A live stream stays open until its run ends.
        timeout=10,
    )

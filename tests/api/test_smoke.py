"""`manage.py smoke` against a real Intake (uvicorn + a real RQ worker): every contract holds
and the responses are kept; with no worker it fails, naming what is missing."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from api import tokens
from ingestion import services
from project import health
from tests.ingestion.pages import posting_rows, postings_csv
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def file_source(user):  # type: ignore[no-untyped-def]
    data = postings_csv(list(posting_rows(5)))
    return services.source_create(
        owner=user, kind="file", company="Acme", upload=io.BytesIO(data), upload_name="jobs.csv"
    )


def smoke(base: str, token: str, out, **options):  # type: ignore[no-untyped-def]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command(
            "smoke",
            base_url=base,
            token=token,
            out=str(out),
            stdout=stdout,
            stderr=stderr,
            **options,
        )
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, stdout.getvalue(), stderr.getvalue()


def test_the_smoke_test_passes_against_a_working_intake(
    user, worker, asgi, file_source, tmp_path, redis_client
):
    # The worker process registers with Redis a moment after it starts.
    wait_for(lambda: health.live_worker_count(redis_client) > 0, timeout=60, what="the worker")
    token = tokens.token_create(owner=user, name="smoke")[1]
    code, out, err = smoke(asgi, token, tmp_path / "seen", worker_wait=60)
    assert code == 0, out + err
    assert "smoke test passed" in out
    for contract in ("health", "openapi", "auth", "idempotency", "status", "items", "report"):
        assert f"ok   {contract}" in out
    kept = sorted((tmp_path / "seen").iterdir())
    assert len(kept) > 10
    first = json.loads(kept[0].read_text())
    assert {"step", "request", "status", "headers", "body"} <= set(first)


def test_without_a_worker_it_fails_and_names_the_workers(user, asgi, file_source, tmp_path):
    token = tokens.token_create(owner=user, name="smoke")[1]
    code, out, err = smoke(asgi, token, tmp_path / "seen", worker_wait=3)
    assert code == 1
    assert err.startswith("FAIL health")
    assert "worker" in err


def test_a_wrong_token_fails_at_once(user, asgi, tmp_path):
    code, out, err = smoke(asgi, "intake_wrong_token", tmp_path / "seen")
    assert code == 1
    assert "FAIL" in err

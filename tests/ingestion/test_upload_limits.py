"""INTAKE_UPLOAD_MAX_BYTES on a real ASGI server: a body over the limit is refused with 413 as
it arrives (from its Content-Length, or when the bytes received pass it), never read into a
file and parsed first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from ingestion.models import Source
from ingestion.upload_limits import request_max_bytes
from tests.support import Proc, signed_in_client, start_asgi

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 1024 * 1024
CHECK = reverse("ingestion:source_check_upload")
NEW = reverse("ingestion:source_new")


@pytest.fixture
def web(procs: list[Proc], tmp_path: Path, redis_client: Any) -> str:
    proc, base = start_asgi(tmp_path, INTAKE_UPLOAD_MAX_BYTES=LIMIT)
    procs.append(proc)
    return base


def _multipart(name: str, size: int) -> dict[str, Any]:
    return {"files": {"upload": (name, b"x" * size, "text/csv")}, "data": {"kind": "file"}}


def test_a_body_declared_over_the_limit_is_refused_with_413_and_a_message(web, user):
    with signed_in_client(web, user) as client:
        response = client.post(CHECK, **_multipart("big.csv", 5 * LIMIT))

        assert response.status_code == 413
        assert "is larger than the 1 MB limit (INTAKE_UPLOAD_MAX_BYTES)" in response.text
        # The server carries on.
        assert client.get(NEW).status_code == 200


def test_a_body_sent_without_a_length_is_refused_once_it_passes_the_limit(web, user):
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(2 * request_max_bytes() // 65536):
            sent += 65536
            yield b"x" * 65536

    with signed_in_client(web, user) as client:
        response = client.post(
            CHECK, content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )

    assert response.status_code == 413
    assert "INTAKE_UPLOAD_MAX_BYTES" in response.text


def test_a_file_just_over_the_limit_is_a_form_error_and_nothing_is_saved(web, user):
    # Within the room left for the form's other fields: the upload handler refuses it.
    with signed_in_client(web, user) as client:
        response = client.post(
            NEW,
            files={"upload": ("big.csv", b"external_id,title\n" + b"x" * LIMIT, "text/csv")},
            data={"kind": "file", "company": "Acme", "enabled": "on"},
        )

    assert response.status_code == 200
    assert "&#x27;big.csv&#x27; is larger than the 1 MB limit" in response.text
    assert not Source.objects.exists()


def test_a_file_under_the_limit_goes_through(web, user):
    with signed_in_client(web, user) as client:
        response = client.post(
            CHECK,
            files={"upload": ("jobs.csv", b"external_id,title\n1,Chef\n", "text/csv")},
            data={"kind": "file"},
        )

    assert response.status_code == 200
    assert "All 1 row is good." in response.text

"""The hourly uploads, shared by the pages and the API: past INTAKE_UPLOADS_PER_HOUR the page
says when to try again (nothing saved) and the API answers 429 with Retry-After; another user
is not held back; the next clock hour starts a new count."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from api import tokens
from ingestion import quota
from ingestion.models import Source
from ingestion.quota import QuotaExceeded, quota_take_upload
from tests.api.conftest import ApiClient, assert_problem
from tests.ingestion.pages import url_list_csv

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def two_an_hour(settings, redis_client):  # type: ignore[no-untyped-def]
    settings.INTAKE_UPLOADS_PER_HOUR = 2


def _urls(n: int) -> SimpleUploadedFile:
    data = url_list_csv([f"https://jobs.example.com/{n}/{i}" for i in range(2)])
    return SimpleUploadedFile(f"urls{n}.csv", data, content_type="text/csv")


def _page_form(n: int) -> dict[str, Any]:
    return {"kind": "urls", "company": f"Acme {n}", "upload": _urls(n)}


def test_the_page_and_the_api_share_the_hourly_uploads(user: Any, other_user: Any) -> None:
    page = Client()
    page.force_login(user)
    assert page.post("/sources/new/", _page_form(1)).status_code == 302
    api = ApiClient(tokens.token_create(owner=user, name="t")[1])
    first = api.post("/sources/upload", data={"kind": "urls", "company": "Api", "upload": _urls(2)})
    assert first.status_code == 201, first.content

    refused = api.post(
        "/sources/upload", data={"kind": "urls", "company": "Late", "upload": _urls(3)}
    )
    problem = assert_problem(refused, 429, "quota-exceeded")
    assert problem["quota"] == "uploads"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert "this hour" in problem["detail"]

    again = page.post("/sources/new/", _page_form(4))
    assert again.status_code == 200
    assert "this hour" in again.context["form"].errors["upload"][0]
    assert Source.objects.filter(owner=user).count() == 2

    theirs = Client()
    theirs.force_login(other_user)
    assert theirs.post("/sources/new/", _page_form(5)).status_code == 302


def test_the_count_starts_again_each_clock_hour(user: Any) -> None:
    hour = 1_800_000_000 // 3600 * 3600
    quota_take_upload(user.pk, now=hour + 10)
    quota_take_upload(user.pk, now=hour + 20)
    with pytest.raises(QuotaExceeded) as refused:
        quota_take_upload(user.pk, now=hour + 30)
    assert refused.value.quota == "uploads"
    quota_take_upload(user.pk, now=hour + 3600)  # the next hour


def test_zero_means_unlimited(settings, user: Any) -> None:
    settings.INTAKE_UPLOADS_PER_HOUR = 0
    for _ in range(5):
        quota_take_upload(user.pk)
    assert not quota._redis().keys("intake:quota:uploads:*")

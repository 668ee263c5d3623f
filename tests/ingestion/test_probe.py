"""The connection test of a pasted careers URL (Configure): postings counted or the reason it
failed, before anything is saved; through the fetcher's guard and quota, bounded in time."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from ingestion.models import RawPayload, Source
from tests.fixture_server import FixtureServer, Reply
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db

PROBE = reverse("ingestion:source_probe")
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def probe_text(client: Client, url: str) -> str:
    response = client.get(PROBE, {"url": url}, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<p id="url-probe"')
    return body.split(">", 1)[1].rsplit("</p>", 1)[0]


def test_a_board_is_listed_and_its_postings_counted_without_saving_anything(
    client: Client, boards: FixtureServer
):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 601)])
    assert probe_text(client, "https://boards.greenhouse.io/acme") == "600 postings found."
    assert not Source.objects.exists()
    assert not RawPayload.objects.exists()


def test_a_missing_board_says_why_it_cannot_be_read(client: Client, boards: FixtureServer):
    text = probe_text(client, "https://boards.greenhouse.io/nobody")
    assert "does not exist (404)" in text


def test_the_guard_refuses_a_loopback_page_as_a_run_would(client: Client, settings: Any):
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = False
    text = probe_text(client, "http://127.0.0.1:9/careers")
    # Refused when the URL is checked, in the guard's words, before anything is fetched.
    assert text.startswith("Refused to fetch from 127.0.0.1: a loopback address")


def test_a_slow_source_is_given_up_on_after_the_probe_time(
    client: Client, boards: FixtureServer, settings: Any
):
    settings.INTAKE_PROBE_SECONDS = 0.5

    def slow(request: Any) -> Reply:
        time.sleep(3)
        return Reply(200, b'{"jobs": []}', {"Content-Type": "application/json"})

    boards.route("/v1/boards/slow/jobs", handler=slow)
    started = time.monotonic()
    text = probe_text(client, "https://boards.greenhouse.io/slow")
    assert time.monotonic() - started < 2.5
    assert "could not be read" in text and "deadline" in text


def test_a_url_that_is_no_source_says_so(client: Client):
    assert probe_text(client, "not a url") == "Paste a full http(s) URL."


def test_an_empty_url_answers_an_empty_status(client: Client):
    assert probe_text(client, "") == ""


def test_the_quick_add_form_tests_a_pasted_url(client: Client):
    html = client.get(reverse("ingestion:configure")).content.decode()
    assert f'hx-get="{PROBE}"' in html and 'id="url-probe"' in html

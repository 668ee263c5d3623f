"""What every page shares: the error pages, the favicon, the skip link."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.template import loader
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

pytestmark = pytest.mark.django_db

NAV_LINKS = (reverse("ingestion:home"), reverse("ingestion:jobs"), reverse("runs:list"))


@pytest.fixture
def client(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def _assert_styled_error_page(body: str, code: str, heading: str) -> None:
    assert "css/intake.css" in body
    assert f"Error {code}" in body
    assert f'<h1 id="error-title">{heading}</h1>' in body
    for url in NAV_LINKS:
        assert f'href="{url}"' in body


def test_an_unknown_address_answers_a_styled_404_with_navigation(client: Client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    _assert_styled_error_page(body, "404", "Page not found")
    # Signed in: the usual top bar too.
    assert "Sign out" in body


def test_another_users_object_is_the_same_styled_404(client: Client):
    response = client.get(reverse("ingestion:job", args=[987654]))
    assert response.status_code == 404
    _assert_styled_error_page(response.content.decode(), "404", "Page not found")


@pytest.mark.parametrize(
    ("template", "code", "heading"),
    [
        ("500.html", "500", "Something went wrong"),
        ("400.html", "400", "Bad request"),
        ("403_csrf.html", "403", "The form has expired"),
    ],
)
def test_the_context_free_error_pages_render_without_a_request_or_the_database(
    template: str, code: str, heading: str
):
    # Django renders these with no request and no context processors; the 500 page is shown
    # when anything (the database included) may be down, so it must not query.
    with CaptureQueriesContext(connection) as queries:
        body = loader.get_template(template).render()
    assert not queries.captured_queries
    _assert_styled_error_page(body, code, heading)


def test_an_unhandled_error_answers_the_styled_500(client: Client, monkeypatch: Any):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("ingestion.views.jobs.selectors.jobs_for_owner", broken)
    client.raise_request_exception = False
    response = client.get(reverse("ingestion:jobs"))
    assert response.status_code == 500
    _assert_styled_error_page(response.content.decode(), "500", "Something went wrong")


def test_a_csrf_failure_answers_the_styled_403():
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "x", "password": "y"})
    assert response.status_code == 403
    _assert_styled_error_page(response.content.decode(), "403", "The form has expired")


def test_every_page_links_the_favicon_and_a_skip_link_to_the_main_content(client: Client):
    body = Client().get(reverse("login")).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg"' in body
    assert '<a class="skip-link" href="#main">Skip to main content</a>' in body
    assert '<main id="main" tabindex="-1">' in body
    assert Client().get("/static/favicon.svg").status_code == 200


def test_favicon_ico_redirects_to_the_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"

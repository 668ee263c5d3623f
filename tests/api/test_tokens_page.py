"""API tokens made and revoked on the tokens page and in the admin."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from api.models import ApiToken
from tests.api.conftest import ApiClient, assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_the_page_is_linked_from_the_nav_and_needs_a_login(browser):
    assert 'href="/account/tokens/"' in browser.get("/runs/").content.decode()
    assert Client().get("/account/tokens/")["Location"].startswith("/login/")


def test_a_token_made_on_the_page_is_shown_once_and_works(browser, user):
    page = browser.post("/account/tokens/", {"name": "nightly cron"})
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    raw = re.search(r'data-role="token">([^<]+)<', page.content.decode()).group(1)
    assert ApiClient(raw).get("/runs/current").status_code == 200
    again = browser.get("/account/tokens/").content.decode()
    assert raw not in again and "nightly cron" in again
    assert ApiToken.objects.get(owner=user).name == "nightly cron"


def test_a_token_needs_a_name(browser):
    page = browser.post("/account/tokens/", {"name": "  "})
    assert page.status_code == 400 and "Give the token a name" in page.content.decode()
    assert not ApiToken.objects.exists()


def test_a_name_with_control_characters_is_refused_not_a_500(browser):
    for name in ("ci\x00bot", "line\nbreak"):
        page = browser.post("/account/tokens/", {"name": name})
        assert page.status_code == 400 and "control characters" in page.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_on_the_page_stops_the_token_at_once(browser, token, user):
    row = ApiToken.objects.get(owner=user)
    response = browser.post(f"/account/tokens/{row.pk}/revoke/")
    assert response["Location"] == "/account/tokens/"
    assert_problem(ApiClient(token).get("/runs/current"), 401)
    assert "revoked" in browser.get("/account/tokens/").content.decode()


def test_another_users_token_cannot_be_revoked(other_user, token, user):
    client = Client()
    client.force_login(other_user)
    row = ApiToken.objects.get(owner=user)
    assert client.post(f"/account/tokens/{row.pk}/revoke/").status_code == 404
    assert ApiClient(token).get("/runs/current").status_code == 200


def test_the_admin_makes_and_revokes_tokens(admin_client, user):
    response = admin_client.post(
        "/admin/api/apitoken/add/", {"owner": user.pk, "name": "from the admin"}, follow=True
    )
    text = response.content.decode()
    raw = re.search(r"(intake_[A-Za-z0-9]+_[A-Za-z0-9_-]+)", text).group(1)
    assert ApiClient(raw).get("/runs/current").status_code == 200
    row = ApiToken.objects.get(name="from the admin")
    assert row.token_hash and raw not in row.token_hash
    admin_client.post(
        "/admin/api/apitoken/",
        {"action": "revoke", "_selected_action": [row.pk]},
    )
    assert_problem(ApiClient(raw).get("/runs/current"), 401)

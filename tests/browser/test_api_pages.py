"""The API's pages in real Chromium: the interactive docs render from the app's own files
under its Content-Security-Policy, and the tokens page makes a token that the docs can use."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.test_accessibility import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_render_offline_under_the_policy(
    page: Page, user, asgi: str, shot: Callable[[Page, str], None]
):
    elsewhere: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith(asgi) and not request.url.startswith("data:"):
            elsewhere.append(request.url)

    page.on("request", note)
    page.goto("/api/v1/docs")
    expect(page.get_by_text("Intake API").first).to_be_visible()
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    expect(page.get_by_text("/api/v1/runs/current")).to_be_visible()
    shot(page, "docs")
    assert not elsewhere, f"the docs page reached other sites: {elsewhere}"


def test_a_token_made_on_the_page_is_shown_once(
    page: Page, user, asgi: str, axe: Callable[[Page], list[str]]
):
    sign_in(page)
    page.get_by_role("link", name="API").click()
    expect(page).to_have_url(re.compile(r"/account/tokens/$"))
    page.get_by_label("Name").fill("laptop script")
    page.get_by_role("button", name="Make a token").click()
    token = page.locator('[data-role="token"]').inner_text()
    assert token.startswith("intake_")
    assert not axe(page)
    response = page.request.get(
        "/api/v1/runs/current", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200
    page.goto("/account/tokens/")
    expect(page.locator('[data-role="token"]')).to_have_count(0)
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("revoked", exact=False).first).to_be_visible()
    again = page.request.get("/api/v1/runs/current", headers={"Authorization": f"Bearer {token}"})
    assert again.status == 401

"""Paste-to-add in real Chromium: the pasted board is tested at once, nothing saved."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ingestion.models import Source
from tests.browser.conftest import ALICE_PASSWORD, CHILD_ENV
from tests.browser.test_configure import sign_in
from tests.fixture_server import FixtureServer
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def child_env_overrides(fixture_server: FixtureServer) -> dict[str, str]:
    return {
        **CHILD_ENV,
        "INTAKE_ALLOW_PRIVATE_NETWORK": "1",
        "INTAKE_GREENHOUSE_URL": fixture_server.base_url,
    }


def test_a_pasted_board_is_tested_before_it_is_added(
    page: Page, user, asgi, fixture_server: FixtureServer
):
    mount_greenhouse(fixture_server, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 13)])
    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/configure/")
    field = page.get_by_label("Careers URL")
    field.focus()
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.setData('text/plain', 'https://boards.greenhouse.io/acme');
            const field = document.activeElement;
            field.value = 'https://boards.greenhouse.io/acme';
            field.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
        }"""
    )
    expect(page.locator("#url-probe")).to_have_text("12 postings found.")
    assert not Source.objects.exists()

    field.fill("https://boards.greenhouse.io/nobody")
    field.blur()  # a change
    expect(page.locator("#url-probe")).to_contain_text("does not exist (404)")

"""Schedules on the Configure page in real Chromium: schedule the ticked sources every N
hours without a reload, see the schedule listed with its next run, disable and delete it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ingestion.models import Schedule, Source
from tests.browser.conftest import ALICE_PASSWORD
from tests.browser.test_configure import mark_document, same_document, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_ticked_sources_are_scheduled_disabled_and_deleted_on_configure(page: Page, user, asgi):
    acme = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(owner=user, company="Beta", kind="lever", identifier="beta")
    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/configure/")
    expect(page.get_by_text("No schedules yet")).to_be_visible()
    mark_document(page)
    page.get_by_label("Select Beta for the preview").uncheck()
    page.get_by_text("Schedule these sources", exact=True).click()
    page.get_by_label("Name").fill("Acme, twice a day")
    page.get_by_label("Hours between runs").fill("12")
    page.get_by_role("button", name="Schedule", exact=True).click()
    status = page.locator("#schedule-status")
    expect(status).to_contain_text("Scheduled Acme, twice a day; its first run is at")
    row = page.locator("#schedule-list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("every 12 hours")
    assert same_document(page), "scheduling reloaded the page"
    schedule = Schedule.objects.get(owner=user)
    assert list(schedule.sources.all()) == [acme]

    page.get_by_role("button", name="Disable schedule Acme, twice a day").click()
    expect(status).to_have_text("Disabled schedule Acme, twice a day.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete schedule Acme, twice a day").click()
    expect(page.get_by_text("No schedules yet")).to_be_visible()
    assert same_document(page)
    assert not Schedule.objects.exists()

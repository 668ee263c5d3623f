"""The daily run quota in real Chromium against the real ASGI server: the summary bar says the
quota is used up, and starting another run is refused saying when it resets."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ingestion.models import Source
from ingestion.run_kinds import PREVIEW
from runs.models import IngestionRun, RunStatus
from tests.browser.conftest import ALICE_PASSWORD, CHILD_ENV, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Whole hours read "in 2 h" (quota.format_span): the test must pass at any time of day.
RESET = re.compile(r"It resets at 00:00 \w+ \(in (\d+ h( \d+ min)?|\d+ min|less than a minute)\)")


@pytest.fixture
def child_env_overrides() -> dict[str, str]:
    return {**CHILD_ENV, "INTAKE_QUOTA_RUNS_PER_DAY": "1"}


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))


def test_with_a_quota_of_one_run_a_second_run_is_refused_with_the_reset_time(page: Page, user):
    source = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    now = timezone.now()
    today = IngestionRun.objects.create(
        owner=user,
        kind=PREVIEW,
        status=RunStatus.FINISHED,
        started_at=now - timedelta(seconds=3),
        finished_at=now,
        jobs_new=12,
    )

    sign_in(page, user.username, ALICE_PASSWORD)
    page.goto("/configure/")
    bar = page.locator("#summary-bar")
    expect(bar).to_have_attribute("data-quota-state", "exhausted")
    expect(bar.locator('[data-summary="last-run"]')).to_have_text(f"Preview #{today.pk}")
    expect(bar.locator('[data-summary="runs-left"]')).to_have_text("0 of 1 run left today")
    expect(bar).to_contain_text("Daily quota used up.")

    page.locator(f"#select-{source.pk}").check()
    page.get_by_role("button", name="Preview", exact=True).click()
    refusal = page.locator(".messages .msg-error")
    expect(refusal).to_contain_text("You have used your 1 run for today")
    expect(refusal).to_contain_text("INTAKE_QUOTA_RUNS_PER_DAY")
    expect(refusal).to_have_text(RESET)
    assert IngestionRun.objects.filter(owner=user).count() == 1  # nothing was started

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "quota.png", full_page=True)

"""The jobs list and a job's page in real Chromium: search, filter, back button, the job's
description and its duplicate group."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from ingestion.models import Job, JobStatus, Source
from tests.browser.conftest import ALICE_PASSWORD, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESCRIPTION = (
    "<h3>About the role</h3><p>Build the <strong>ingestion pipeline</strong> in Python.</p>"
    "<ul><li>Django</li><li>PostgreSQL</li></ul>"
)


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))


def job(owner, title: str, days: int, **fields: Any) -> Job:  # type: ignore[no-untyped-def]
    now = timezone.now()
    values: dict[str, Any] = {
        "company": "Acme",
        "external_id": title.lower().replace(" ", "-"),
        "url": f"https://boards.example.com/acme/{title.lower().replace(' ', '-')}",
        "location": "Berlin, Germany",
        "status": JobStatus.READY,
        "posted_at": now - timedelta(days=days),
        "first_seen_at": now - timedelta(days=days),
        "last_seen_at": now,
    }
    values.update(fields)
    return Job.objects.create(owner=owner, title=title, **values)


def rows(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#job-results tbody tr")


def test_searching_filtering_and_opening_a_job_with_its_duplicate_group(
    page: Page, user, other_user, asgi
):
    source = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="a")
    canonical = job(
        user,
        "Senior Python Developer",
        2,
        source=source,
        workplace_type="hybrid",
        description=DESCRIPTION,
        raw_description=DESCRIPTION + "<script>window.__raw = true</script>",
        salary_min=70000,
        salary_max=90000,
        salary_currency="EUR",
        salary_period="year",
    )
    duplicate = job(
        user,
        "Python Developer (Senior)",
        1,
        company="Acme GmbH",
        status=JobStatus.SKIPPED,
        duplicate_of=canonical,
        description=DESCRIPTION,
    )
    job(user, "Python Intern", 3, status=JobStatus.ERROR, error_message="Detail page 404")
    job(user, "Go Developer", 4, workplace_type="remote", location="Remote - EU")
    job(user, "Data Analyst", 30, status=JobStatus.EXPIRED, location="Lisbon, Portugal")
    job(other_user, "Python Secret", 1)

    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/jobs/")
    expect(rows(page)).to_have_count(5)
    expect(page.locator("#job-results")).not_to_contain_text("Python Secret")
    first = rows(page).first
    expect(first).to_contain_text("Python Developer (Senior)")
    expect(first.locator('[data-role="badge"]')).to_have_text("Skipped")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "jobs.png", full_page=True)

    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Search").fill("python")
    expect(rows(page)).to_have_count(3)
    expect(page).to_have_url(re.compile(r"[?&]q=python"))

    page.get_by_label("Status").select_option("ready")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Senior Python Developer")
    expect(rows(page).first.locator('[data-role="badge"]')).to_have_text("Ready")
    expect(page).to_have_url(re.compile(r"[?&]status=ready"))
    assert page.evaluate("window.__sameDocument === true"), "filtering reloaded the page"
    page.screenshot(path=SCREENSHOTS / "jobs-filtered.png", full_page=True)

    # Back: the URL before the status filter, its results and its form.
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"status=ready"))
    expect(rows(page)).to_have_count(3)
    expect(page.get_by_label("Status")).to_have_value("")
    expect(page.get_by_label("Search")).to_have_value("python")

    page.get_by_role("link", name="Senior Python Developer").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{canonical.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Senior Python Developer")
    description = page.locator('[data-role="description"]')
    expect(description.get_by_role("heading", name="About the role")).to_be_visible()
    expect(description.locator("li")).to_have_count(2)
    assert page.evaluate("window.__raw === undefined"), "the raw description ran"
    expect(page.locator('[data-role="salary"]')).to_have_text("EUR 70,000–90,000 per year")
    link = page.locator('[data-role="posting-link"]')
    expect(link).to_have_attribute("href", canonical.url)
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(link).to_have_attribute("target", "_blank")

    group = page.locator("#duplicate-group")
    expect(group.locator('[data-role="canonical"]')).to_contain_text("(this job)")
    expect(group.locator('[data-role="duplicate"]')).to_have_count(1)
    page.screenshot(path=SCREENSHOTS / "job.png", full_page=True)

    group.get_by_role("link", name="Python Developer (Senior)").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{duplicate.pk}/$"))
    notice = page.locator('[data-role="duplicate-of"]')
    expect(notice).to_contain_text("near-duplicate of Senior Python Developer")
    notice.get_by_role("link", name="Senior Python Developer").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{canonical.pk}/$"))


def test_another_users_job_page_is_not_found_in_the_browser(page: Page, user, other_user, asgi):
    theirs = job(other_user, "Their Job", 1)
    sign_in(page, "alice", ALICE_PASSWORD)
    response = page.goto(f"/jobs/{theirs.pk}/")
    assert response is not None and response.status == 404
    page.goto("/jobs/")
    expect(page.locator("#job-results")).to_contain_text("No jobs yet")

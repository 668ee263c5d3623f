"""Every page in real Chromium checked by axe-core (zero serious or critical violations), and
the narrow screens: no sideways scrolling at 390 px."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ALICE_PASSWORD, CHILD_ENV
from tests.ingestion.pages import posting_row, postings_csv

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_WIDTH = 390


@pytest.fixture
def child_env_overrides() -> dict[str, str]:
    return {**CHILD_ENV, "INTAKE_PROGRESS_INTERVAL": "0.2"}


def sign_in(page: Page) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ALICE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))


def add_file_source(page: Page, tmp_path: Path) -> None:
    """Adds an uploaded CSV (four good rows, one without a title) through the full form."""
    csv_path = tmp_path / "initech.csv"
    rows = [posting_row(n, employment_type="Full-time") for n in range(1, 5)]
    csv_path.write_bytes(postings_csv([*rows, posting_row(5, title="")]))
    page.goto("/sources/new/")
    page.get_by_label("Kind").select_option("file")
    page.get_by_label("Company", exact=True).fill("Initech")
    page.get_by_label(re.compile(r"^File")).set_input_files(str(csv_path))
    expect(page.locator("#upload-check")).to_contain_text("row", timeout=15_000)
    page.get_by_label(re.compile("Save anyway")).check()
    page.get_by_role("button", name="Add source").click()
    expect(page).to_have_url(re.compile(r"/configure/$"))


def test_every_page_has_no_serious_accessibility_violation(
    page: Page, user, worker, tmp_path: Path, axe: Callable[[Page], list[str]]
):
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        violations = axe(page)
        if violations:
            found[name] = violations

    page.goto("/login/")
    check("login")
    page.goto("/no/such/page/")
    check("404 signed out")
    sign_in(page)
    page.goto("/configure/")
    check("configure, empty")
    page.goto("/sources/new/")
    check("source form")
    add_file_source(page, tmp_path)
    check("configure")

    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page).to_have_url(re.compile(r"/preview/\d+/$"))
    expect(page.locator("#run-status [data-role='badge']")).to_have_text("Finished")
    expect(page.get_by_text("What an ingest would change")).to_be_visible()
    check("preview")
    page.get_by_role("button", name=re.compile("^Ingest")).click()
    expect(page).to_have_url(re.compile(r"/ingest/\d+/$"))
    expect(page.locator("#run-status [data-role='badge']")).to_have_text("Finished")
    expect(page.locator('[data-role="jobs-link"]')).to_be_visible()
    check("ingest")

    page.goto("/runs/")
    check("runs")
    page.get_by_text("Start a diagnostic run").click()
    page.get_by_label("Items").fill("3")
    page.get_by_label("Seconds per item").fill("0")
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("[data-role='badge']").first).to_have_text("Finished")
    check("run detail")

    page.goto("/jobs/")
    check("jobs")
    page.locator("[data-job-id] a").first.click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
    check("job detail")
    page.goto("/sources/new/?url=not-a-url")
    check("source form with a bad URL")
    page.goto("/no/such/page/")
    check("404")

    assert not found, "\n".join(f"{name}: {v}" for name, vs in found.items() for v in vs)


@pytest.mark.parametrize("path", ["/configure/", "/runs/", "/sources/new/", "/jobs/"])
def test_a_phone_wide_screen_needs_no_sideways_scrolling(
    page: Page, user, worker, tmp_path: Path, path: str
):
    sign_in(page)
    add_file_source(page, tmp_path)
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.locator("#run-status [data-role='badge']")).to_have_text("Finished")
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
    page.goto(path)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    # What sticks out, to say where to look when it fails.
    wide = page.evaluate(
        """(limit) => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > limit + 0.5)
            .slice(0, 5)
            .map((e) => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)""",
        PHONE_WIDTH,
    )
    assert width <= PHONE_WIDTH, f"{path} is {width} px wide at {PHONE_WIDTH} px: {wide}"

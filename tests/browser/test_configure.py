"""The Configure step in real Chromium: paste a board URL, add a file source whose bad row is
shown before saving, select sources, toggle one off."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ingestion.models import Source
from tests.browser.conftest import ALICE_PASSWORD, CHILD_ENV, SCREENSHOTS
from tests.ingestion.pages import posting_row, postings_csv

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def mark_document(page: Page) -> None:
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_sources_are_added_checked_selected_and_toggled_on_the_configure_page(
    page: Page, user, asgi, tmp_path: Path, shot: Callable[[Page, str], None]
):
    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/configure/")
    expect(page.get_by_text("No sources yet — paste a careers URL to add one")).to_be_visible()
    shot(page, "1-empty")

    # The main path: paste a board URL; it is recognised as typed, added without a reload.
    mark_document(page)
    page.get_by_label("Careers URL").fill("https://boards.greenhouse.io/acme")
    expect(page.locator("#url-recognized")).to_have_text("Recognised: Greenhouse board 'acme'")
    page.get_by_role("button", name="Add", exact=True).click()
    rows = page.locator("#source-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator('[data-role="kind"]')).to_contain_text("Greenhouse")
    expect(rows.first.get_by_role("checkbox")).to_be_checked()
    expect(page.locator("#configure-status")).to_have_text("Added source Acme (Greenhouse board).")
    assert same_document(page), "adding a source reloaded the page"
    shot(page, "2-greenhouse-added")

    # The full form: a CSV with a bad row is checked as soon as it is chosen.
    page.get_by_role("link", name="More options").click()
    page.get_by_label("Kind").select_option("file")
    page.get_by_label("Company", exact=True).fill("Initech")
    csv = tmp_path / "initech-jobs.csv"
    csv.write_bytes(postings_csv([posting_row(1), posting_row(2, title=""), posting_row(3)]))
    page.locator("#id_upload").set_input_files(csv)
    check = page.locator("#upload-check")
    expect(check).to_contain_text("1 of 3 rows has errors")
    error_row = check.locator('[data-role="row-error"]')
    expect(error_row).to_have_count(1)
    expect(error_row).to_contain_text("2")
    expect(error_row).to_contain_text("title")
    assert Source.objects.filter(owner=user).count() == 1, "the check saved something"
    shot(page, "3-row-errors")

    page.get_by_label(re.compile(r"Save anyway — the 2 good rows will be ingested")).check()
    page.get_by_role("button", name="Add source").click()
    expect(page).to_have_url(re.compile(r"/configure/$"))
    expect(page.locator(".messages")).to_contain_text("2 good rows will be ingested")

    # Both listed, both selected (enabled ones are selected by default).
    expect(rows).to_have_count(2)
    initech = rows.filter(has_text="Initech")
    acme = rows.filter(has_text="Acme")
    expect(initech.locator('[data-role="kind"]')).to_have_text("Uploaded file")
    for row in (initech, acme):
        expect(row.get_by_role("checkbox")).to_be_checked()

    # Toggle one off: the row is swapped in place, no reload, and it is no longer selected.
    mark_document(page)
    initech.get_by_role("button", name="Disable Initech").click()
    expect(initech.locator('[data-role="enabled"] .state')).to_have_text("Disabled")
    expect(initech.get_by_role("checkbox")).not_to_be_checked()
    expect(acme.get_by_role("checkbox")).to_be_checked()
    expect(page.locator("#configure-status")).to_have_text("Disabled source Initech.")
    assert same_document(page)
    assert not Source.objects.get(owner=user, company="Initech").enabled

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "configure.png", full_page=True)
    shot(page, "4-toggled")

    # Delete asks first, then removes the row in place; the jobs stay (the view tests prove it).
    page.on("dialog", lambda dialog: dialog.accept())
    initech.get_by_role("button", name="Delete Initech").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#configure-status")).to_have_text(
        "Deleted source Initech; its jobs are kept."
    )
    assert same_document(page)
    assert not Source.objects.filter(owner=user, company="Initech").exists()


@pytest.mark.parametrize("child_env_overrides", [{**CHILD_ENV, "INTAKE_UPLOAD_MAX_BYTES": "65536"}])
def test_a_file_over_the_upload_limit_is_refused_in_the_page_before_it_is_sent(
    page: Page, user, asgi, tmp_path: Path, shot: Callable[[Page, str], None]
):
    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/sources/new/")
    expect(page.get_by_text("At most 64 KB.")).to_be_visible()
    posted: list[str] = []
    page.on(
        "request", lambda request: posted.append(request.url) if request.method == "POST" else None
    )
    page.get_by_label("Kind").select_option("file")
    page.get_by_label("Company", exact=True).fill("Initech")
    posted.clear()

    big = tmp_path / "big.csv"
    big.write_bytes(postings_csv([posting_row(n) for n in range(1, 60)]))
    assert big.stat().st_size > 65536
    page.locator("#id_upload").set_input_files(big)

    check = page.locator("#upload-check")
    expect(check).to_contain_text(
        "This file cannot be used: 'big.csv' is larger than the 64 KB limit "
        "(INTAKE_UPLOAD_MAX_BYTES). Nothing was sent."
    )
    expect(page.locator("#id_upload")).to_have_attribute("aria-invalid", "true")
    shot(page, "refused")

    # Submitting the form does not send it either.
    page.get_by_role("button", name="Add source").click()
    expect(check).to_contain_text("Nothing was sent.")
    assert posted == [], f"the page sent {posted}"
    assert not Source.objects.filter(owner=user, company="Initech").exists()

    # A file within the limit is checked as before.
    small = tmp_path / "small.csv"
    small.write_bytes(postings_csv([posting_row(1)]))
    page.locator("#id_upload").set_input_files(small)
    expect(check).to_contain_text("All 1 row is good.")


def test_each_source_row_is_one_tab_stop_and_select_all_or_none_ticks_every_row(page: Page, user):
    ids = [
        Source.objects.create(
            owner=user, company=f"Company {n}", kind="greenhouse", identifier=f"c{n}"
        ).pk
        for n in range(1, 8)
    ]
    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/configure/")
    boxes = page.locator('#source-rows input[name="source"]')
    expect(boxes).to_have_count(7)
    expect(page.get_by_text("7 of 7 selected")).to_be_visible()

    page.get_by_role("button", name="Select none").click()
    for n in range(7):
        expect(boxes.nth(n)).not_to_be_checked()
    expect(page.get_by_text("0 of 7 selected")).to_be_visible()
    page.get_by_role("button", name="Select all").click()
    for n in range(7):
        expect(boxes.nth(n)).to_be_checked()

    # From the first row's box, five Tab presses reach the sixth row's.
    page.locator(f"#select-{ids[0]}").focus()
    for _ in range(5):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == f"select-{ids[5]}"
    # Inside a row the arrow keys reach its other controls, and down the next row's.
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Disable"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Disable Company 7"
    )


def test_a_failed_add_keeps_the_focus_on_the_form(page: Page, user):
    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/configure/")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#quick-url-error")).to_be_visible()
    expect(page.get_by_label("Careers URL")).to_be_focused()

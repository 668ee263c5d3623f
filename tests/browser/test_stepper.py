"""The stepper end to end in real Chromium: the real ASGI server, a real RQ worker and a board
on the local fixture server. Configure → Preview → Ingest, abort, reload, a second tab, and
another user."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from ingestion import services
from ingestion.models import Job, JobStatus, Source
from runs.models import IngestionRun, RunStatus
from tests.browser.conftest import ALICE_PASSWORD, BOB_PASSWORD, CHILD_ENV
from tests.fixture_server import FixtureServer, Reply
from tests.ingestion.boards import greenhouse_job, mount_greenhouse
from tests.ingestion.pages import posting_row, postings_csv
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def child_env_overrides(fixture_server: FixtureServer) -> dict[str, str]:
    return {
        **CHILD_ENV,
        "INTAKE_ALLOW_PRIVATE_NETWORK": "1",
        "INTAKE_GREENHOUSE_URL": fixture_server.base_url,
        "INTAKE_BATCH_SIZE": "5",
        "INTAKE_CHUNK_SIZE": "10",
        "INTAKE_PROGRESS_INTERVAL": "0.2",
    }


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))


def badge(page: Page):  # type: ignore[no-untyped-def]
    return page.locator('#run-status [data-role="badge"]')


def count(page: Page, name: str):  # type: ignore[no-untyped-def]
    """A live counter: an outcome ("new") or an ingest's job counter ("ready")."""
    return page.locator(f'#run-status [data-key="{name}"]')


def mark_document(page: Page) -> None:
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def slow_board(server: FixtureServer, count: int, delay: float) -> None:
    """A board whose listing lacks content: every job's detail is fetched, each slowly."""
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, count + 1)]
    mount_greenhouse(server, "acme", jobs, listing_content=False)
    for job in jobs:

        def detail(request, job=job):  # type: ignore[no-untyped-def]
            time.sleep(delay)
            return Reply(200, json.dumps(job).encode(), {"Content-Type": "application/json"})

        server.route(f"/v1/boards/acme/jobs/{job['id']}", handler=detail)


def test_the_whole_flow_from_an_empty_account_to_ingested_jobs(
    page: Page, fixture_server, user, worker, tmp_path, shot: Callable[[Page, str], None]
):
    mount_greenhouse(
        fixture_server,
        "acme",
        [greenhouse_job(i, f"Role {i} Engineer") for i in range(1, 7)]
        + [greenhouse_job(7, omit=["title"])],
    )
    csv_path = tmp_path / "initech.csv"
    csv_path.write_bytes(postings_csv([posting_row(n) for n in range(1, 5)]))

    sign_in(page, "alice", ALICE_PASSWORD)
    expect(page).to_have_url(re.compile(r"/configure/$"))
    expect(page.get_by_text("No sources yet")).to_be_visible()
    shot(page, "1-empty")

    # A Greenhouse board by pasting its URL.
    page.get_by_label("Careers URL").fill("https://boards.greenhouse.io/acme")
    page.get_by_label("Company (optional)").fill("Acme")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#source-rows tr")).to_have_count(1)
    expect(page.locator("#source-rows tr").first.locator('[data-role="kind"]')).to_contain_text(
        "Greenhouse"
    )

    # An uploaded CSV through the full form.
    page.get_by_role("link", name="More options").click()
    page.get_by_label("Kind").select_option("file")
    page.get_by_label("Company", exact=True).fill("Initech")
    page.get_by_label(re.compile(r"^File")).set_input_files(str(csv_path))
    page.get_by_role("button", name="Add source").click()
    expect(page).to_have_url(re.compile(r"/configure/$"))
    expect(page.locator("#source-rows tr")).to_have_count(2)
    shot(page, "2-configure")

    # Preview: live, then the diff.
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page).to_have_url(re.compile(r"/preview/\d+/$"))
    expect(badge(page)).to_have_text("Finished", timeout=30_000)
    results = page.locator("#run-results")
    expect(results.get_by_text("What an ingest would change")).to_be_visible(timeout=10_000)
    totals = results.locator(".outcome-table tfoot td.num")
    expect(totals.nth(0)).to_have_text("10")  # new: 6 from the board, 4 from the file
    expect(totals.nth(6)).to_have_text("1")  # invalid: the job without a title
    assert not Job.objects.exists()
    shot(page, "3-preview")

    # Ingest these results: the counts reach their final numbers without a reload.
    page.get_by_role("button", name="Ingest these results").click()
    expect(page).to_have_url(re.compile(r"/ingest/\d+/$"))
    mark_document(page)
    expect(badge(page)).to_have_text("Finished", timeout=60_000)
    expect(count(page, "ready")).to_have_text("10")
    expect(count(page, "new")).to_have_text("10")
    assert same_document(page), "the page reloaded instead of updating live"
    expect(page.locator('[data-role="jobs-link"]')).to_be_visible(timeout=10_000)
    shot(page, "4-ingested")

    run_id = int(re.search(r"/ingest/(\d+)/$", page.url).group(1))  # type: ignore[union-attr]
    report = page.request.get(page.locator('[data-role="report-json"]').get_attribute("href"))
    assert report.ok and report.json()["run"]["counts"]["ready"] == 10
    items = page.request.get(page.locator('[data-role="report-csv"]').get_attribute("href"))
    assert items.ok and items.text().count("\n") == 1 + 11  # header + every posting

    page.locator('[data-role="jobs-link"]').click()
    expect(page).to_have_url(re.compile(rf"/jobs/\?run={run_id}"))
    expect(page.get_by_text("Role 1 Engineer")).to_be_visible()
    shot(page, "5-jobs")
    assert Job.objects.filter(status=JobStatus.READY).count() == 10


def test_abort_during_ingest_shows_aborted_within_seconds_and_keeps_done_work(
    page: Page, fixture_server, user, worker, shot: Callable[[Page, str], None]
):
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    slow_board(fixture_server, 80, delay=0.1)
    sign_in(page, "alice", ALICE_PASSWORD)
    run = services.ingest_start(owner=user)
    page.goto("/start/")  # resumes the active run's step
    expect(page).to_have_url(re.compile(rf"/ingest/{run.pk}/$"))
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.READY).count() >= 5,
        timeout=30,
        what="some jobs done",
    )
    page.once("dialog", lambda dialog: dialog.accept())
    clicked = time.monotonic()
    page.locator('[data-role="abort"] button').click()
    expect(badge(page)).to_have_text("Aborted", timeout=5_000)
    assert time.monotonic() - clicked < 5
    shot(page, "aborted")
    run.refresh_from_db()
    ready = Job.objects.filter(status=JobStatus.READY).count()
    assert run.status == RunStatus.ABORTED and 0 < ready < 80
    assert run.jobs_ready == ready
    expect(count(page, "ready")).to_have_text(str(ready))


def test_a_reload_mid_run_resumes_the_live_view_and_a_second_tab_sees_the_same(
    page: Page,
    new_context: Callable[[], BrowserContext],
    fixture_server,
    user,
    worker,
    shot: Callable[[Page, str], None],
):
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    slow_board(fixture_server, 40, delay=0.1)
    sign_in(page, "alice", ALICE_PASSWORD)
    run = services.ingest_start(owner=user)
    second = new_context().new_page()
    sign_in(second, "alice", ALICE_PASSWORD)
    expect(second).to_have_url(re.compile(rf"/ingest/{run.pk}/$"))  # home resumed the run

    page.goto(f"/ingest/{run.pk}/")
    expect(count(page, "ready")).not_to_have_text("0", timeout=30_000)
    page.reload()
    mark_document(page)
    expect(page.locator('[data-role="live-state"]')).to_have_text("Live", timeout=10_000)
    shot(page, "reloaded")
    for tab in (page, second):
        expect(badge(tab)).to_have_text("Finished", timeout=60_000)
        expect(count(tab, "ready")).to_have_text("40")
    assert same_document(page)
    ids = page.locator("#run-feed li[data-event-id]").evaluate_all(
        "items => items.map(li => li.dataset.eventId)"
    )
    assert len(ids) == len(set(ids)), "an event was shown twice across the reload"


def test_another_user_sees_none_of_the_first_users_runs_jobs_or_stream(
    page: Page, fixture_server, user, other_user, worker, asgi
):
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    mount_greenhouse(fixture_server, "acme", [greenhouse_job(1, "Secret Role")])
    run = services.ingest_start(owner=user)
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=30, what="the run")
    job = Job.objects.get()
    sign_in(page, "bob", BOB_PASSWORD)
    for path in (
        f"/ingest/{run.pk}/",
        f"/runs/{run.pk}/",
        f"/runs/{run.pk}/stream/",
        f"/runs/{run.pk}/report.csv",
        f"/jobs/{job.pk}/",
    ):
        response = page.request.get(path)
        assert response.status == 404, path
    page.goto("/jobs/")
    expect(page.get_by_text("Secret Role")).to_have_count(0)
    page.goto("/runs/")
    expect(page.locator(f'a[href="/ingest/{run.pk}/"]')).to_have_count(0)


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


def test_a_preview_says_its_phase_live_and_its_counters_open_their_items(
    page: Page, fixture_server, user, worker, shot: Callable[[Page, str], None]
):
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 4)] + [
        greenhouse_job(9, omit=["title"])
    ]
    gate = threading.Event()

    def held_listing(request):  # type: ignore[no-untyped-def]
        # The board answers once the page has shown the run at work.
        gate.wait(timeout=15)
        body = json.dumps({"jobs": jobs, "meta": {"total": len(jobs)}}).encode()
        return Reply(200, body, {"Content-Type": "application/json"})

    fixture_server.route("/v1/boards/acme/jobs", handler=held_listing)
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    sign_in(page, "alice", ALICE_PASSWORD)
    page.goto("/configure/")
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page).to_have_url(re.compile(r"/preview/\d+/$"))
    try:
        # At work: the phase on the badge and the summary bar, never "Initializing"; a bar
        # with no value (no total yet), and the source's row being listed.
        expect(badge(page)).to_have_text("Listing and comparing", timeout=15_000)
        expect(page.locator('#summary-bar [data-summary="outcome"]')).to_have_text(
            "Listing and comparing"
        )
        progress = page.locator('[data-role="progress"]')
        assert progress.get_attribute("aria-valuemax") is None
        assert progress.get_attribute("aria-valuenow") is None
        expect(page.locator('#run-listing tr[data-state="listing"]')).to_have_count(1)
        shot(page, "1-listing")
    finally:
        gate.set()
    expect(badge(page)).to_have_text("Finished", timeout=30_000)
    expect(page.locator('#run-listing tr[data-state="listed"]')).to_have_count(1)
    expect(count(page, "new")).to_have_text("3")
    invalid = count(page, "invalid")
    expect(invalid).to_have_text("1")
    invalid.click()
    expect(page).to_have_url(re.compile(r"\?outcome=invalid#run-items$"))
    expect(page.locator("#run-items tbody tr[data-outcome]")).to_have_count(1, timeout=10_000)
    expect(page.locator('#run-items tr[data-outcome="invalid"]')).to_have_count(1)
    shot(page, "2-invalid-items")

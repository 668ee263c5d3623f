"""The run pages in real Chromium: start, follow live, abort, reload, SSE fallback, access."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, Request, Route, expect

from runs import services
from runs.models import IngestionRun, RunEvent, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.browser.conftest import ALICE_PASSWORD, BOB_PASSWORD
from tests.support import start_worker, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ACTIVE_BADGE = re.compile(r"^(Queued|Starting|Processing)$")
POSITIVE = re.compile(r"^[1-9]\d*$")
COUNTS = ["new", "updated", "ready", "skipped", "expired", "failed"]


def sign_in(page: Page, username: str, password: str) -> None:
    """Signs in through the real login form (which lands on the stepper), then opens the
    runs list."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))
    page.goto("/runs/")


def start_diagnostic(page: Page, *, items: int, delay: float) -> int:
    """Starts a run from the runs list's form; returns its id once its page is open."""
    page.goto("/runs/")
    page.get_by_text("Start a diagnostic run").click()
    page.get_by_label("Items").fill(str(items))
    page.get_by_label("Seconds per item").fill(str(delay))
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    return int(re.search(r"/runs/(\d+)/$", page.url).group(1))  # type: ignore[union-attr]


def mark_document(page: Page) -> None:
    """Tags the current document, so a later check can tell that no reload happened."""
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def badge(page: Page):  # type: ignore[no-untyped-def]
    return page.locator('[data-role="badge"]')


def count(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-count="{name}"]')


def counts(page: Page) -> dict[str, int]:
    return {name: int(count(page, name).inner_text().replace(",", "")) for name in COUNTS}


def feed_ids(page: Page) -> list[int]:
    ids = page.locator("#run-feed li[data-event-id]").evaluate_all(
        "items => items.map(li => li.dataset.eventId)"
    )
    return [int(i) for i in ids]


def stored_event_ids(run_id: int) -> list[int]:
    return list(RunEvent.objects.filter(run_id=run_id).order_by("id").values_list("id", flat=True))


def test_a_run_started_from_the_list_is_followed_live_to_the_end(
    page: Page, user, worker, shot: Callable[[Page, str], None]
):
    sign_in(page, "alice", ALICE_PASSWORD)
    shot(page, "1-runs-list")
    run_id = start_diagnostic(page, items=30, delay=0.1)
    mark_document(page)
    shot(page, "2-started")

    expect(badge(page)).to_have_text("Finished", timeout=30_000)
    expect(count(page, "ready")).to_have_text("30", timeout=5_000)
    shot(page, "3-finished")

    assert same_document(page), "the page reloaded instead of updating live"
    expect(page.locator('#run-feed li[data-event-id] code:text-is("run.finished")')).to_have_count(
        1
    )
    ids = feed_ids(page)
    assert len(ids) == len(set(ids)), f"duplicate feed items: {ids}"
    assert ids == stored_event_ids(run_id)
    expect(page.locator('[data-role="abort"]')).to_be_hidden()


def test_aborting_a_run_keeps_the_work_done_so_far(
    page: Page, user, worker, shot: Callable[[Page, str], None]
):
    sign_in(page, "alice", ALICE_PASSWORD)
    run_id = start_diagnostic(page, items=600, delay=0.05)
    expect(count(page, "ready")).to_have_text(POSITIVE, timeout=30_000)
    shot(page, "1-running")

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Abort").click()
    expect(badge(page)).to_have_text("Aborted", timeout=5_000)
    shot(page, "2-aborted")

    ready = int(count(page, "ready").inner_text())
    assert 0 < ready < 600
    run = IngestionRun.objects.get(pk=run_id)
    assert run.status == RunStatus.ABORTED
    assert run.jobs_ready == ready
    expect(page.locator('[data-role="abort"]')).to_be_hidden()


def test_a_slow_abort_response_does_not_leave_the_page_behind_the_run(
    page: Page, context: BrowserContext, user, worker, shot: Callable[[Page, str], None]
):
    sign_in(page, "alice", ALICE_PASSWORD)
    run_id = start_diagnostic(page, items=600, delay=0.05)
    expect(count(page, "ready")).to_have_text(POSITIVE, timeout=30_000)

    def slow_network(route: Route) -> None:
        # The abort response (a status fragment rendered before the worker stopped) arrives
        # after the stream has already delivered run.aborted, the last event there will be.
        response = route.fetch()
        wait_for(
            lambda: IngestionRun.objects.filter(pk=run_id, status=RunStatus.ABORTED).exists(),
            timeout=10,
            what="the worker to stop",
        )
        time.sleep(0.5)  # the network latency this test is about
        route.fulfill(response=response)

    context.route("**/abort/", slow_network)
    page.evaluate(
        "document.body.addEventListener('htmx:afterSettle', () => { window.__swapped = true })"
    )
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Abort").click()
    # Polled from here: wait_for_function evals its expression in the page, which the
    # Content-Security-Policy refuses (page.evaluate goes through the debugger instead).
    wait_for(
        lambda: page.evaluate("window.__swapped === true"),
        timeout=15,
        what="the abort response to be swapped in",
    )

    expect(badge(page)).to_have_text("Aborted", timeout=5_000)
    expect(page.locator('[data-role="abort"]')).to_be_hidden()
    ready = IngestionRun.objects.get(pk=run_id).jobs_ready
    expect(count(page, "ready")).to_have_text(str(ready))
    shot(page, "1-aborted")


def test_reloading_mid_run_resumes_the_live_view_without_duplicates(
    page: Page,
    new_context: Callable[[], BrowserContext],
    user,
    worker,
    shot: Callable[[Page, str], None],
):
    sign_in(page, "alice", ALICE_PASSWORD)
    run_id = start_diagnostic(page, items=80, delay=0.1)
    expect(count(page, "ready")).to_have_text(re.compile(r"^[1-9]\d+$"), timeout=30_000)

    page.reload()
    mark_document(page)
    # Read at once: the server-rendered page of a run still going.
    assert ACTIVE_BADGE.match(badge(page).inner_text())
    shot(page, "1-reloaded")

    second = new_context().new_page()
    sign_in(second, "alice", ALICE_PASSWORD)
    second.goto(f"/runs/{run_id}/")
    assert ACTIVE_BADGE.match(badge(second).inner_text())
    mark_document(second)

    for each in (page, second):
        expect(badge(each)).to_have_text("Finished", timeout=30_000)
        expect(count(each, "ready")).to_have_text("80", timeout=5_000)
        assert same_document(each), "the page reloaded instead of updating live"
    shot(page, "2-finished")
    shot(second, "3-second-browser-finished")

    stored = stored_event_ids(run_id)
    for each in (page, second):
        ids = feed_ids(each)
        assert len(ids) == len(set(ids)), f"duplicate feed items: {ids}"
        assert ids == stored
    assert counts(page) == counts(second) == IngestionRun.objects.get(pk=run_id).counts()


def test_the_page_falls_back_to_polling_when_the_stream_is_unavailable(
    page: Page, context: BrowserContext, user, worker, shot: Callable[[Page, str], None]
):
    sign_in(page, "alice", ALICE_PASSWORD)
    context.route("**/stream/**", lambda route: route.abort())
    polls: list[str] = []
    page.on("request", lambda req: polls.append(req.url) if "/events/" in req.url else None)

    start_diagnostic(page, items=40, delay=0.1)
    mark_document(page)
    live_state = page.locator('[data-role="live-state"]')
    expect(live_state).to_contain_text("interrupted", timeout=10_000)
    assert ACTIVE_BADGE.match(badge(page).inner_text()), "the run ended before the check"
    shot(page, "1-interrupted")

    expect(badge(page)).to_have_text("Finished", timeout=30_000)
    expect(count(page, "ready")).to_have_text("40")
    expect(live_state).to_have_text("")
    shot(page, "2-finished")
    assert same_document(page)
    assert polls, "the page never polled the events endpoint"
    ids = feed_ids(page)
    assert len(ids) == len(set(ids))


def test_another_user_cannot_see_a_run_that_is_not_theirs(
    page: Page,
    new_context: Callable[[], BrowserContext],
    user,
    other_user,
    redis_client,
    shot: Callable[[Page, str], None],
):
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    owner_page = new_context().new_page()
    sign_in(owner_page, "alice", ALICE_PASSWORD)
    assert owner_page.request.get(f"/runs/{run.pk}/events/").status == 200

    sign_in(page, "bob", BOB_PASSWORD)
    response = page.goto(f"/runs/{run.pk}/")
    assert response is not None and response.status == 404
    assert page.request.get(f"/runs/{run.pk}/events/").status == 404
    page.goto("/runs/")
    expect(page.locator("#run-table")).to_contain_text("No runs yet")
    expect(page.locator(f'a[href="/runs/{run.pk}/"]')).to_have_count(0)
    shot(page, "1-other-users-list")


def test_the_runs_list_shows_status_badges_and_filters_by_status(
    page: Page, user, shot: Callable[[Page, str], None], asgi
):
    def make(status: str, done: int) -> IngestionRun:
        # Rows as a worker leaves them; how they got there is other tests' business.
        started = timezone.now() - timedelta(seconds=30)
        return IngestionRun.objects.create(
            owner=user,
            kind=DIAGNOSTIC,
            status=status,
            total_jobs=10,
            items_done=done,
            jobs_ready=done,
            started_at=started,
            finished_at=started + timedelta(seconds=done),
        )

    finished = make(RunStatus.FINISHED, 10)
    aborted = make(RunStatus.ABORTED, 4)
    sign_in(page, "alice", ALICE_PASSWORD)
    table = page.locator("#run-table")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    row = rows.filter(has=page.locator(f'a[href="/runs/{finished.pk}/"]'))
    expect(row.locator('[data-role="badge"]')).to_have_text("Finished")
    expect(row).to_contain_text("10 / 10")
    row = rows.filter(has=page.locator(f'a[href="/runs/{aborted.pk}/"]'))
    expect(row.locator('[data-role="badge"]')).to_have_text("Aborted")
    shot(page, "1-all-runs")

    mark_document(page)
    page.get_by_label("Status").select_option("finished")
    expect(rows).to_have_count(1)
    expect(rows.first.locator('[data-role="badge"]')).to_have_text("Finished")
    expect(page).to_have_url(re.compile(r"[?&]status=finished"))
    assert same_document(page), "filtering reloaded the page instead of swapping the table"
    shot(page, "2-filtered-finished")


def test_a_burst_of_item_events_reaches_the_page_in_batches_with_every_line_and_count(
    page: Page, user, procs, tmp_path, child_env_overrides, shot: Callable[[Page, str], None]
):
    """A run failing most of its items as fast as it can: the stream coalesces its events
    into `batch` events, and the page applies them without falling back to fetching the
    events endpoint: every event is one feed line, in order, and the counters are right."""
    sign_in(page, "alice", ALICE_PASSWORD)
    run = services.run_start(
        owner=user, kind=DIAGNOSTIC, config={"items": 200, "delay": 0, "fail_every": 1}
    )
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"/runs/{run.pk}/")
    mark_document(page)
    expect(page.locator('[data-role="live-state"]')).to_have_text("Live", timeout=10_000)
    # A fetch after an applied event: the page found one missing (the quiet-time checks
    # while the run waits for its worker read from the run's first event).
    first = run.events.get().pk
    fetches: list[str] = []

    def note(request: Request) -> None:
        if re.search(r"/events/\?after=(\d+)$", request.url) and not request.url.endswith(
            f"after={first}"
        ):
            fetches.append(request.url)

    page.on("request", note)
    procs.append(start_worker(tmp_path, **child_env_overrides))

    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=120, what="the run")
    expect(badge(page)).to_have_text("Finished", timeout=10_000)
    expect(count(page, "failed")).to_have_text("200", timeout=5_000)
    shot(page, "1-finished")
    assert same_document(page)
    ids = feed_ids(page)
    assert ids == stored_event_ids(run.pk)
    assert len(ids) > 200
    assert not errors
    # Each batch the page could not apply would have sent it to the events endpoint.
    assert not fetches, f"catch-up fetches: {fetches}"

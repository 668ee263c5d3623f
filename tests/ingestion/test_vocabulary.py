"""One story on every surface: the run's phase while it works, its counters in the outcome
words (each a link to its items), numbers written one way, item lists whose filters live in
the URL."""

from __future__ import annotations

import re

import pytest

from ingestion import selectors, services
from ingestion.models import ItemOutcome
from runs import services as run_services
from runs import transitions
from runs.models import RunStatus
from runs.numbers import counted, number
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)


def _progressbar(page: str) -> str:
    match = re.search(r'<div class="progress[^"]*" role="progressbar"[^>]*>', page)
    assert match, "no progress bar"
    return match.group(0)


def _badge(page: str) -> str:
    match = re.search(r'data-role="badge">([^<]*)<', page)
    assert match
    return match.group(1)


def test_numbers_have_a_thousands_separator_and_plurals_agree():
    assert number(11000) == "11,000" and number(1234.6) == "1,235" and number(None) == ""
    assert counted(1, "bad row") == "1 bad row"
    assert counted(11000, "job") == "11,000 jobs"
    assert counted(2, "entry", "entries") == "2 entries"


def test_a_queued_preview_says_queued_with_an_indeterminate_bar(signed_in, user, greenhouse_source):
    run = services.preview_start(owner=user)
    page = signed_in.get(f"/preview/{run.pk}/").content.decode()
    assert _badge(page) == "Queued"
    bar = _progressbar(page)
    # No total yet: no value at all (not aria-valuemax=0), and the bar says so by its look.
    assert "aria-valuemax" not in bar and "aria-valuenow" not in bar
    assert "progress-indeterminate" in bar
    assert "Pending" not in page.split('id="summary-bar"')[1].split("</section>")[0]


def test_a_working_run_says_what_it_does_on_the_page_the_summary_bar_and_the_feed(
    signed_in, user, greenhouse_source
):
    run = services.preview_start(owner=user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    page = signed_in.get(f"/preview/{run.pk}/").content.decode()
    assert _badge(page) == "Listing and comparing"
    assert f'data-summary="outcome" data-run-id="{run.pk}">Listing and comparing<' in page
    assert "Initializing" not in page
    event = run.events.get(type="run.initializing")
    assert event.message.startswith("Listing and comparing.")
    assert event.snapshot["phase"] == "Listing and comparing"


def test_an_ingest_gets_a_determinate_bar_and_an_eta_once_its_total_is_known(
    signed_in, user, greenhouse_source
):
    run = services.ingest_start(owner=user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    page = signed_in.get(f"/ingest/{run.pk}/").content.decode()
    assert _badge(page) == "Listing, comparing and writing"
    transitions.run_transition(run, to=RunStatus.INGESTING)
    run_services.run_update_progress(run, total=11000, done=1000)
    page = signed_in.get(f"/ingest/{run.pk}/").content.decode()
    assert _badge(page) == "Processing jobs"
    # The source is still being listed: the total grows, so the bar claims no value yet.
    assert "aria-valuemax" not in _progressbar(page)
    assert "1,000 of 11,000 listed so far done" in page and "min left" not in page
    source = {"sourceId": greenhouse_source.pk, "label": "Acme", "listed": 11000, "seconds": 2}
    run_services.run_set_summary(run, {"sources": [source]})
    page = signed_in.get(f"/ingest/{run.pk}/").content.decode()
    bar = _progressbar(page)
    assert 'aria-valuemax="11000"' in bar and 'aria-valuenow="1000"' in bar
    assert "progress-indeterminate" not in bar
    assert "1,000 of 11,000 done" in page
    assert re.search(r"1,000 of 11,000 done · [\d,]+/s · (about \d+ (h|min)|under a minute)", page)
    run.refresh_from_db()
    assert run.snapshot()["etaSeconds"] is not None


def _mixed_preview(boards, work, user):  # type: ignore[no-untyped-def]
    mount_greenhouse(
        boards,
        "acme",
        [greenhouse_job(i, f"Role {i}") for i in range(1, 4)] + [greenhouse_job(9, omit=["title"])],
    )
    return work(services.preview_start(owner=user))


def test_the_live_counters_are_the_outcomes_kept_while_it_ran(
    boards, work, user, greenhouse_source
):
    run = _mixed_preview(boards, work, user)
    # Counted as the listing went, equal to the items' outcomes once it ended.
    assert run.outcome_counts == {k: v for k, v in selectors.outcome_counts(run).items() if v}
    assert run.outcome_counts == {"new": 3, "invalid": 1}
    summary = run.events.get(type="run.summary")
    assert summary.message.startswith("Preview: 3 new, 1 invalid.")


def test_each_live_counter_is_an_outcome_word_linking_to_its_items(
    boards, work, signed_in, user, greenhouse_source
):
    run = _mixed_preview(boards, work, user)
    page = signed_in.get(f"/preview/{run.pk}/").content.decode()
    status = page.split('id="run-status"')[1].split("</section>")[0]
    labels = re.findall(r"<dt>([^<]+)</dt>", status)
    assert labels == [label for _, label in ItemOutcome.choices]
    assert "Skipped" not in status and "Failed" not in status and "Ready" not in status
    link = f'href="/preview/{run.pk}/?outcome=invalid#run-items"'
    assert re.search(re.escape(link) + r'[^>]*data-key="invalid"[^>]*>1</a>', status)
    # The link opens the items filtered by that outcome.
    filtered = signed_in.get(f"/preview/{run.pk}/", {"outcome": "invalid"}).content.decode()
    assert filtered.count("<tr data-outcome=") == 1 and 'data-outcome="invalid"' in filtered


def test_an_ingest_counts_its_jobs_by_status_beside_the_outcomes(
    boards, work, signed_in, user, greenhouse_source
):
    mount_greenhouse(
        boards, "acme", [greenhouse_job(1, "Role 1"), greenhouse_job(9, omit=["title"])]
    )
    run = work(services.ingest_start(owner=user))
    # The invalid row never became a job: an invalid outcome, no failed job.
    assert run.jobs_failed == 0 and run.outcome_counts == {"new": 1, "invalid": 1}
    page = signed_in.get(f"/ingest/{run.pk}/").content.decode()
    assert f'href="/ingest/{run.pk}/?status=ready#run-items"' in page
    assert "<dt>Jobs ready</dt>" in page and "<dt>Jobs error</dt>" in page
    assert "Postings: 1 new, 1 invalid. Jobs: 1 ready, 0 skipped, 0 error." in page


def test_the_items_filters_and_page_live_in_the_step_pages_url(
    boards, work, signed_in, user, greenhouse_source
):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 121)])
    run = work(services.preview_start(owner=user))
    page = signed_in.get(f"/preview/{run.pk}/", {"page": 3, "outcome": "new"}).content.decode()
    assert page.count("<tr data-outcome=") == 20 and "Page 3 of 3 · 120 postings" in page
    assert f'hx-get="/preview/{run.pk}/?page=2&amp;outcome=new' in page
    assert 'hx-push-url="true"' in page
    # The htmx request for the same URL gets the items table alone.
    fragment = signed_in.get(
        f"/preview/{run.pk}/", {"page": 2}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-items"
    ).content.decode()
    assert fragment.lstrip().startswith('<section id="run-items"')
    assert fragment.count("<tr data-outcome=") == 50


def test_the_runs_history_counts_in_the_outcome_words(
    boards, work, signed_in, user, greenhouse_source
):
    run = _mixed_preview(boards, work, user)
    page = signed_in.get("/runs/").content.decode()
    assert f'<a href="/preview/{run.pk}/?outcome=new#run-items">3 new</a>' in page
    assert f'<a href="/preview/{run.pk}/?outcome=invalid#run-items">1 invalid</a>' in page
    assert "skip" not in page.split('id="run-table"')[1]


def test_the_added_message_counts_rows_in_words_that_agree(user):
    from ingestion.adapters.readers import UploadReport
    from ingestion.models import Source
    from ingestion.views.sources import _added_message

    source = Source(owner=user, company="Acme", kind="file", identifier="jobs.csv")
    text = _added_message(source, UploadReport(fmt="csv", good=11000, bad=1))
    assert text.endswith("11,000 good rows will be ingested; 1 bad row reported.")


def _listing(page: str) -> list[tuple[str, str, str]]:
    section = page.split('id="run-listing"')[1].split("</section>")[0]
    return re.findall(
        r'<tr data-source-id="\d+" data-state="(\w+)".*?'
        r'data-role="listing-count">([^<]*)<.*?data-role="listing-time">([^<]*)<',
        section,
        re.S,
    )


def test_the_listing_shows_a_row_per_source_apart_from_the_processing_bar(
    boards, work, signed_in, user, greenhouse_source
):
    from ingestion.models import Source

    Source.objects.create(owner=user, company="Beta", kind="greenhouse", identifier="beta")
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 4)])
    mount_greenhouse(boards, "beta", [greenhouse_job(i, f"Beta {i}") for i in range(1, 3)])
    run = services.preview_start(owner=user)
    queued = signed_in.get(f"/preview/{run.pk}/").content.decode()
    assert [state for state, _, _ in _listing(queued)] == ["waiting", "waiting"]
    # While the first source is listed: its row counts what was read so far.
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    run_services.run_update_progress(run, outcomes={"new": 2})
    working = signed_in.get(f"/preview/{run.pk}/").content.decode()
    assert _listing(working) == [("listing", "2", ""), ("waiting", "0", "")]
    run_services.run_fail(run, message="stopped by the test")
    ended = _listing(signed_in.get(f"/preview/{run.pk}/").content.decode())
    assert [state for state, _, _ in ended] == ["unread", "unread"]

    run = work(services.preview_start(owner=user))
    assert run.status == RunStatus.FINISHED
    done = _listing(signed_in.get(f"/preview/{run.pk}/").content.decode())
    assert [(state, count) for state, count, _ in done] == [("listed", "3"), ("listed", "2")]
    assert all(seconds.endswith(" s") for _, _, seconds in done)

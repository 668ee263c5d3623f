"""An ingest that ended before processing what it listed says what it left, and Resume
processes those jobs in a new run without reading the boards again; Retry says why it is not
offered when the failures were invalid postings."""

from __future__ import annotations

import pytest

from ingestion import services
from ingestion.models import Job, JobStatus, RunItem
from runs import execution
from runs import services as run_services
from runs.exceptions import RunInProgress
from runs.models import IngestionRun, RunStatus
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)


def _aborted_after_listing(boards, work, user) -> IngestionRun:  # type: ignore[no-untyped-def]
    """An ingest aborted once its listing wrote five pending jobs, before a chunk ran."""
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 6)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    run = services.ingest_start(owner=user)
    # The listing on this process (the run's own queued job is then skipped: it is running);
    # its chunks are queued for the worker, which finds the abort at its first checkpoint.
    assert execution.run_pick_up(run.pk) == "deferred"
    run_services.run_request_abort(run)
    run = work(run)
    assert run.status == RunStatus.ABORTED
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 5
    return run


def test_an_aborted_ingest_says_what_it_left_and_offers_resume(
    boards, work, signed_in, user, greenhouse_source
):
    run = _aborted_after_listing(boards, work, user)
    page = signed_in.get(f"/ingest/{run.pk}/").content.decode()
    assert "5 jobs still pending." in page and "was aborted" in page
    assert f'action="/runs/{run.pk}/resume/"' in page and 'data-role="resume"' in page


def test_resume_processes_the_pending_jobs_without_reading_the_boards_again(
    boards, work, signed_in, user, greenhouse_source
):
    run = _aborted_after_listing(boards, work, user)
    listings = boards.hits.get("/v1/boards/acme/jobs", 0)
    response = signed_in.post(f"/runs/{run.pk}/resume/")
    resumed = IngestionRun.objects.latest("id")
    assert response["Location"] == f"/ingest/{resumed.pk}/"
    assert resumed.config["resume_of"] == run.pk
    # One active run per user still holds.
    with pytest.raises(RunInProgress):
        services.ingest_resume(owner=user, run=run)
    resumed = work(resumed)
    assert resumed.status == RunStatus.FINISHED
    assert Job.objects.filter(status=JobStatus.READY).count() == 5
    assert boards.hits.get("/v1/boards/acme/jobs", 0) == listings
    # The items keep their listing's outcome; the counters say so in the same words.
    assert resumed.outcome_counts == {"new": 5} and resumed.jobs_ready == 5
    assert set(RunItem.objects.filter(run=resumed).values_list("job_status", flat=True)) == {
        JobStatus.READY
    }
    # Nothing is left to resume.
    page = signed_in.get(f"/ingest/{run.pk}/").content.decode()
    assert 'data-role="resume"' not in page
    with pytest.raises(services.SourceError, match="left no pending jobs"):
        services.ingest_resume(owner=user, run=run)


def test_a_finished_ingest_cannot_be_resumed(boards, work, signed_in, user, greenhouse_source):
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Role 1")])
    run = work(services.ingest_start(owner=user))
    response = signed_in.post(f"/runs/{run.pk}/resume/", follow=True)
    assert "only an aborted or failed ingest can be resumed" in response.content.decode()
    assert IngestionRun.objects.count() == 1


def test_retry_is_not_offered_for_invalid_postings_and_says_why(
    boards, work, signed_in, user, greenhouse_source
):
    mount_greenhouse(
        boards,
        "acme",
        [greenhouse_job(1, "Role 1")] + [greenhouse_job(i, omit=["title"]) for i in (8, 9)],
    )
    run = work(services.ingest_start(owner=user))
    page = signed_in.get(f"/ingest/{run.pk}/").content.decode()
    assert 'data-role="retry"' not in page
    assert "2 postings could not be read or were invalid and have no job to retry" in page

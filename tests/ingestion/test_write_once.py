"""A listing that carries its postings' descriptions writes their jobs once, in their final
state (ingestion.pipeline.content): no chunk processes them, and they end as the chunks would
have left them. A listing without the descriptions still goes through chunks."""

from __future__ import annotations

import re

import pytest

from ingestion import normalize, services
from ingestion.models import ItemOutcome, Job, JobFingerprint, JobStatus, RunItem, Source, WorkChunk
from ingestion.pipeline import process
from runs.models import IngestionRun, OutboxEvent, RunStatus
from tests.ingestion.boards import description_html, greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)

JOB_FIELDS = (
    "external_id",
    "status",
    "title",
    "description",
    "description_text",
    "raw_description",
    "needs_detail",
    "location",
    "remote",
    "workplace_type",
    "employment_type",
    "salary_min",
    "salary_max",
    "salary_currency",
    "salary_period",
    "error_message",
)
ITEM_FIELDS = ("external_id", "outcome", "job_status", "reason", "attempts")


def board() -> list[dict[str, object]]:
    return [
        greenhouse_job(
            1, "Backend Engineer", location="Berlin ;  Remote", pay=(90_000, 120_000, "EUR")
        ),
        greenhouse_job(2, "Designer", location="Lisbon, Portugal", employment_type="Part-time"),
        greenhouse_job(
            3, "Sales Lead", location="Toronto", content="<p>Close deals</p><script>x</script>"
        ),
        greenhouse_job(
            4, "Support Agent", location="Remote - Anywhere", employment_type="CONTRACTOR"
        ),
        greenhouse_job(5, omit=["title"]),  # invalid: never a job
    ]


def processed_batches(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    original = process.BatchProcessor.process

    def spy(self, ids, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(ids))
        return original(self, ids, **kwargs)

    monkeypatch.setattr(process.BatchProcessor, "process", spy)
    return calls


def jobs_of(owner) -> list[tuple]:  # type: ignore[no-untyped-def]
    return list(Job.objects.filter(owner=owner).order_by("external_id").values_list(*JOB_FIELDS))


def items_of(run: IngestionRun) -> list[tuple]:
    return list(RunItem.objects.filter(run=run).order_by("external_id").values_list(*ITEM_FIELDS))


def counts(run: IngestionRun) -> tuple:
    return (
        run.status,
        run.total_jobs,
        run.items_done,
        run.jobs_new,
        run.jobs_ready,
        run.jobs_skipped,
        run.jobs_failed,
        run.outcome_counts,
    )


def job_events(run: IngestionRun) -> list[tuple[str, str, str, list[str]]]:
    """(type, status, stage, external ids) of the run's job events, in order."""
    names = dict(Job.objects.values_list("id", "external_id"))
    return [
        (
            e.event_type,
            e.payload["status"],
            e.payload.get("stage", ""),
            sorted(names[pk] for pk in e.payload["jobIds"]),
        )
        for e in OutboxEvent.objects.filter(run_id=run.pk, event_type__startswith="job.").order_by(
            "id"
        )
    ]


def test_a_listing_with_the_descriptions_writes_each_job_once_as_the_chunks_would(
    boards, work, user, other_user, monkeypatch
):
    jobs = board()
    mount_greenhouse(boards, "acme", jobs)
    mount_greenhouse(boards, "detailco", jobs, listing_content=False)
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(
        owner=other_user, company="Acme", kind="greenhouse", identifier="detailco"
    )
    calls = processed_batches(monkeypatch)

    listed = work(services.ingest_start(owner=user))
    assert calls == []  # no chunk: the listing wrote every job processed
    assert not WorkChunk.objects.filter(run=listed, number__gt=0).exists()
    fetched = work(services.ingest_start(owner=other_user))
    assert sum(calls) == 4  # the details fetched, the jobs processed in chunks
    assert WorkChunk.objects.filter(run=fetched, number__gt=0).exists()

    # The same jobs, items, counts and job events either way (but the content hash and the
    # simhash: a listing without the descriptions has neither them nor a boilerplate sample).
    for mine, theirs in zip(jobs_of(user), jobs_of(other_user), strict=True):
        differ = [f for f, a, b in zip(JOB_FIELDS, mine, theirs, strict=True) if a != b]
        assert differ == [], (mine, theirs)
    assert {j[1] for j in jobs_of(user)} == {JobStatus.READY}
    assert not Job.objects.filter(simhash=None).exists()
    assert items_of(listed) == items_of(fetched)
    assert counts(listed) == counts(fetched)
    assert counts(listed)[:3] == (RunStatus.FINISHED, 4, 4)
    assert (
        job_events(listed)
        == job_events(fetched)
        == [
            ("job.created", "pending", "listing", ["1", "2", "3", "4"]),
            ("job.updated", "ready", "processing", ["1", "2", "3", "4"]),
        ]
    )
    # Ready jobs are in the near-duplicate lookup, as the chunks leave them.
    assert JobFingerprint.objects.filter(owner=user).count() == 4
    # The run went through the processing phase, as with chunks.
    assert "run.ingesting" in set(listed.events.values_list("type", flat=True))


def test_a_near_duplicate_decided_by_the_listing_is_written_skipped_at_once(
    boards, work, user, greenhouse_source, monkeypatch
):
    text = description_html(7, title="Data Engineer", size=2000)
    jobs = [
        greenhouse_job(1, "Data Engineer", content=text),
        greenhouse_job(2, "Data Engineer", content=text + "<p>Apply now.</p>"),
    ]
    mount_greenhouse(boards, "acme", jobs)
    calls = processed_batches(monkeypatch)
    run = work(services.ingest_start(owner=user))
    assert calls == []
    original, copy = Job.objects.order_by("external_id")
    assert (original.status, copy.status) == (JobStatus.READY, JobStatus.SKIPPED)
    assert copy.duplicate_of_id == original.pk and copy.description and copy.raw_description == ""
    item = RunItem.objects.get(run=run, external_id="2")
    assert (item.outcome, item.job_status, item.attempts) == (ItemOutcome.DUPLICATE, "skipped", 1)
    assert f"job #{original.pk}" in item.reason
    assert (run.total_jobs, run.items_done, run.jobs_ready, run.jobs_skipped) == (2, 2, 1, 1)
    duplicate = OutboxEvent.objects.get(run_id=run.pk, event_type="job.duplicate")
    assert duplicate.payload["duplicateOf"] == {str(copy.pk): original.pk}
    assert list(JobFingerprint.objects.values_list("job_id", flat=True)) == [original.pk]


def test_a_job_whose_processing_fails_in_the_listing_is_an_error_retry_failed_redoes(
    boards, work, user, greenhouse_source, monkeypatch
):
    sanitize = normalize.sanitize_html_as_written

    def broken(html: str) -> tuple[str, bool]:
        if "BROKEN" in html:
            raise RuntimeError("sanitizer crashed")
        return sanitize(html)

    monkeypatch.setattr(normalize, "sanitize_html_as_written", broken)
    jobs = [
        greenhouse_job(1, "Backend Engineer"),
        greenhouse_job(
            2, "Frontend Engineer", content="<p>BROKEN markup for the frontend role</p>"
        ),
    ]
    mount_greenhouse(boards, "acme", jobs)
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    failed = Job.objects.get(external_id="2")
    assert failed.status == JobStatus.ERROR
    assert failed.error_message == "unexpected error: RuntimeError: sanitizer crashed"
    assert "BROKEN" in failed.raw_description and failed.description == ""  # kept for a retry
    item = RunItem.objects.get(run=run, external_id="2")
    assert (item.outcome, item.job_status, item.reason) == ("new", "error", failed.error_message)
    assert (run.jobs_ready, run.jobs_failed, run.items_done, run.total_jobs) == (1, 1, 2, 2)
    assert "sanitizer crashed" in run.events.get(type="job.failed").message
    assert ("job.updated", "error", "processing", ["2"]) in job_events(run)
    assert not JobFingerprint.objects.filter(job=failed).exists()

    monkeypatch.setattr(normalize, "sanitize_html_as_written", sanitize)
    retry = work(services.ingest_retry_failed(owner=user, run=run))
    assert retry.status == RunStatus.FINISHED, retry.error_message
    failed.refresh_from_db()
    assert failed.status == JobStatus.READY and "BROKEN" in failed.description_text


def test_a_file_without_near_duplicates_needs_no_chunk_and_counts_its_jobs(work, user, monkeypatch):
    import io

    from tests.ingestion.pages import posting_row, postings_csv

    rows = [posting_row(n) for n in range(1, 9)]
    services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=io.BytesIO(postings_csv(rows)),
        upload_name="jobs.csv",
    )
    calls = processed_batches(monkeypatch)
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert calls == []
    assert (run.total_jobs, run.items_done, run.jobs_ready) == (8, 8, 8)
    assert set(RunItem.objects.filter(run=run).values_list("job_status", "attempts")) == {
        ("ready", 1)
    }
    ingesting = run.events.get(type="run.ingesting")
    assert re.search(r"as they are listed", ingesting.message)


def test_a_listing_with_some_descriptions_writes_those_once_and_chunks_the_rest(
    boards, work, user, monkeypatch
):
    # The listing writes the first jobs processed (the run is then ingesting), and the job
    # whose description only its detail page has goes to a chunk afterwards: the run finishes.
    jobs = [*board(), greenhouse_job(6, "Data Engineer", content=None)]
    mount_greenhouse(boards, "acme", jobs)
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    calls = processed_batches(monkeypatch)

    run = work(services.ingest_start(owner=user))

    assert calls == [1]  # only the detail-needing job, through one chunk
    assert run.status == RunStatus.FINISHED
    statuses = dict(Job.objects.filter(owner=user).values_list("external_id", "error_message"))
    assert statuses == {"1": "", "2": "", "3": "", "4": "", "6": statuses["6"]}
    # The fixture board's detail page has no description for it: processed, in its chunk.
    assert "description" in statuses["6"]
    assert counts(run)[:3] == (RunStatus.FINISHED, 5, 5)


def test_a_new_jobs_fingerprint_is_inserted_and_an_updated_jobs_replaced(
    boards, work, user, greenhouse_source, monkeypatch
):
    # A new posting's job was inserted by the same transaction: its fingerprint goes in
    # without a conflict check (store_fingerprints' `new`); an updated job's replaces the
    # one it had.
    from ingestion import store
    from tests.ingestion.boards import edited_board

    stored: list[tuple[str, bool]] = []
    original = store.store_fingerprints

    def spy(rows, *, new=False):  # type: ignore[no-untyped-def]
        names = dict(
            Job.objects.filter(pk__in=[r.job_id for r in rows]).values_list("id", "external_id")
        )
        stored.extend((names[r.job_id], new) for r in rows)
        return original(rows, new=new)

    monkeypatch.setattr(store, "store_fingerprints", spy)
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i} Engineer") for i in range(1, 6)])
    work(services.ingest_start(owner=user))
    assert sorted(stored) == [(str(i), True) for i in range(1, 6)]

    stored.clear()
    mount_greenhouse(boards, "acme", edited_board())  # 1 gone, 2 edited, 7 new
    work(services.ingest_start(owner=user))
    assert sorted(stored) == [("2", False), ("7", True)]
    ready = Job.objects.filter(owner=user, status=JobStatus.READY)
    assert sorted(ready.values_list("external_id", flat=True)) == ["2", "3", "4", "5", "7"]
    assert {(f.job_id, f.simhash) for f in JobFingerprint.objects.filter(owner=user)} == set(
        ready.values_list("id", "simhash")
    )

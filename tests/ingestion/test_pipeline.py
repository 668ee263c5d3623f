"""Preview and ingest end to end: real board fixtures over HTTP, real Redis, a real RQ worker
(burst mode, in process) on the real database."""

from __future__ import annotations

import io
import time

import pytest
from django.test import Client
from django.utils import timezone

from ingestion import services
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source, WorkChunk
from ingestion.pipeline import chunks, process
from ingestion.pipeline.diff import SourceDiff
from ingestion.selectors import outcome_counts
from runs.models import RunStatus
from tests.fixture_server import Reply
from tests.ingestion.boards import (
    description_html,
    edited_board,
    greenhouse_job,
    job_title,
    lever_postings,
    mount_greenhouse,
)
from tests.ingestion.pages import (
    COMPANY,
    jsonld_posting,
    mount_careers_site,
    mount_posting_pages,
    posting_row,
    postings_csv,
    postings_jsonl,
    url_list_csv,
)

pytestmark = pytest.mark.django_db(transaction=True)


def job_rows() -> list[tuple]:
    return list(
        Job.objects.order_by("company", "external_id").values_list(
            "company",
            "external_id",
            "title",
            "status",
            "content_hash",
            "description",
            "simhash",
            "duplicate_of__external_id",
            "expired_at",
            "last_seen_at",
        )
    )


def event_types(run) -> list[str]:  # type: ignore[no-untyped-def]
    return list(run.events.order_by("seq").values_list("type", flat=True))


def board_v1() -> list[dict]:
    return [greenhouse_job(i, f"Role {i} Engineer") for i in range(1, 6)] + [
        greenhouse_job(6, omit=["title"])
    ]


def test_an_ingest_writes_ready_jobs_and_a_snapshot_of_its_counts(
    boards, work, user, greenhouse_source
):
    mount_greenhouse(boards, "acme", board_v1())
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    jobs = Job.objects.order_by("external_id")
    assert [j.external_id for j in jobs] == ["1", "2", "3", "4", "5"]
    assert {j.status for j in jobs} == {JobStatus.READY}
    job = jobs[0]
    assert job.company == "Acme" and job.title == "Role 1 Engineer"
    assert "<script" not in job.description and job.description.startswith("<")
    assert job.description_text and job.simhash is not None and job.raw_description == ""
    # The invalid posting is an outcome, not a failed job: it never became one.
    assert (run.jobs_new, run.jobs_ready, run.jobs_failed, run.total_jobs) == (5, 5, 0, 5)
    assert run.outcome_counts == {"new": 5, "invalid": 1}
    invalid = RunItem.objects.get(run=run, outcome=ItemOutcome.INVALID)
    assert invalid.external_id == "6" and "title" in invalid.reason
    assert "title" in run.events.get(type="item.invalid").message
    types = event_types(run)
    for expected in ("run.started", "source.fetched", "run.ingesting", "run.summary"):
        assert expected in types
    assert types[-1] == "run.finished"


def test_a_preview_reports_every_outcome_and_writes_no_job(boards, work, user, greenhouse_source):
    mount_greenhouse(boards, "acme", board_v1())
    work(services.ingest_start(owner=user))
    greenhouse_source.exclude_keywords = ["Sales"]
    greenhouse_source.save()
    before = job_rows()

    board_v2 = [
        # 1 removed → expired
        greenhouse_job(2, "Role 2 Engineer (edited)"),  # → updated
        greenhouse_job(3, "Role 3 Engineer"),  # unchanged
        greenhouse_job(4, "Role 4 Engineer"),
        greenhouse_job(5, "Role 5 Engineer"),
        greenhouse_job(6, omit=["title"]),  # invalid
        greenhouse_job(7, "Role 7 Engineer"),  # new
        greenhouse_job(7, "Role 7 Engineer"),  # duplicate (listed twice)
        greenhouse_job(9, "Sales Director"),  # filtered
    ]
    mount_greenhouse(boards, "acme", board_v2)
    preview = work(services.preview_start(owner=user))

    assert preview.status == RunStatus.FINISHED, preview.error_message
    assert job_rows() == before  # nothing written to jobs
    counts = outcome_counts(preview)
    assert counts == {
        "new": 1,
        "updated": 1,
        "unchanged": 3,
        "expired": 1,
        "duplicate": 1,
        "filtered": 1,
        "invalid": 1,
        "error": 0,
    }
    assert RunItem.objects.get(run=preview, outcome="filtered").reason.startswith(
        "matches the exclude keyword 'Sales'"
    )
    assert "listed twice" in RunItem.objects.get(run=preview, outcome="duplicate").reason
    assert RunItem.objects.get(run=preview, outcome="expired").external_id == "1"
    (per_source,) = preview.summary["sources"]
    assert per_source["counts"]["new"] == 1 and per_source["listed"] == 8
    assert (preview.jobs_new, preview.jobs_updated, preview.jobs_expired) == (1, 1, 1)


def test_a_second_ingest_after_the_board_changed_expires_updates_adds_and_revives(
    boards, work, user, greenhouse_source
):
    mount_greenhouse(boards, "acme", board_v1())
    work(services.ingest_start(owner=user))
    mount_greenhouse(boards, "acme", edited_board())
    second = work(services.ingest_start(owner=user))
    assert second.status == RunStatus.FINISHED, second.error_message
    jobs = {j.external_id: j for j in Job.objects.all()}
    assert jobs["1"].status == JobStatus.EXPIRED and jobs["1"].expired_at is not None
    assert jobs["2"].status == JobStatus.READY and jobs["2"].title == "Role 2 Engineer (edited)"
    assert jobs["7"].status == JobStatus.READY
    assert (second.jobs_new, second.jobs_updated, second.jobs_expired) == (1, 1, 1)
    assert second.total_jobs == 2  # only the new and the edited one were processed again

    # Job 1 is listed again: it comes back to life.
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i} Engineer") for i in (1, 3)])
    Source.objects.filter(pk=greenhouse_source.pk).update(options={"expiry_min_ratio": 0})
    third = work(services.ingest_start(owner=user))
    revived = Job.objects.get(external_id="1")
    assert revived.status == JobStatus.READY and revived.expired_at is None
    item = RunItem.objects.get(run=third, job=revived)
    assert item.outcome == ItemOutcome.UPDATED and "again" in item.reason


def test_the_same_ingest_twice_gives_the_same_rows(boards, work, user, greenhouse_source):
    mount_greenhouse(boards, "acme", board_v1())
    work(services.ingest_start(owner=user))
    first = [row[:-1] for row in job_rows()]  # all but last_seen_at
    again = work(services.ingest_start(owner=user))
    assert [row[:-1] for row in job_rows()] == first
    assert again.jobs_new == again.jobs_updated == again.total_jobs == 0
    assert outcome_counts(again)["unchanged"] == 5


def test_a_failed_source_does_not_expire_its_jobs_and_the_run_goes_on(boards, work, user):
    acme = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(owner=user, company="Globex", kind="greenhouse", identifier="globex")
    mount_greenhouse(boards, "acme", board_v1())
    mount_greenhouse(boards, "globex", [greenhouse_job(50, "Globex Role")])
    work(services.ingest_start(owner=user))
    boards.route("/v1/boards/acme/jobs", status=500, body="down for maintenance")
    mount_greenhouse(boards, "globex", [greenhouse_job(51, "Another Globex Role")])

    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED
    assert Job.objects.filter(source=acme, status=JobStatus.READY).count() == 5
    assert Job.objects.get(external_id="50").status == JobStatus.EXPIRED  # globex was read
    failed = run.events.get(type="source.failed")
    assert "Acme" in failed.message and "500" in failed.message
    acme.refresh_from_db()
    assert acme.last_fetch_ok is False and "500" in acme.last_fetch_error


def test_a_run_whose_every_source_failed_ends_in_error_saying_why(
    boards, work, user, greenhouse_source
):
    run = work(services.ingest_start(owner=user))  # nothing mounted: the board is a 404
    assert run.status == RunStatus.ERROR
    assert run.error_message.startswith("Every source failed, so nothing was read. Acme")
    assert run.error_message.endswith(".") and ".." not in run.error_message
    assert ".." not in run.events.get(type="source.failed").message


def test_a_run_whose_every_source_failed_partway_goes_on_with_what_it_read(boards, work, user):
    import json

    Source.objects.create(owner=user, company="Acme", kind="lever", identifier="acme")
    postings = list(lever_postings(1200))

    def pages(request):  # type: ignore[no-untyped-def]
        skip, limit = int(request.arg("skip", "0")), int(request.arg("limit", "0"))
        if skip >= 1100:  # the board breaks on its last page
            return Reply(500, b"upstream broke")
        page = postings[skip : skip + limit]
        return Reply(200, json.dumps(page).encode(), {"Content-Type": "application/json"})

    boards.route("/v0/postings/acme", handler=pages)
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    # The first 1,000 (one listing batch) were written before the failure, and processed.
    assert Job.objects.filter(status=JobStatus.READY).count() == 1000
    assert (run.total_jobs, run.items_done) == (1000, 1000)
    incomplete = run.events.get(type="run.incomplete")
    assert incomplete.message.startswith(
        "Every source failed before the end of its listing; the run goes on with the 1,000 "
        "postings read before that. Acme (Lever"
    )
    assert incomplete.message.endswith("answered 500.")
    failed = run.events.get(type="source.failed").message
    assert failed.startswith("Acme (Lever")
    assert "failed after 1,000 postings were read: " in failed
    assert failed.endswith(". Its jobs are not expired.") and ".." not in failed


def test_expiry_is_held_back_when_a_source_suddenly_lists_far_fewer_postings(
    boards, work, user, greenhouse_source
):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 11)])
    work(services.ingest_start(owner=user))
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Role 1")])
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED
    assert not Job.objects.filter(status=JobStatus.EXPIRED).exists()
    held = run.events.get(type="source.expiry_skipped")
    assert "9 jobs" in held.message and "threshold" in held.message


def test_a_hanging_board_times_out_and_the_run_goes_on(boards, work, user, settings):
    settings.INTAKE_FETCH_READ_TIMEOUT = 0.5
    settings.INTAKE_FETCH_DEADLINE = 1.0
    settings.INTAKE_FETCH_TRIES = 1
    Source.objects.create(owner=user, company="Slow", kind="greenhouse", identifier="slow")
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")

    def hang(request):  # type: ignore[no-untyped-def]
        time.sleep(5)
        return Reply(200, b'{"jobs": []}')

    boards.route("/v1/boards/slow/jobs", handler=hang)
    mount_greenhouse(boards, "acme", board_v1())
    started = time.monotonic()
    run = work(services.ingest_start(owner=user))
    assert time.monotonic() - started < 4.5
    assert run.status == RunStatus.FINISHED
    assert "Slow" in run.events.get(type="source.failed").message
    assert Job.objects.filter(company="Acme", status=JobStatus.READY).count() == 5


def test_near_duplicates_are_skipped_and_point_at_the_earliest_but_boilerplate_is_not(
    boards, work, user, greenhouse_source
):
    # Twelve different roles sharing the company's boilerplate, and one role posted twice
    # under different ids with a one-word edit.
    roles = [greenhouse_job(i, content=description_html(i, size=2000)) for i in range(1, 13)]
    original = description_html(100, title="Data Engineer", size=2000)
    repost = original.replace("is hiring", "now hiring", 1)
    roles.append(greenhouse_job(100, "Data Engineer", content=original))
    mount_greenhouse(boards, "acme", roles)
    work(services.ingest_start(owner=user))
    mount_greenhouse(
        boards, "acme", [*roles, greenhouse_job(101, "Data Engineer II", content=repost)]
    )
    run = work(services.ingest_start(owner=user))

    skipped = Job.objects.filter(status=JobStatus.SKIPPED)
    assert [j.external_id for j in skipped] == ["101"]
    assert skipped[0].duplicate_of.external_id == "100"
    assert Job.objects.filter(status=JobStatus.READY).count() == 13
    item = RunItem.objects.get(run=run, job=skipped[0])
    assert item.job_status == JobStatus.SKIPPED and "near-duplicate" in item.reason
    assert run.jobs_skipped == 1


# Paragraphs one company repeats in every posting, long enough to dominate each simhash.
COMPANY_PARAGRAPHS = [
    "Acme builds the logistics software that moves a third of the world's freight, from the "
    "first mile to the last, with teams in twelve countries and customers on every continent.",
    "We offer competitive salaries, equity for every employee, a yearly learning budget, "
    "generous parental leave, four weeks of vacation and a flexible schedule.",
    "Acme is an equal opportunity employer. We welcome applicants of every background, "
    "identity and experience, and make reasonable accommodations on request.",
    "Our offices in Berlin, Lisbon and Toronto are open to everyone who likes to work together "
    "in person, and remote colleagues meet the whole team twice a year at our retreat.",
]

ROLE_DUTIES = [
    "own the billing service end to end and mentor two junior engineers.",
    "design onboarding flows with research, prototypes and careful copy.",
    "close enterprise deals in the Nordics and grow our partner channel.",
    "keep our warehouses' data pipelines fast, tested and well documented.",
    "answer customers' questions by chat and phone and improve our help center.",
]


def test_jobs_written_processed_by_the_listing_wait_for_the_company_boilerplate(
    boards, work, user, greenhouse_source, settings, monkeypatch
):
    # Short roles inside long shared boilerplate: without it left out, their simhashes are
    # within the near-duplicate distance of each other (some are equal).
    roles = [
        greenhouse_job(
            i,
            content=f"<p>As a {job_title(i)} you will {ROLE_DUTIES[i % len(ROLE_DUTIES)]}</p>"
            + "".join(f"<p>{p}</p>" for p in COMPANY_PARAGRAPHS * 2),
        )
        for i in range(1, 13)
    ]
    mount_greenhouse(boards, "acme", roles)
    seen_at_write: list[list[int]] = []
    add_processed = chunks.ChunkStream.add_processed

    def spy(stream, count):  # type: ignore[no-untyped-def]
        seen_at_write.append(Source.objects.get(pk=greenhouse_source.pk).boilerplate)
        add_processed(stream, count)

    monkeypatch.setattr(chunks.ChunkStream, "add_processed", spy)
    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED
    assert len(seen_at_write) == 1  # the listing's one batch, its jobs written processed
    # The jobs were decided only once the boilerplate of this first listing of the company
    # was known.
    assert all(len(boilerplate) == len(COMPANY_PARAGRAPHS) for boilerplate in seen_at_write)
    assert Job.objects.filter(status=JobStatus.READY).count() == 12
    assert run.jobs_skipped == 0


def test_postings_without_content_get_their_detail_fetched(boards, work, user, greenhouse_source):
    mount_greenhouse(boards, "acme", board_v1()[:3], listing_content=False)
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED
    assert Job.objects.filter(status=JobStatus.READY).exclude(description="").count() == 3
    assert boards.hits["/v1/boards/acme/jobs/1"] == 1


def test_ingest_from_a_finished_preview_uses_its_sources_and_filters(
    boards, work, user, greenhouse_source
):
    Source.objects.create(owner=user, company="Globex", kind="greenhouse", identifier="globex")
    mount_greenhouse(boards, "acme", board_v1())
    preview = work(services.preview_start(owner=user, source_ids=[greenhouse_source.pk]))
    run = work(services.ingest_start(owner=user, preview=preview))
    assert run.preview == preview and run.status == RunStatus.FINISHED
    assert set(Job.objects.values_list("company", flat=True)) == {"Acme"}


def test_a_preview_that_is_not_finished_cannot_be_ingested(boards, user, greenhouse_source):
    preview = services.preview_start(owner=user)
    with pytest.raises(services.SourceError, match="only a finished preview"):
        services.ingest_start(owner=user, preview=preview)


def test_chunks_are_separate_jobs_and_the_last_one_finishes_the_run(
    boards, work, user, greenhouse_source, settings
):
    settings.INTAKE_CHUNK_SIZE = 4
    settings.INTAKE_BATCH_SIZE = 2
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 11)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED
    chunks = WorkChunk.objects.filter(run=run, number__gt=0)
    # One worker: two chunks of a quarter, two of a half, then whole ones.
    assert [len(c.job_ids) for c in chunks] == [1, 1, 2, 2, 4]
    assert {c.status for c in chunks} == {"done"}
    assert len(run.queue_job_ids) == 6  # the run and its five chunks
    assert (run.items_done, run.jobs_ready) == (10, 10)


def test_batches_hold_a_bounded_amount_of_text_in_the_listing_and_the_processing(
    work, user, monkeypatch
):
    monkeypatch.setattr("ingestion.pipeline.batching.TEXT_BUDGET", 10_000)
    listed: list[int] = []
    processed: list[int] = []
    apply, process_batch = SourceDiff._apply, process.BatchProcessor.process

    def spy_apply(self, batch):  # type: ignore[no-untyped-def]
        listed.append(len(batch))
        return apply(self, batch)

    def spy_process(self, ids, **kwargs):  # type: ignore[no-untyped-def]
        processed.append(len(ids))
        return process_batch(self, ids, **kwargs)

    monkeypatch.setattr(SourceDiff, "_apply", spy_apply)
    monkeypatch.setattr(process.BatchProcessor, "process", spy_process)
    rows = [posting_row(n, description=f"<p>{'lorem ipsum ' * 350} {n}</p>") for n in range(1, 13)]
    services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=io.BytesIO(postings_csv(rows)),
        upload_name="jobs.csv",
    )

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(status=JobStatus.READY).count() == 12
    # About 4,200 characters of description each (the listing weighs the whole raw row, some
    # 500 more): a batch of the listing ends with the third, which passes 10,000 (12 would
    # have been one batch). The file carries every description: the listing writes its jobs
    # processed, and no chunk is left to process.
    assert listed == [3] * 4
    assert processed == []


# --- the other source kinds through the same pipeline ------------------------------------------


def test_an_uploaded_file_ingests_its_good_rows_and_names_each_bad_row(work, user):
    rows = [posting_row(n) for n in range(1, 21)]
    for n in range(5, 20):  # fifteen rows without a title
        rows[n - 1]["title"] = ""
    source = services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=io.BytesIO(postings_csv(rows)),
        upload_name="jobs.csv",
    )
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(source=source, status=JobStatus.READY).count() == 5
    invalid = RunItem.objects.filter(run=run, outcome=ItemOutcome.INVALID).order_by("row")
    assert [i.row for i in invalid] == list(range(5, 20))
    assert "row 5" in invalid[0].reason and "title" in invalid[0].reason
    # Each bad row is announced in the feed up to a cap; the rest in one closing event.
    assert run.events.filter(type="item.invalid").count() == 10
    assert "5 more postings" in run.events.get(type="source.items_failed").message


def _aggregator_rows() -> list[dict]:
    """One file, three companies; id 7 is both Initech's and Globex's."""
    return [
        posting_row(1, external_id="7", company="Initech"),
        posting_row(2, external_id="7", company="Globex"),
        posting_row(3, external_id="8", company="Umbrella"),
        posting_row(4, external_id="9", company=""),  # the source's company
    ]


def _aggregator_source(user):
    return services.source_create(
        owner=user,
        kind="file",
        company="Jobs Hub",
        upload=io.BytesIO(postings_csv(_aggregator_rows())),
        upload_name="export.csv",
    )


def test_a_files_rows_keep_their_own_companies_and_re_ingest_is_idempotent(work, user):
    source = _aggregator_source(user)

    preview = work(services.preview_start(owner=user))
    assert preview.status == RunStatus.FINISHED, preview.error_message
    assert outcome_counts(preview)["new"] == 4
    (summary,) = preview.summary["sources"]
    assert sorted((c["company"], c["listed"]) for c in summary["companies"]) == [
        ("Globex", 1),
        ("Initech", 1),
        ("Jobs Hub", 1),
        ("Umbrella", 1),
    ]
    assert summary["companiesCount"] == 4
    client = Client()
    client.force_login(user)
    page = client.get(f"/preview/{preview.pk}/").content.decode()
    assert "4 companies: " in page and "Globex (1)" in page and "Umbrella (1)" in page

    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    keys = set(Job.objects.filter(source=source).values_list("company", "external_id"))
    assert keys == {("Initech", "7"), ("Globex", "7"), ("Umbrella", "8"), ("Jobs Hub", "9")}

    again = work(services.ingest_start(owner=user))
    assert again.status == RunStatus.FINISHED, again.error_message
    assert outcome_counts(again)["unchanged"] == 4
    assert outcome_counts(again)["expired"] == 0
    assert Job.objects.count() == 4


def test_a_file_with_many_companies_expires_only_the_jobs_it_no_longer_lists(work, user):
    source = _aggregator_source(user)
    work(services.ingest_start(owner=user))
    rows = [row for row in _aggregator_rows() if row["company"] != "Globex"]
    services.source_update(source, upload=io.BytesIO(postings_csv(rows)), upload_name="export.csv")

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    statuses = {
        (company, ext): status
        for company, ext, status in Job.objects.values_list("company", "external_id", "status")
    }
    assert statuses[("Globex", "7")] == JobStatus.EXPIRED
    assert statuses[("Initech", "7")] == JobStatus.READY
    assert outcome_counts(run)["expired"] == 1


def test_a_json_files_hiring_organization_object_names_its_company(work, user):
    rows = [posting_row(1, hiringOrganization={"@type": "Organization", "name": "Initech"})]
    services.source_create(
        owner=user,
        kind="file",
        upload=io.BytesIO(postings_jsonl(rows)),
        upload_name="export.jsonl",
    )

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    assert list(Job.objects.values_list("company", flat=True)) == ["Initech"]


def test_a_jsonl_row_with_nul_characters_is_stored_and_the_others_with_it(work, user):
    # On PostgreSQL the COPY of the batch failed on 0x00, and the whole source with it.
    rows = [posting_row(n) for n in range(1, 6)]
    rows[2] = posting_row(3, title="Chef\x00 de partie", description="Salt\x00 and\x07 pepper")
    source = services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=io.BytesIO(postings_jsonl(rows)),
        upload_name="jobs.jsonl",
    )
    assert b"\\u0000" in postings_jsonl(rows)

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    jobs = Job.objects.filter(source=source, status=JobStatus.READY)
    assert jobs.count() == 5
    job = jobs.get(external_id="F-000003")
    assert job.title == "Chef de partie" and job.description == "<p>Salt and pepper</p>"


def test_board_texts_with_nul_are_stored_and_a_description_over_the_cap_is_invalid(
    boards, work, user, greenhouse_source, settings
):
    settings.INTAKE_DESCRIPTION_MAX_CHARS = 5000
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 5)]
    jobs[0]["title"] = "Role\u0000 1"
    jobs[0]["content"] = "&lt;p&gt;Models\u0000 &amp; data&lt;/p&gt;"
    jobs[1]["content"] = "&lt;p&gt;" + "x" * 6000 + "&lt;/p&gt;"
    jobs[2]["content"] = "&lt;ul&gt;" * 1001  # under 5,000 characters, deeper than 1,000
    mount_greenhouse(boards, "acme", jobs)

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.get(external_id="1").title == "Role 1"
    assert Job.objects.get(external_id="1").description == "<p>Models &amp; data</p>"
    assert set(Job.objects.values_list("external_id", flat=True)) == {"1", "4"}
    invalid = RunItem.objects.filter(run=run, outcome=ItemOutcome.INVALID).order_by("id")
    assert [(i.external_id, i.reason) for i in invalid] == [
        ("2", "description is longer than 5,000 characters"),
        ("3", "description nests HTML elements deeper than 1,000"),
    ]


def test_a_detail_over_the_cap_fails_its_job_alone(boards, work, user, greenhouse_source, settings):
    settings.INTAKE_DESCRIPTION_MAX_CHARS = 5000
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 4)]
    jobs[1]["content"] = "&lt;p&gt;" + "x" * 6000 + "&lt;/p&gt;"
    mount_greenhouse(boards, "acme", jobs, listing_content=False)

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    statuses = dict(Job.objects.values_list("external_id", "status"))
    assert statuses == {"1": JobStatus.READY, "2": JobStatus.ERROR, "3": JobStatus.READY}
    assert Job.objects.get(external_id="2").error_message == (
        "description is longer than 5,000 characters"
    )


def test_a_url_with_a_control_character_is_an_invalid_row_stored_without_it(boards, work, user):
    urls = mount_posting_pages(boards, [jsonld_posting(1)])
    urls.append("https://jobs.example.com/a\x00b")
    services.source_create(
        owner=user,
        kind="urls",
        company="Acme",
        upload=io.BytesIO(url_list_csv(urls)),
        upload_name="urls.csv",
    )

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    invalid = RunItem.objects.get(run=run, outcome=ItemOutcome.INVALID)
    assert invalid.url == "https://jobs.example.com/ab"
    assert invalid.reason == "row 2: url contains a control character"
    assert Job.objects.filter(status=JobStatus.READY).count() == 1


def test_a_url_list_reads_each_page_and_a_failed_url_is_an_error_item(boards, work, user):
    urls = mount_posting_pages(boards, [jsonld_posting(n) for n in range(1, 4)])
    urls.append(boards.url("/jobs/missing"))  # a 404
    urls.append("ftp://example.com/job")  # refused
    services.source_create(
        owner=user,
        kind="urls",
        company="Acme",
        upload=io.BytesIO(url_list_csv(urls)),
        upload_name="urls.csv",
    )
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(status=JobStatus.READY).count() == 3
    counts = outcome_counts(run)
    assert (counts["new"], counts["error"], counts["invalid"]) == (3, 1, 1)
    assert "fetch failed" in RunItem.objects.get(run=run, outcome="error").reason


def test_a_repeated_url_in_a_url_list_is_a_duplicate_item_not_an_invalid_one(boards, work, user):
    urls = mount_posting_pages(boards, [jsonld_posting(1), jsonld_posting(2)])
    services.source_create(
        owner=user,
        kind="urls",
        company="Acme",
        upload=io.BytesIO(url_list_csv([*urls, urls[0]])),
        upload_name="urls.csv",
    )

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    counts = outcome_counts(run)
    assert (counts["new"], counts["duplicate"], counts["invalid"]) == (2, 1, 0)
    duplicate = RunItem.objects.get(run=run, outcome=ItemOutcome.DUPLICATE)
    assert (duplicate.row, duplicate.reason) == (3, "row 3: duplicate of row 1")


def test_a_json_ld_careers_site_is_followed_to_its_posting_pages(boards, work, user):
    page = mount_careers_site(
        boards, [jsonld_posting(1), jsonld_posting(2), jsonld_posting(3, omit=["datePosted"])]
    )
    services.source_create(owner=user, url=page, company="Acme")
    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(status=JobStatus.READY).count() == 2
    invalid = RunItem.objects.get(run=run, outcome=ItemOutcome.INVALID)
    assert "datePosted" in invalid.reason


def test_a_careers_page_added_without_company_is_named_by_its_postings_at_first_read(
    boards, work, user
):
    page = mount_careers_site(boards, [jsonld_posting(1), jsonld_posting(2)])
    source = services.source_create(owner=user, url=page)
    assert source.company == "127.0.0.1"  # its host, until it is read

    preview = work(services.preview_start(owner=user))
    source.refresh_from_db()
    assert preview.status == RunStatus.FINISHED, preview.error_message
    assert (source.company, source.options) == (COMPANY, {})

    run = work(services.ingest_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert set(Job.objects.values_list("company", flat=True)) == {COMPANY}


def test_a_careers_page_named_by_its_user_keeps_the_name(boards, work, user):
    page = mount_careers_site(boards, [jsonld_posting(1)])
    source = services.source_create(owner=user, url=page, company="Acme")

    work(services.preview_start(owner=user))

    source.refresh_from_db()
    assert source.company == "Acme"


def test_retry_failed_reprocesses_only_the_failed_jobs_without_reading_the_board(
    boards, work, user, greenhouse_source
):
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 5)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    boards.route("/v1/boards/acme/jobs/2", status=404, json={"error": "gone"})
    first = work(services.ingest_start(owner=user))
    failed = Job.objects.get(external_id="2")
    assert failed.status == JobStatus.ERROR and "404" in failed.error_message
    assert first.jobs_failed == 1 and first.jobs_ready == 3

    boards.route("/v1/boards/acme/jobs/2", json=jobs[1])  # the detail is back
    listing_hits = boards.hits["/v1/boards/acme/jobs"]
    retry = work(services.ingest_retry_failed(owner=user, run=first))
    assert retry.status == RunStatus.FINISHED, retry.error_message
    assert boards.hits["/v1/boards/acme/jobs"] == listing_hits  # the board was not re-read
    assert Job.objects.get(external_id="2").status == JobStatus.READY
    assert (retry.total_jobs, retry.jobs_ready, retry.jobs_failed) == (1, 1, 0)
    assert RunItem.objects.get(run=retry).reason.startswith("retry after:")
    with pytest.raises(services.SourceError, match="no failed jobs"):
        services.ingest_retry_failed(owner=user, run=retry)


# --- a chunk run again (its work horse died, its connection broke) ------------------------------


class HorseDied(BaseException):
    """Stands for the work horse vanishing mid-batch: nothing after it runs, no handler sees
    it (a BaseException gets past every `except Exception`)."""


def listed_ingest(boards, user, settings, count: int = 10):  # type: ignore[no-untyped-def]
    """An ingest whose listing ran (in this process) and whose chunks wait in the queue."""
    from runs import tasks

    settings.INTAKE_CHUNK_SIZE = 4
    settings.INTAKE_BATCH_SIZE = 2
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, count + 1)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    run = services.ingest_start(owner=user)
    assert tasks.execute_run(run.pk) == "deferred"
    return run


def die_at_job(monkeypatch, number: int) -> None:  # type: ignore[no-untyped-def]
    prepare = process.BatchProcessor._prepare
    seen = []

    def prepare_or_die(self, job, detail=None):  # type: ignore[no-untyped-def]
        seen.append(job.pk)
        if len(seen) == number:
            raise HorseDied()
        return prepare(self, job, detail)

    monkeypatch.setattr(process.BatchProcessor, "_prepare", prepare_or_die)


def test_a_chunk_whose_worker_died_resumes_after_its_last_committed_batch(
    boards, work, user, greenhouse_source, settings, monkeypatch
):
    from runs import tasks

    run = listed_ingest(boards, user, settings)
    whole = WorkChunk.objects.get(run=run, number=5)  # four jobs: two batches
    assert len(whole.job_ids) == 4
    die_at_job(monkeypatch, 3)  # the first job of its second batch
    with pytest.raises(HorseDied):
        tasks.execute_part(run.pk, chunks.CHUNK_TASK, 5)
    whole.refresh_from_db()
    assert (whole.status, whole.done_count) == ("claimed", 2)
    assert Job.objects.filter(id__in=whole.job_ids, status=JobStatus.READY).count() == 2

    monkeypatch.undo()
    assert tasks.execute_part(run.pk, chunks.CHUNK_TASK, 5) == "done"  # RQ's retry
    whole.refresh_from_db()
    assert (whole.status, whole.done_count) == ("done", 4)
    run = work(run)  # the other chunks, and chunk 3's queued job, which finds it done
    assert run.status == RunStatus.FINISHED, run.error_message
    assert Job.objects.filter(status=JobStatus.READY).count() == 10
    assert (run.total_jobs, run.items_done, run.jobs_ready) == (10, 10, 10)
    assert set(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) == {1}
    assert event_types(run).count("run.summary") == 1


def test_the_retry_of_a_chunk_whose_run_was_ended_does_nothing(
    boards, user, greenhouse_source, settings, monkeypatch
):
    from runs import services as run_services
    from runs import tasks

    run = listed_ingest(boards, user, settings)
    die_at_job(monkeypatch, 3)
    with pytest.raises(HorseDied):
        tasks.execute_part(run.pk, chunks.CHUNK_TASK, 5)
    monkeypatch.undo()
    run_services.run_fail(run, message="The worker stopped responding")  # the stale check
    ready = Job.objects.filter(status=JobStatus.READY).count()
    assert tasks.execute_part(run.pk, chunks.CHUNK_TASK, 5) == "skipped"
    assert Job.objects.filter(status=JobStatus.READY).count() == ready
    assert WorkChunk.objects.get(run=run, number=5).done_count == 2


def test_a_batch_whose_commit_answer_was_lost_is_not_written_twice(
    boards, work, user, greenhouse_source, settings, monkeypatch
):
    from django.db import OperationalError

    run = listed_ingest(boards, user, settings)
    real = process.BatchProcessor.process
    lost: list[int] = []

    def commit_then_lose_the_answer(self, ids, *, chunk, offset):  # type: ignore[no-untyped-def]
        real(self, ids, chunk=chunk, offset=offset)
        if not lost:  # the COMMIT went through; the connection broke before its answer
            lost.append(offset)
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(process.BatchProcessor, "process", commit_then_lose_the_answer)
    run = work(run)
    assert run.status == RunStatus.FINISHED, run.error_message
    assert lost == [0]
    assert (run.total_jobs, run.items_done, run.jobs_ready) == (10, 10, 10)
    assert set(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) == {1}


def test_a_dropped_connection_mid_batch_retries_the_batch(
    boards, work, user, greenhouse_source, settings, monkeypatch
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("terminates its own server backend: PostgreSQL only (CI runs it)")
    run = listed_ingest(boards, user, settings)
    real = process.BatchProcessor._write
    dropped: list[int] = []

    def write_then_drop(self, results):  # type: ignore[no-untyped-def]
        written = real(self, results)
        if not dropped:  # inside the batch's transaction, before its commit
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                dropped.append(cursor.fetchone()[0])
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return written

    monkeypatch.setattr(process.BatchProcessor, "_write", write_then_drop)
    run = work(run)
    assert run.status == RunStatus.FINISHED, run.error_message
    assert len(dropped) == 1
    assert Job.objects.filter(status=JobStatus.READY).count() == 10
    assert (run.total_jobs, run.items_done, run.jobs_ready) == (10, 10, 10)


@pytest.mark.parametrize("workers", [1, 2, 4, 8, 64])
def test_chunk_sizes_give_every_worker_two_chunks_and_stay_few_for_a_large_run(settings, workers):
    from itertools import accumulate, islice

    settings.INTAKE_CHUNK_SIZE = 4000
    sizes = list(islice(chunks.chunk_sizes(workers), 1000))
    assert sizes[: 2 * workers] == [sizes[0]] * (2 * workers)
    assert 250 <= sizes[0] <= 1000
    # 2,000 postings: every worker gets work (up to the smallest chunk's limit).
    small = next(n for n, total in enumerate(accumulate(sizes), 1) if total >= 2000)
    assert small >= min(workers, 8)
    # 100,000 postings: a few dozen RQ jobs, not thousands.
    large = next(n for n, total in enumerate(accumulate(sizes), 1) if total >= 100_000)
    assert large <= 25 + 8 * workers


def test_a_run_never_expires_another_owners_job_that_names_its_source(work, user, other_user):
    # Expiry finds a source's unlisted jobs by the source alone (an index holds the answer);
    # a job of someone else that names the source (set by hand in the admin) is not the
    # run's to expire.
    source = _aggregator_source(user)
    work(services.ingest_start(owner=user))
    now = timezone.now()
    stranger = Job.objects.create(
        owner=other_user,
        source=source,
        company="Globex",
        external_id="elsewhere",
        first_seen_at=now,
        last_seen_at=now,
    )
    rows = [row for row in _aggregator_rows() if row["company"] != "Globex"]
    services.source_update(source, upload=io.BytesIO(postings_csv(rows)), upload_name="export.csv")

    run = work(services.ingest_start(owner=user))

    assert run.status == RunStatus.FINISHED, run.error_message
    assert outcome_counts(run)["expired"] == 1
    stranger.refresh_from_db()
    assert stranger.status != JobStatus.EXPIRED
    assert not RunItem.objects.filter(run=run, job=stranger).exists()

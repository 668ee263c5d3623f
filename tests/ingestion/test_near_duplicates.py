"""Near-duplicates as the pipeline decides them: only with enough text, within one company
(unless told otherwise), with titles alike; the preview predicts the ingest's; the reason
names the job and the distance."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.urls import reverse

from ingestion import normalize, services, simhash, store
from ingestion.models import ItemOutcome, Job, JobStatus, RunItem, Source
from tests.ingestion.boards import description_html, greenhouse_job, mount_greenhouse
from tests.ingestion.pages import posting_row, postings_csv

pytestmark = pytest.mark.django_db(transaction=True)


def repost_of(html: str) -> str:
    """The same description re-posted under a new id (its URL differs, so it is not an
    exact duplicate: a near one, 0 bits apart; test_dedupe.py covers edited reposts)."""
    return html


def board_with_reposts(start: int = 1, count: int = 12) -> list[dict[str, Any]]:
    """`count` different roles, and three of them posted again under new ids (a one-word
    edit), one of the reposts listed before its original."""
    roles = {
        i: description_html(i, title=f"Role {i} Engineer", size=2000)
        for i in range(start, start + count)
    }
    jobs = [greenhouse_job(i, f"Role {i} Engineer", content=roles[i]) for i in roles]
    first, second, third = start, start + 1, start + 2
    jobs.insert(
        0, greenhouse_job(900 + third, f"Role {third} Engineer", content=repost_of(roles[third]))
    )
    jobs.append(
        greenhouse_job(900 + first, f"Role {first} Engineer", content=repost_of(roles[first]))
    )
    jobs.append(
        greenhouse_job(900 + second, f"Role {second} Engineer", content=repost_of(roles[second]))
    )
    return jobs


def file_source(owner: Any, company: str, rows: list[dict[str, Any]]) -> None:
    services.source_create(
        owner=owner,
        kind="file",
        company=company,
        upload=io.BytesIO(postings_csv(rows)),
        upload_name="postings.csv",
    )


def item_verdicts(run: Any) -> dict[str, tuple[str, str]]:
    return {
        item.external_id: (item.outcome, item.reason)
        for item in RunItem.objects.filter(run=run)
        if item.outcome == ItemOutcome.DUPLICATE
    }


def test_short_shared_descriptions_are_never_near_duplicates(boards, work, user):  # type: ignore[no-untyped-def]
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(owner=user, company="Globex", kind="greenhouse", identifier="globex")
    mount_greenhouse(
        boards,
        "acme",
        [greenhouse_job(1, "Engineer", content="<p>Role.</p>"), greenhouse_job(2, "Engineer")],
    )
    mount_greenhouse(
        boards, "globex", [greenhouse_job(1, "Engineer", board="globex", content="<p>Role.</p>")]
    )
    run = work(services.ingest_start(owner=user))
    assert Job.objects.filter(status=JobStatus.READY).count() == 3
    assert run.jobs_skipped == 0


def test_near_duplicates_are_within_one_company_unless_told(boards, work, user, settings):  # type: ignore[no-untyped-def]
    html = description_html(7, title="Data Engineer", size=2000)
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(owner=user, company="Globex", kind="greenhouse", identifier="globex")
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Data Engineer", content=html)])
    mount_greenhouse(
        boards,
        "globex",
        [greenhouse_job(2, "Data Engineer", board="globex", content=repost_of(html))],
    )
    run = work(services.ingest_start(owner=user))
    assert run.jobs_skipped == 0

    Job.objects.all().delete()
    settings.INTAKE_DEDUPE_ACROSS_COMPANIES = True
    run = work(services.ingest_start(owner=user))
    skipped = Job.objects.get(status=JobStatus.SKIPPED)
    assert (skipped.company, skipped.duplicate_of.company) == ("Globex", "Acme")
    assert run.jobs_skipped == 1


def test_different_titles_are_not_near_duplicates(boards, work, user, greenhouse_source):  # type: ignore[no-untyped-def]
    html = description_html(7, title="Data Engineer", size=2000)
    mount_greenhouse(
        boards,
        "acme",
        [
            greenhouse_job(1, "Data Engineer", content=html),
            greenhouse_job(2, "Sales Manager", content=repost_of(html)),
            greenhouse_job(3, "Senior Data Engineer", content=repost_of(html)),
            # Other roles, so that the shared description is not the company's boilerplate.
            *(greenhouse_job(i, content=description_html(i, size=2000)) for i in range(4, 13)),
        ],
    )
    run = work(services.ingest_start(owner=user))
    assert list(
        Job.objects.filter(status=JobStatus.SKIPPED).values_list("external_id", flat=True)
    ) == ["3"]
    assert run.jobs_skipped == 1


def test_the_reason_names_the_job_and_the_distance(boards, work, user, greenhouse_source, client):  # type: ignore[no-untyped-def]
    html = description_html(7, title="Data Engineer", size=2000)
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Data Engineer", content=html)])
    work(services.ingest_start(owner=user))
    original = Job.objects.get()
    mount_greenhouse(
        boards,
        "acme",
        [
            greenhouse_job(1, "Data Engineer", content=html),
            greenhouse_job(2, "Data Engineer", content=repost_of(html)),
        ],
    )
    run = work(services.ingest_start(owner=user))
    item = RunItem.objects.get(run=run, external_id="2")
    assert item.outcome == ItemOutcome.DUPLICATE and item.job_status == JobStatus.SKIPPED
    assert item.reason.startswith(f"near-duplicate of job #{original.pk} 'Data Engineer' (")
    assert item.reason.endswith("apart)")
    assert Job.objects.get(external_id="2").duplicate_of == original
    client.force_login(user)
    page = client.get(reverse("ingestion:run_items", args=[run.pk])).content.decode()
    assert f'near-duplicate of <a href="/jobs/{original.pk}/">job #{original.pk}</a>' in page


def test_the_preview_predicts_the_ingest_near_duplicates(boards, work, user, greenhouse_source):  # type: ignore[no-untyped-def]
    # Stored first: one role, which a repost in the next listing duplicates.
    stored = description_html(50, title="Staff Engineer", size=2000)
    mount_greenhouse(boards, "acme", [greenhouse_job(50, "Staff Engineer", content=stored)])
    work(services.ingest_start(owner=user))
    jobs = [
        greenhouse_job(50, "Staff Engineer", content=stored),
        greenhouse_job(51, "Staff Engineer", content=repost_of(stored)),
        *board_with_reposts(),
    ]
    mount_greenhouse(boards, "acme", jobs)

    preview = work(services.preview_start(owner=user))
    predicted = item_verdicts(preview)
    # In listing order: 51 repeats the stored job, 3 the repost listed before it (903),
    # 901 and 902 their originals listed earlier.
    assert set(predicted) == {"51", "3", "901", "902"}
    ingest = work(services.ingest_start(owner=user))
    decided = item_verdicts(ingest)
    # The same verdicts and reasons; the ingest's also name (and link) the job the original
    # became: "near-duplicate of job #12 'Role 3 Engineer', 'Role 3 Engineer' (id 903) …".
    assert {key: outcome for key, (outcome, _) in decided.items()} == {
        key: outcome for key, (outcome, _) in predicted.items()
    }
    for key, (_, reason) in decided.items():
        assert re.sub(r"job #\d+ '[^']*', ", "", reason) == predicted[key][1]
        assert reason.startswith("near-duplicate of job #")
    assert preview.jobs_skipped == ingest.jobs_skipped == len(predicted) == 4
    assert preview.jobs_new == ingest.jobs_new == len(jobs) - 1 - 4
    skipped = set(
        Job.objects.filter(status=JobStatus.SKIPPED).values_list("external_id", flat=True)
    )
    assert skipped == set(predicted)


def test_a_files_companies_are_compared_apart_unless_told(work, user, settings):  # type: ignore[no-untyped-def]
    # An aggregator's file: the same role listed for two companies, among other roles.
    html = description_html(7, title="Data Engineer", size=2000)
    rows = [
        posting_row(
            1, external_id="A1", company="Initech", title="Data Engineer", description=html
        ),
        posting_row(2, external_id="G1", company="Globex", title="Data Engineer", description=html),
        *(posting_row(n, company="Initech") for n in range(3, 12)),
    ]
    file_source(user, "Jobs Hub", rows)
    preview = work(services.preview_start(owner=user))
    assert item_verdicts(preview) == {}
    settings.INTAKE_DEDUPE_ACROSS_COMPANIES = True
    preview = work(services.preview_start(owner=user))
    ingest = work(services.ingest_start(owner=user))
    assert set(item_verdicts(preview)) == set(item_verdicts(ingest)) == {"G1"}
    skipped = Job.objects.get(status=JobStatus.SKIPPED)
    assert (skipped.company, skipped.duplicate_of.company) == ("Globex", "Initech")


def test_every_stored_simhash_reads_the_fingerprint_text(work, user):  # type: ignore[no-untyped-def]
    # Inline tags inside a word: the page's text joins "data" and "base", the fingerprint's
    # text (tags cut, no parse) does not. The listing decides with the fingerprint's; the
    # job keeps that value, so later listings compare like with like.
    words = " ".join(f"word{n}" for n in range(60))
    html = f"<p>{words} data<b>base</b> <script>ignored()</script></p><p>{words} tail</p>"
    file_source(user, "Initech", [posting_row(1, description=html)])
    listed = simhash.simhash(normalize.fingerprint_text(html))
    assert listed != simhash.simhash(
        normalize.sanitized_html_to_text(normalize.sanitize_html(html))
    )
    assert "ignored" not in normalize.fingerprint_text(html)

    work(services.ingest_start(owner=user))

    job = Job.objects.get()
    assert (job.status, job.simhash) == (JobStatus.READY, listed)


def test_the_listing_writes_its_decisions_in_the_jobs_rows(  # type: ignore[no-untyped-def]
    boards, work, user, greenhouse_source, monkeypatch
):
    # Each new job is written once by the listing: its simhash and the job it duplicates go
    # in its row; only a duplicate of a job new in the same batch (no id yet when the rows
    # are built) is set afterwards. Two new postings a run: too few to learn boilerplate.
    roles = {
        i: (title, description_html(i, title=title, size=2000))
        for i, title in ((1, "Data Engineer"), (3, "Site Engineer"), (5, "Test Engineer"))
    }

    def listing(*ids: int) -> None:
        mount_greenhouse(
            boards,
            "acme",
            [greenhouse_job(i, roles[i % 100][0], content=roles[i % 100][1]) for i in ids],
        )

    listing(1, 3)
    work(services.ingest_start(owner=user))
    rows: dict[str, Any] = {}
    set_afterwards: list[tuple[int, int, int | None]] = []
    upsert, set_listed = store.upsert_jobs, store.set_listed

    def spy_upsert(batch: Any, **kwargs: Any) -> dict[str, int]:
        rows.update((row.external_id, row) for row in batch)
        return upsert(batch, **kwargs)

    def spy_set_listed(decisions: Any) -> None:
        set_afterwards.extend(decisions)
        set_listed(decisions)

    monkeypatch.setattr(store, "upsert_jobs", spy_upsert)
    monkeypatch.setattr(store, "set_listed", spy_set_listed)
    listing(1, 3, 101, 103)  # reposts of stored jobs
    work(services.ingest_start(owner=user))
    jobs = {job.external_id: job for job in Job.objects.all()}
    assert (rows["101"].duplicate_of_id, rows["103"].duplicate_of_id) == (
        jobs["1"].pk,
        jobs["3"].pk,
    )
    assert rows["101"].simhash == jobs["1"].simhash
    assert set_afterwards == []
    listing(1, 3, 101, 103, 5, 105)  # a repost of a job new in the same batch
    work(services.ingest_start(owner=user))
    jobs = {job.external_id: job for job in Job.objects.all()}
    assert rows["5"].simhash is not None and rows["5"].duplicate_of_id is None
    assert rows["105"].duplicate_of_id is None
    assert set_afterwards == [(jobs["105"].pk, rows["105"].simhash, jobs["5"].pk)]
    assert [jobs[key].duplicate_of_id for key in ("101", "103", "105")] == [
        jobs[key].pk for key in ("1", "3", "5")
    ]
    assert {jobs[key].status for key in ("101", "103", "105")} == {JobStatus.SKIPPED}
    assert jobs["5"].status == JobStatus.READY

"""Sources that share no company listed at the same time, each group by a worker of its own
(ingestion.pipeline.groups, orchestrator.list_group): which sources may go side by side, and
that a run listed so decides exactly what one worker listing them in order decides. Real
database, real Redis, real RQ workers (in process, and two forked ones)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import django_rq
import pytest
from rq import Worker

from ingestion import services, vocabulary
from ingestion.adapters import files
from ingestion.adapters.jsonld import COMPANY_FROM
from ingestion.models import ChunkStatus, Job, RunItem, Source, WorkChunk
from ingestion.pipeline import chunks, groups, orchestrator
from runs import queue
from runs.context import RunContext
from runs.exceptions import RunGone
from runs.models import IngestionRun, RunStatus
from tests.ingestion.boards import greenhouse_jobs, mount_greenhouse
from tests.ingestion.pages import FILE_COLUMNS, postings_csv
from tests.ingestion.test_list_ahead import rows
from tests.support import start_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NO_COMPANY = [c for c in FILE_COLUMNS if c != "company"]


def file_source(user: Any, company: str, data: bytes, name: str = "jobs.csv") -> Source:
    return services.source_create(
        owner=user, kind="file", company=company, upload=io.BytesIO(data), upload_name=name
    )


def csv_source(user: Any, company: str, count: int, *, columns: list[str] | None = None) -> Source:
    data = postings_csv(rows(count, size=600, prefix=company[:3]), columns=columns or NO_COMPANY)
    return file_source(user, company, data, f"{company.lower()}.csv")


def board(user: Any, company: str, token: str) -> Source:
    return Source.objects.create(owner=user, company=company, kind="greenhouse", identifier=token)


def entries(*sources: Source) -> list[dict[str, Any]]:
    return [{"id": s.pk, "company": s.company, "kind": s.kind} for s in sources]


def grouped(sources: list[Source], workers: int = 2) -> list[list[int]]:
    found = groups.listing_groups(entries(*sources), {s.pk: s for s in sources}, workers=workers)
    return [[e["id"] for e in group] for group in found]


# --- which sources go side by side ------------------------------------------------------------


def test_sources_of_different_companies_are_grouped_apart_in_the_runs_order(user) -> None:  # type: ignore[no-untyped-def]
    a, b, c = board(user, "Acme", "a"), board(user, "Globex", "b"), board(user, "Initech", "c")
    assert grouped([a, b, c], workers=4) == [[a.pk], [b.pk], [c.pk]]
    # At most GROUPS_PER_WORKER a worker, dealt round-robin, each group in the run's order.
    d, e = board(user, "Umbrella", "d"), board(user, "Hooli", "e")
    assert grouped([a, b, c, d, e], workers=1) == [[a.pk, b.pk, c.pk, d.pk, e.pk]]
    assert groups.GROUPS_PER_WORKER == 2
    assert grouped([a, b, c, d, e], workers=2) == [[a.pk, e.pk], [b.pk], [c.pk], [d.pk]]


def test_sources_that_may_share_a_company_are_listed_together_in_order(user) -> None:  # type: ignore[no-untyped-def]
    a, b = board(user, "Acme", "a"), board(user, "Globex", "b")
    # The same company as near-duplicates compare it: case and spacing aside.
    c = Source.objects.create(owner=user, company=" ACME ", kind="lever", identifier="acme")
    assert grouped([a, b, c]) == [[a.pk, c.pk], [b.pk]]
    # A careers page that takes its company from its first read may be anyone's.
    page = Source.objects.create(
        owner=user,
        company="jobs.example",
        kind="jsonld",
        identifier="https://jobs.example/careers",
        options={COMPANY_FROM: "host"},
    )
    assert grouped([a, b, page]) == [[a.pk, b.pk, page.pk]]


def test_a_file_is_grouped_by_the_companies_its_rows_name(user) -> None:  # type: ignore[no-untyped-def]
    a, b = board(user, "Acme", "a"), board(user, "Globex", "b")
    plain = csv_source(user, "Initech", 5)
    assert grouped([a, plain, b]) == [[a.pk], [plain.pk], [b.pk]]
    # A company column whose cells are empty names none: the rows are the source's.
    empty = csv_source(user, "Hooli", 5, columns=FILE_COLUMNS)
    assert grouped([a, empty]) == [[a.pk], [empty.pk]]
    # Rows naming Globex: listed with Globex's board, in the run's order.
    named = rows(3)
    named[1]["company"] = "globex"
    aggregator = file_source(user, "Feed", postings_csv(named, columns=FILE_COLUMNS), "feed.csv")
    assert grouped([b, a, aggregator]) == [[b.pk, aggregator.pk], [a.pk]]
    # Read once per stored file.
    aggregator.refresh_from_db()
    assert aggregator.options[files.UPLOAD_COMPANIES]["names"] == ["globex"]


def test_a_files_companies_are_learned_as_it_is_stored_not_by_a_run(user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a = board(user, "Acme", "a")
    named = rows(3)
    named[2]["company"] = "Acme"
    feed = file_source(user, "Feed", postings_csv(named, columns=FILE_COLUMNS), "feed.csv")
    feed.refresh_from_db()
    assert feed.options[files.UPLOAD_COMPANIES]["names"] == ["Acme"]

    def read_again(source: Source) -> None:
        raise AssertionError("the file was read again for its companies")

    monkeypatch.setattr(files, "_named_companies", read_again)
    assert grouped([a, feed]) == [[a.pk, feed.pk]]
    # A replaced file's are learned as it replaces the old one.
    monkeypatch.undo()
    services.source_update(
        feed, upload=io.BytesIO(postings_csv(rows(2), columns=NO_COMPANY)), upload_name="f.csv"
    )
    monkeypatch.setattr(files, "_named_companies", read_again)
    feed.refresh_from_db()
    assert feed.options[files.UPLOAD_COMPANIES]["names"] == []
    assert grouped([a, feed]) == [[a.pk], [feed.pk]]


def test_a_file_naming_too_many_companies_lists_its_run_in_order(user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(files, "COMPANIES_KNOWN_MAX", 2)
    a = board(user, "Acme", "a")
    named = rows(4)
    for n, row in enumerate(named):
        row["company"] = f"Company {n}"
    many = file_source(user, "Feed", postings_csv(named, columns=FILE_COLUMNS), "feed.csv")
    assert grouped([a, many]) == [[a.pk, many.pk]]


def test_a_replaced_file_is_read_again_for_its_companies(user) -> None:  # type: ignore[no-untyped-def]
    a = board(user, "Acme", "a")
    feed = csv_source(user, "Feed", 3)
    assert grouped([a, feed]) == [[a.pk], [feed.pk]]
    named = rows(3)
    named[0]["company"] = "Acme"
    services.source_update(
        feed,
        upload=io.BytesIO(postings_csv(named, columns=FILE_COLUMNS)),
        upload_name="feed.csv",
    )
    feed.refresh_from_db()
    assert grouped([a, feed]) == [[a.pk, feed.pk]]


def test_json_files_and_cross_company_duplicates_keep_a_run_in_order(user, settings) -> None:  # type: ignore[no-untyped-def]
    a, b = board(user, "Acme", "a"), board(user, "Globex", "b")
    import json

    named = [{"external_id": "J-1", "title": "Role", "url": "https://x.example/1"}]
    as_json = file_source(user, "Feed", json.dumps(named).encode(), "feed.json")
    assert grouped([a, as_json]) == [[a.pk], [as_json.pk]]
    named[0]["company"] = "Acme"
    other = file_source(user, "Other", json.dumps(named).encode(), "other.json")
    assert grouped([a, other]) == [[a.pk, other.pk]]
    settings.INTAKE_DEDUPE_ACROSS_COMPANIES = True
    assert grouped([a, b]) == [[a.pk, b.pk]]
    settings.INTAKE_DEDUPE_ACROSS_COMPANIES = False
    settings.INTAKE_LIST_SIDE_BY_SIDE = False
    assert grouped([a, b]) == [[a.pk, b.pk]]


# --- the same decisions, whoever lists what ---------------------------------------------------


def item_rows(run: IngestionRun) -> list[tuple[Any, ...]]:
    """The run's items, without ids (a job's id differs between two ingests of one file)."""
    return sorted(
        RunItem.objects.filter(run=run).values_list(
            "source__company", "row", "external_id", "title", "outcome", "job_status"
        )
    )


def job_rows(user: Any) -> list[tuple[Any, ...]]:
    return sorted(
        Job.objects.filter(owner=user).values_list(
            "company", "external_id", "status", "duplicate_of__external_id"
        )
    )


@pytest.fixture
def three_sources(user, boards) -> list[Source]:  # type: ignore[no-untyped-def]
    jobs = list(greenhouse_jobs(30, board="globex", size=600))
    jobs[20]["content"] = jobs[3]["content"]  # a near-duplicate within the board
    jobs[20]["title"] = jobs[3]["title"]
    mount_greenhouse(boards, "globex", jobs)
    return [
        csv_source(user, "Acme", 40),
        board(user, "Globex", "globex"),
        csv_source(user, "Initech", 25),
    ]


def run_kind(work, user, monkeypatch, sources, kind: str, workers: int) -> IngestionRun:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(orchestrator, "live_workers", lambda: workers)
    start = services.ingest_start if kind == "ingest" else services.preview_start
    run = work(start(owner=user, source_ids=[s.pk for s in sources]))
    assert run.status == RunStatus.FINISHED, run.error_message
    return run


@pytest.mark.parametrize("kind", ["preview", "ingest"])
def test_groups_listed_side_by_side_decide_what_one_listing_decides(
    work, user, monkeypatch, three_sources, kind
) -> None:  # type: ignore[no-untyped-def]
    alone = run_kind(work, user, monkeypatch, three_sources, kind, workers=1)
    jobs_alone = job_rows(user)
    Job.objects.filter(owner=user).delete()
    queued: list[str] = []
    enqueue_parts = RunContext.enqueue_parts

    def spy(ctx, func_path, parts, **kwargs):  # type: ignore[no-untyped-def]
        queued.extend(name for name, _ in parts if func_path == orchestrator.LIST_GROUP_TASK)
        return enqueue_parts(ctx, func_path, parts, **kwargs)

    monkeypatch.setattr(RunContext, "enqueue_parts", spy)
    side = run_kind(work, user, monkeypatch, three_sources, kind, workers=2)
    # The run's own job lists the first group: only the later ones wait for a worker.
    assert queued == ["listing-1", "listing-2"]
    assert item_rows(side) == item_rows(alone)
    assert job_rows(user) == jobs_alone
    assert {r[4] for r in item_rows(alone)} >= {"new", "duplicate", "invalid"}
    assert vocabulary.outcome_counts(side) == vocabulary.outcome_counts(alone)
    # Each source's outcome in the summary, in the run's order; nothing left "listing".
    assert [s["sourceId"] for s in side.summary["sources"]] == [s.pk for s in three_sources]
    assert side.summary["listing"] == {}
    listing = sorted(
        WorkChunk.objects.filter(
            run=side, number__in=[0, chunks.GROUP_STRIDE, 2 * chunks.GROUP_STRIDE]
        ).values_list("number", "status")
    )
    assert listing == [
        (0, ChunkStatus.DONE),
        (chunks.GROUP_STRIDE, ChunkStatus.DONE),
        (2 * chunks.GROUP_STRIDE, ChunkStatus.DONE),
    ]
    started = side.events.get(type="run.started")
    assert started.payload["groups"] == 3
    assert "in 3 groups listed at the same time" in started.message
    assert side.events.filter(type="run.summary").count() == 1
    if kind == "ingest":
        assert side.jobs_ready == alone.jobs_ready and side.jobs_skipped == alone.jobs_skipped


def test_a_run_whose_groups_all_fail_fails_once_saying_why(work, user, boards, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Neither board exists (404): nothing was read.
    sources = [board(user, "Acme", "gone-a"), board(user, "Globex", "gone-b")]
    monkeypatch.setattr(orchestrator, "live_workers", lambda: 2)
    run = work(services.preview_start(owner=user, source_ids=[s.pk for s in sources]))
    assert run.status == RunStatus.ERROR
    assert run.error_message.startswith("Every source failed, so nothing was read.")
    assert "Acme" in run.error_message and "Globex" in run.error_message


def test_the_last_group_listed_alone_says_whether_the_run_read_anything(
    work, user, boards, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(orchestrator, "live_workers", lambda: 2)
    sources = [board(user, "Acme", "gone-a"), board(user, "Globex", "gone-b")]
    monkeypatch.setattr(
        orchestrator,
        "_check_read",
        _counting(orchestrator._check_read, calls := []),  # type: ignore[has-type]
    )
    run = work(services.preview_start(owner=user, source_ids=[s.pk for s in sources]))
    assert run.status == RunStatus.ERROR
    # Said by the last group listed alone, with every source's outcome.
    assert len(calls) == 1 and len(calls[0]) == 2


def _counting(real, calls: list[Any]):  # type: ignore[no-untyped-def]
    def check(ctx, outcomes):  # type: ignore[no-untyped-def]
        calls.append(outcomes)
        return real(ctx, outcomes)

    return check


def test_each_source_being_listed_has_its_own_row_and_count(user) -> None:  # type: ignore[no-untyped-def]
    a, b, c = board(user, "Acme", "a"), board(user, "Globex", "b"), board(user, "Initech", "c")
    run = services.preview_start(owner=user, source_ids=[a.pk, b.pk, c.pk])
    run.started_at = run.created_at
    run.summary = {"sources": [], "listing": {str(a.pk): 120, str(c.pk): 40}}
    rows_ = {row.source_id: (row.state, row.listed) for row in vocabulary.listing_rows(run)}
    assert rows_ == {a.pk: ("listing", 120), b.pk: ("waiting", 0), c.pk: ("listing", 40)}


def test_a_group_counts_the_others_not_listed_yet_as_busy(user) -> None:  # type: ignore[no-untyped-def]
    a = board(user, "Acme", "a")
    run = services.preview_start(owner=user, source_ids=[a.pk])
    WorkChunk.objects.bulk_create(
        [WorkChunk(run=run, number=chunks.listing_chunk(g)) for g in range(3)]
    )
    assert chunks.listing_elsewhere(run, 0, 3) == 2
    WorkChunk.objects.filter(run=run, number=chunks.listing_chunk(2)).update(
        status=ChunkStatus.DONE
    )
    # Group 2's worker is free: it can help groups 0 and 1 (ingestion.pipeline.mapping).
    assert chunks.listing_elsewhere(run, 0, 3) == 1
    assert chunks.listing_elsewhere(run, 1, 3) == 1
    assert chunks.listing_elsewhere(run, 2, 3) == 2


# --- parts and stages ---------------------------------------------------------------------


def test_a_stage_several_listings_move_to_is_moved_to_once(user) -> None:  # type: ignore[no-untyped-def]
    run = services.ingest_start(owner=user, source_ids=[board(user, "Acme", "a").pk])
    IngestionRun.objects.filter(pk=run.pk).update(status=RunStatus.INITIALIZING)
    run.refresh_from_db()
    ctx = RunContext(run)
    ctx.set_stage(RunStatus.INGESTING, once=True)
    other = RunContext(IngestionRun.objects.get(pk=run.pk))
    other.run.status = RunStatus.INITIALIZING  # it read the row before the move
    other.set_stage(RunStatus.INGESTING, once=True)
    assert other.run.status == RunStatus.INGESTING
    assert run.events.filter(type="run.ingesting").count() == 1
    with pytest.raises(RunGone):
        other.set_stage(RunStatus.INGESTING)


def test_a_listing_part_is_not_tried_again_when_its_work_horse_dies(redis_client) -> None:  # type: ignore[no-untyped-def]
    queue.enqueue_parts(
        1, orchestrator.LIST_GROUP_TASK, [("intake-run-1-listing-1", (1,))], retries=0
    )
    queue.enqueue_parts(1, chunks.CHUNK_TASK, [("intake-run-1-chunk-1", (1,))])
    connection = django_rq.get_queue("default").connection
    listing = queue.lost_job(queue.Job.fetch("intake-run-1-listing-1", connection=connection), None)
    chunk = queue.lost_job(queue.Job.fetch("intake-run-1-chunk-1", connection=connection), None)
    assert listing is not None and chunk is not None
    assert (listing.part, listing.retried, listing.attempt, listing.attempts) == (
        "listing 1",
        False,
        1,
        1,
    )
    assert (chunk.retried, chunk.attempt, chunk.attempts) == (True, 2, 3)


@pytest.mark.slow
def test_two_real_workers_list_two_files_side_by_side(
    procs, tmp_path: Path, user, work, monkeypatch, redis_client
) -> None:  # type: ignore[no-untyped-def]
    sources = [csv_source(user, "Acme", 60), csv_source(user, "Initech", 60)]
    alone = run_kind(work, user, monkeypatch, sources, "preview", workers=1)
    q = django_rq.get_queue("default")
    procs.append(start_worker(tmp_path, name="w1"))
    procs.append(start_worker(tmp_path, name="w2"))
    wait_for(lambda: Worker.count(queue=q) >= 2, timeout=60, what="live workers")
    run = services.preview_start(owner=user, source_ids=[s.pk for s in sources])
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=120, what="the run")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED, run.error_message
    assert run.events.get(type="run.started").payload["groups"] == 2
    assert item_rows(run) == item_rows(alone)
    claimed = set(WorkChunk.objects.filter(run=run).values_list("claimed_by", flat=True))
    assert len(claimed) in (1, 2) and "" not in claimed

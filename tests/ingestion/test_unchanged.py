"""Unchanged re-runs of an uploaded file: a row whose raw hash equals its stored job's is
`unchanged` without being mapped to a posting again (ingestion.pipeline.diff); anything its
reading depends on — the row, the reading code, the source, the run's filters — reads it
again. Real database, real Redis, a real RQ worker in burst mode."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.db import connection
from django.utils import timezone
from rq import Worker

from ingestion import services, store
from ingestion.adapters import files, get_adapter
from ingestion.models import ItemOutcome, Job, JobSeen, JobStatus, RunItem
from ingestion.normalize import hashing
from ingestion.pipeline import batchwrite, diff, readahead, unchanged
from ingestion.selectors import outcome_counts
from runs.exceptions import RunGone
from runs.models import IngestionRun, RunStatus
from tests.ingestion.pages import posting_row, postings_csv, postings_jsonl
from tests.support import start_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 12


@pytest.fixture
def mapped(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """The rows the file adapter maps to postings (to_posting's calls), by row number."""
    calls: list[int] = []
    real = files.to_posting

    def counting(record: dict[str, Any], row: int, **kwargs: Any) -> Any:
        calls.append(row)
        return real(record, row, **kwargs)

    monkeypatch.setattr(files, "to_posting", counting)
    return calls


def _source(user, rows: list[dict[str, Any]], **fields: Any):  # type: ignore[no-untyped-def]
    return services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=io.BytesIO(postings_csv(rows)),
        upload_name="jobs.csv",
        **fields,
    )


def _ingest(work: Callable[..., Any], user, source) -> Any:  # type: ignore[no-untyped-def]
    run = work(services.ingest_start(owner=user, source_ids=[source.pk]))
    assert run.status == RunStatus.FINISHED, run.error_message
    return run


def _rows() -> list[dict[str, Any]]:
    return [posting_row(n) for n in range(1, ROWS + 1)]


def test_an_unchanged_re_run_reports_every_row_unchanged_without_mapping_one(
    work, user, mapped
) -> None:
    source = _source(user, _rows())
    _ingest(work, user, source)
    assert len(mapped) == ROWS
    seen = dict(Job.objects.values_list("external_id", "last_seen_at"))
    rows_before = _row_versions()
    mapped.clear()

    again = _ingest(work, user, source)

    assert mapped == []
    assert outcome_counts(again)["unchanged"] == ROWS
    items = RunItem.objects.filter(run=again).order_by("row")
    assert [(i.row, i.outcome) for i in items] == [(n, "unchanged") for n in range(1, ROWS + 1)]
    first = items[0]
    job = Job.objects.get(pk=first.job_id)
    assert (first.external_id, first.title, first.url) == (job.external_id, job.title, job.url)
    # Seen again, in JobSeen: the wide job rows are not written at all.
    jobs = Job.objects.with_last_seen()
    assert all(job.seen_at > seen[job.external_id] for job in jobs)
    assert dict(Job.objects.values_list("external_id", "last_seen_at")) == seen
    assert _row_versions() == rows_before


def test_an_unchanged_re_run_claims_each_batch_at_once(work, user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    source = _source(user, _rows())
    _ingest(work, user, source)
    one_by_one: list[str] = []
    real = unchanged.UnchangedRecords.claim

    def claim(self, record, key, stored):  # type: ignore[no-untyped-def]
        one_by_one.append(key[1])
        return real(self, record, key, stored)

    monkeypatch.setattr(unchanged.UnchangedRecords, "claim", claim)

    again = _ingest(work, user, source)

    assert outcome_counts(again)["unchanged"] == ROWS
    assert one_by_one == []


def test_a_re_run_of_rows_naming_companies_keeps_each_rows_company(work, user, mapped) -> None:  # type: ignore[no-untyped-def]
    companies = ["Globex", " Initech ", "", "Globex"]
    rows = [posting_row(n, company=companies[n % 4]) for n in range(1, ROWS + 1)]
    rows.append(posting_row(1, company="Hooli"))  # row 1's id, under another company: new
    source = _source(user, rows)
    first = _ingest(work, user, source)
    mapped.clear()

    again = _ingest(work, user, source)

    assert mapped == []
    assert outcome_counts(again)["unchanged"] == ROWS + 1
    listed = again.summary["sources"][0]["companies"]
    assert listed == first.summary["sources"][0]["companies"]
    assert {c["company"] for c in listed} == {"Globex", "Initech", "Hooli"}
    assert Job.objects.filter(company="Hooli").count() == 1


def _row_versions() -> dict[int, Any]:
    """Each job row's version: on PostgreSQL its xmin (the transaction that wrote that
    version of the row; any UPDATE makes a new one), elsewhere its columns."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, xmin::text FROM ingestion_job")
            return dict(cursor.fetchall())
    return {row[0]: row for row in Job.objects.order_by("id").values_list()}


def test_the_jobs_pages_show_when_a_re_run_last_saw_a_job(work, user, signed_in) -> None:
    source = _source(user, _rows())
    _ingest(work, user, source)
    again = _ingest(work, user, source)
    job = Job.objects.get(external_id=posting_row(1)["external_id"])
    stamp = JobSeen.objects.get(job=job).last_seen_at
    assert stamp > job.last_seen_at and stamp >= again.started_at
    assert job.seen_at == stamp == Job.objects.with_last_seen().get(pk=job.pk).seen_at

    shown = f'datetime="{timezone.localtime(stamp):%Y-%m-%dT%H:%M:%S}'
    assert shown in signed_in.get(f"/jobs/{job.pk}/").content.decode()
    assert shown in signed_in.get("/jobs/").content.decode()


def test_a_job_written_after_it_was_seen_unchanged_shows_its_own_stamp(work, user) -> None:
    rows = _rows()
    source = _source(user, rows)
    _ingest(work, user, source)
    _ingest(work, user, source)
    rows[0]["title"] = "Principal Gardener"
    services.source_update(source, upload=io.BytesIO(postings_csv(rows)), upload_name="v2.csv")
    _ingest(work, user, source)
    job = Job.objects.with_last_seen().get(external_id=rows[0]["external_id"])
    assert job.seen_at == job.last_seen_at > JobSeen.objects.get(job=job).last_seen_at


def test_expiry_after_unchanged_re_runs_expires_only_what_vanished(work, user) -> None:
    rows = _rows()
    source = _source(user, rows)
    _ingest(work, user, source)
    _ingest(work, user, source)
    services.source_update(source, upload=io.BytesIO(postings_csv(rows[:-1])), upload_name="v2.csv")
    run = _ingest(work, user, source)
    assert outcome_counts(run)["unchanged"] == ROWS - 1
    assert outcome_counts(run)["expired"] == 1
    statuses = dict(Job.objects.values_list("external_id", "status"))
    assert statuses.pop(rows[-1]["external_id"]) == JobStatus.EXPIRED
    assert set(statuses.values()) == {JobStatus.READY}


def test_a_preview_of_an_unchanged_file_maps_no_row_either(work, user, mapped) -> None:
    source = _source(user, _rows())
    _ingest(work, user, source)
    mapped.clear()
    preview = work(services.preview_start(owner=user, source_ids=[source.pk]))
    assert preview.status == RunStatus.FINISHED, preview.error_message
    assert outcome_counts(preview)["unchanged"] == ROWS
    assert mapped == []


def test_a_changed_row_is_updated_and_only_it_is_mapped(work, user, mapped) -> None:
    rows = _rows()
    source = _source(user, rows)
    _ingest(work, user, source)
    before = dict(Job.objects.values_list("external_id", "raw_hash"))
    rows[4]["title"] = "Principal Gardener"
    services.source_update(source, upload=io.BytesIO(postings_csv(rows)), upload_name="v2.csv")
    mapped.clear()

    again = _ingest(work, user, source)

    assert mapped == [5]
    assert outcome_counts(again)["updated"] == 1
    assert outcome_counts(again)["unchanged"] == ROWS - 1
    job = Job.objects.get(external_id=rows[4]["external_id"])
    assert job.title == "Principal Gardener"
    assert job.raw_hash and job.raw_hash != before[job.external_id]


def test_text_moved_between_two_cells_is_a_changed_row(work, user, mapped) -> None:
    """The cells end to end read the same; where one ends does not."""
    rows = _rows()
    url = rows[4]["url"]  # the column before the location
    rows[4].update(location="Berlin")
    source = _source(user, rows)
    _ingest(work, user, source)
    rows[4].update(url=f"{url}B", location="erlin")
    services.source_update(source, upload=io.BytesIO(postings_csv(rows)), upload_name="v2.csv")
    mapped.clear()

    again = _ingest(work, user, source)

    assert mapped == [5]
    assert outcome_counts(again)["updated"] == 1
    job = Job.objects.get(external_id=rows[4]["external_id"])
    assert (job.url, job.location) == (f"{url}B", "erlin")


def test_the_same_cells_under_another_header_are_changed_rows(work, user, mapped) -> None:
    def upload(header: bytes) -> io.BytesIO:
        lines = [f"F-{n:06d},Gardener {n},Berlin".encode() for n in range(1, ROWS + 1)]
        return io.BytesIO(b"\r\n".join([header, *lines, b""]))

    source = services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=upload(b"external_id,title,location"),
        upload_name="jobs.csv",
    )
    _ingest(work, user, source)
    # Each row's cells as they were, the third now the department's.
    moved = upload(b"external_id,title,department")
    services.source_update(source, upload=moved, upload_name="v2.csv")
    mapped.clear()

    again = _ingest(work, user, source)

    assert sorted(mapped) == list(range(1, ROWS + 1))
    assert outcome_counts(again)["updated"] == ROWS
    job = Job.objects.get(external_id="F-000001")
    assert (job.location, job.department) == ("", "Berlin")


def test_raw_texts_of_csv_rows_differ_wherever_their_records_do() -> None:
    def texts(data: bytes) -> list[str]:
        return [t for _, _, t in files._raw_records(io.BytesIO(data), "csv", raw=True)]

    first = texts(b"id,title,location\r\nA,ab,c\r\nA,a,bc\r\nA,a|1,c\r\nA,a,1|c\r\n")
    assert len(set(first)) == 4
    # The same row under a header naming its columns otherwise.
    assert texts(b"id,title,department\r\nA,ab,c\r\n")[0] != first[0]
    # Equal rows, equal texts; a record's text does not depend on its row number.
    assert texts(b"id,title\r\nA,b\r\nA,b\r\n") == texts(b"id,title\r\nA,b\r\nA,b\r\n")[::-1]


def test_a_new_reading_version_reads_every_row_again_once(work, user, mapped, monkeypatch) -> None:
    source = _source(user, _rows())
    _ingest(work, user, source)
    monkeypatch.setattr(hashing, "RAW_HASH_VERSION", hashing.RAW_HASH_VERSION + 1)
    mapped.clear()

    bumped = _ingest(work, user, source)

    assert sorted(mapped) == list(range(1, ROWS + 1))
    assert outcome_counts(bumped)["unchanged"] == ROWS
    # Found unchanged by content, the jobs took the new raw hash: the next run maps nothing.
    mapped.clear()
    _ingest(work, user, source)
    assert mapped == []


def test_an_edit_of_the_reading_code_reads_every_row_again(work, user, mapped, monkeypatch) -> None:
    source = _source(user, _rows())
    _ingest(work, user, source)
    edited = hashing._reading_code_digest() + "-edited"
    monkeypatch.setattr(hashing, "_reading_code_digest", lambda: edited)
    mapped.clear()
    _ingest(work, user, source)
    assert len(mapped) == ROWS


def test_the_reading_code_digest_covers_each_module_a_file_row_is_read_by() -> None:
    # An edit of any of them (a new alias, a fix to the salary parser) must read rows again.
    root = Path(hashing.__file__).resolve().parent.parent
    functions = (
        files._raw_records,
        files.record_key,
        files.field_name,
        files.to_posting,
        files.split_record,
    )
    for function in functions:
        path = Path(sys.modules[function.__module__].__file__ or "").resolve()
        assert path.relative_to(root).as_posix() in hashing._READING_MODULES, function


def test_new_filters_read_every_row_again_and_filter_what_they_exclude(work, user, mapped) -> None:
    rows = _rows()
    rows[2]["title"] = "Senior Zookeeper"
    source = _source(user, rows)
    _ingest(work, user, source)
    services.source_update(source, exclude_keywords=["zookeeper"])
    mapped.clear()

    again = _ingest(work, user, source)

    assert len(mapped) == ROWS
    assert outcome_counts(again)["filtered"] == 1
    assert outcome_counts(again)["unchanged"] == ROWS - 1


def test_new_options_of_the_source_read_every_row_again(work, user, mapped) -> None:
    source = _source(user, _rows())
    _ingest(work, user, source)
    services.source_update(source, options={"note": "renamed columns"})
    mapped.clear()
    _ingest(work, user, source)
    assert len(mapped) == ROWS


def test_a_row_listed_twice_stays_a_duplicate_on_an_unchanged_re_run(work, user, mapped) -> None:
    rows = _rows()
    rows.append(dict(rows[0]))  # row 13 repeats row 1: same id, same content
    source = _source(user, rows)
    first = _ingest(work, user, source)
    assert outcome_counts(first)["duplicate"] == 1
    mapped.clear()

    again = _ingest(work, user, source)

    assert outcome_counts(again)["unchanged"] == ROWS
    assert outcome_counts(again)["duplicate"] == 1
    assert mapped == [ROWS + 1]
    duplicate = RunItem.objects.get(run=again, outcome=ItemOutcome.DUPLICATE)
    assert duplicate.row == ROWS + 1 and "row 1" in duplicate.reason


def test_an_expired_job_listed_again_is_updated_not_unchanged(work, user, mapped) -> None:
    rows = _rows()
    source = _source(user, rows)
    _ingest(work, user, source)
    Job.objects.filter(external_id=rows[0]["external_id"]).update(status=JobStatus.EXPIRED)
    mapped.clear()

    again = _ingest(work, user, source)

    assert mapped == [1]
    assert outcome_counts(again)["updated"] == 1
    assert Job.objects.get(external_id=rows[0]["external_id"]).status != JobStatus.EXPIRED


def test_a_jsonl_file_re_run_maps_no_row(work, user, mapped) -> None:
    source = services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=io.BytesIO(postings_jsonl(_rows())),
        upload_name="jobs.jsonl",
    )
    _ingest(work, user, source)
    mapped.clear()
    again = _ingest(work, user, source)
    assert mapped == []
    assert outcome_counts(again)["unchanged"] == ROWS


def test_a_csv_row_kept_as_its_cells_reads_as_its_record() -> None:
    # The listing keeps a CSV row as read until it is mapped (files.CsvText, or files.CsvRow
    # after a row the scan was not sure of): its key, its posting and its raw text must be
    # those of the record it stood for.
    data = (
        b"external_id,title,company,url,description\r\n"
        b"A-1,Engineer,  Acme   Corp ,https://acme.example/1,<p>One</p>\r\n"
        b"A-2,Designer\r\n"
        b",,,,\r\n"
        b" A-3 ,Writer,,not a url,Plain text,extra,cells\r\n"
        b",No id,Acme,,\r\n"
    )

    def read(raw: bool) -> list[tuple[int, Any, Any, str]]:
        return [
            (row, files.record_key(record), files._mapped(record, row, label="row"), text)
            for row, record, text in files._raw_records(io.BytesIO(data), "csv", raw=raw)
        ]

    kept = read(raw=True)
    assert all(
        type(r) is tuple for _, r, _ in files._raw_records(io.BytesIO(data), "csv", raw=True)
    )
    as_records = read(raw=False)
    assert [k[:3] for k in kept] == [r[:3] for r in as_records]
    assert [row for row, *_ in kept] == [1, 2, 4, 5]
    assert kept[0][1] == ("Acme Corp", "A-1")
    assert kept[2][1] == ("", "A-3")
    assert all(text for *_, text in kept)


def test_a_csv_header_naming_a_field_twice_reads_rows_as_records(work, user, mapped) -> None:
    # Two columns of one field (id, job_id): the first non-empty wins, which a row kept as
    # its cells cannot say; such a file's rows are records, and re-run unchanged all the same.
    data = b"id,job_id,title\r\nX-1,,First\r\n,X-2,Second\r\n"
    assert not any(
        isinstance(r, files.CsvRow | tuple)
        for _, r, _ in files._raw_records(io.BytesIO(data), "csv", raw=True)
    )
    source = services.source_create(
        owner=user, kind="file", company="Initech", upload=io.BytesIO(data), upload_name="j.csv"
    )
    _ingest(work, user, source)
    mapped.clear()
    again = _ingest(work, user, source)
    assert mapped == []
    assert outcome_counts(again)["unchanged"] == 2


READ_BATCH = 5


@pytest.fixture
def rerun(work, user, monkeypatch) -> Callable[[int], Any]:  # type: ignore[no-untyped-def]
    """Re-runs of a 40-row file ingested once, in batches of 5, the listing told there are
    `workers` live workers; each returns the run and its items. A helper reads from the
    batch after the listing's last (no head start) unless a test says otherwise."""
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", READ_BATCH)
    monkeypatch.setattr(readahead, "HEAD_START", 0)
    rows = [posting_row(n) for n in range(1, 41)]
    rows[12]["title"] = ""  # an invalid row, re-run as invalid
    rows[20] = dict(rows[3])  # row 21 repeats row 4: a duplicate on every run
    source = _source(user, rows)
    first = _ingest(work, user, source)
    assert sum(s["readElsewhere"] for s in first.summary["sources"]) == 0

    def run(workers: int) -> tuple[Any, list[tuple[Any, ...]]]:
        monkeypatch.setattr(diff, "live_workers", lambda: workers)
        done = _ingest(work, user, source)
        items = list(
            RunItem.objects.filter(run=done)
            .order_by("id")
            .values_list("row", "external_id", "title", "url", "job_id", "outcome", "reason")
        )
        return done, items

    return run


def read_elsewhere(run: Any) -> int:
    return sum(s["readElsewhere"] for s in run.summary["sources"])


def readahead_keys() -> list[bytes]:
    return list(django_rq.get_connection("default").scan_iter("intake:readahead:*"))


@pytest.mark.parametrize("workers", [2, 3])
def test_a_re_run_read_ahead_by_a_helper_gives_the_same_items(rerun, monkeypatch, workers) -> None:  # type: ignore[no-untyped-def]
    alone, items = rerun(1)
    real = readahead.ReadAhead._start

    def start_and_read(self, reader, hint):  # type: ignore[no-untyped-def]
        started = real(self, reader, hint)
        # The helper at once, before the listing asks for batch 2: it reads all the rest.
        assert readahead.read_ahead(self.prefix).endswith(": 7 batches")
        return started

    real_to_map = unchanged.UnchangedRecords.to_map
    looked_up: list[int] = []
    hinted: list[int] = []

    def to_map(self, batch):  # type: ignore[no-untyped-def]
        # The listing's own, or the helper's (which lists nothing).
        (looked_up if self._keys else hinted).append(len(batch))
        return real_to_map(self, batch)

    monkeypatch.setattr(readahead, "AHEAD", 100)
    monkeypatch.setattr(readahead.ReadAhead, "_start", start_and_read)
    monkeypatch.setattr(unchanged.UnchangedRecords, "to_map", to_map)
    helped, helped_items = rerun(workers)
    # The helper's guesses of what to map ahead spared the listing a lookup per batch; with
    # two workers nobody but the reading helper could map ahead: it guesses nothing.
    assert looked_up == []
    assert len(hinted) == (40 // READ_BATCH - 1 if workers > 2 else 0)
    assert helped_items == items
    assert {i[5] for i in items} == {"unchanged", "invalid", "duplicate"}
    assert outcome_counts(helped) == outcome_counts(alone)
    assert read_elsewhere(alone) == 0
    assert read_elsewhere(helped) == 40 // READ_BATCH - 1
    assert readahead_keys() == []
    assert django_rq.get_queue("default").count == 0, "helpers left queued"


def test_a_read_ahead_helper_that_died_is_taken_over_where_it_stopped(rerun, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, items = rerun(1)
    real = readahead.ReadAhead._start

    def start_and_die(self, reader, hint):  # type: ignore[no-untyped-def]
        started = real(self, reader, hint)
        # A helper that pushed batch 2 and died holding the read: its lease lapses.
        batches = reader()
        next(batches)
        claim, last, out, _ = readahead._keys(self.prefix)
        self.conn.set(claim, "pid 0", px=300)
        batch = next(batches)
        self.conn.rpush(
            out, readahead.pickle.dumps((readahead.pack(batch), list(range(len(batch)))))
        )
        return started

    monkeypatch.setattr(readahead.ReadAhead, "_start", start_and_die)
    again, again_items = rerun(2)
    assert again_items == items
    assert read_elsewhere(again) == 1
    assert readahead_keys() == []


def test_a_read_ahead_helper_whose_reading_failed_is_read_on_by_the_listing(
    rerun, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    _, items = rerun(1)
    real = readahead.ReadAhead._start

    def start_and_fail(self, reader, hint):  # type: ignore[no-untyped-def]
        started = real(self, reader, hint)
        claim, last, out, _ = readahead._keys(self.prefix)
        self.conn.set(claim, "pid 0", ex=30)
        self.conn.rpush(out, readahead.FAILED)
        return started

    monkeypatch.setattr(readahead.ReadAhead, "_start", start_and_fail)
    again, again_items = rerun(2)
    assert again_items == items
    assert read_elsewhere(again) == 0
    assert readahead_keys() == []


@pytest.mark.parametrize(("head_start", "helper_at"), [(0, 3), (1, 2)])
def test_a_helper_reads_from_its_head_start_after_the_listings_last_batch(
    rerun, monkeypatch, head_start, helper_at
) -> None:  # type: ignore[no-untyped-def]
    # A helper that starts while the listing reads batch `helper_at` reads from `head_start`
    # batches after it (batch 4 here): the listing reads those itself meanwhile, as a helper
    # just forked reads its way to its first.
    _, items = rerun(1)
    monkeypatch.setattr(readahead, "HEAD_START", head_start)
    helpers: list[str] = []
    asked = 0
    real_batches = readahead.ReadAhead.batches

    def batches(self, reader, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal asked
        for batch in real_batches(self, reader, **kwargs):
            asked += 1
            if asked == helper_at:
                helpers.append(readahead.read_ahead(self.prefix))
            yield batch

    monkeypatch.setattr(readahead, "AHEAD", 100)
    monkeypatch.setattr(readahead.ReadAhead, "batches", batches)
    again, again_items = rerun(2)
    assert again_items == items
    assert helpers[0].endswith(": 5 batches")
    assert read_elsewhere(again) == 5
    assert readahead_keys() == []


@pytest.mark.parametrize("workers", [2, 3])
def test_a_listing_read_ahead_by_its_only_other_worker_applies_each_batch_as_read(
    rerun, monkeypatch, workers
) -> None:  # type: ignore[no-untyped-def]
    """With two workers the read-ahead helper is the only other one: nobody could map a
    batch offered ahead, so the listing neither looks batches up to offer them nor reads
    batches ahead of the one it applies (a third worker could map: offers go on)."""
    _, items = rerun(1)
    order: list[str] = []
    real_batches = readahead.ReadAhead.batches
    real_apply = diff.SourceDiff._apply
    real_to_map = unchanged.UnchangedRecords.to_map
    looked_up: list[int] = []

    def batches(self, reader, **kwargs):  # type: ignore[no-untyped-def]
        for batch in real_batches(self, reader, **kwargs):
            order.append(f"read {sum(o.startswith('read') for o in order) + 1}")
            yield batch

    def apply(self, batch):  # type: ignore[no-untyped-def]
        order.append(f"apply {sum(o.startswith('apply') for o in order) + 1}")
        return real_apply(self, batch)

    def to_map(self, batch):  # type: ignore[no-untyped-def]
        looked_up.append(len(batch))
        return real_to_map(self, batch)

    monkeypatch.setattr(readahead.ReadAhead, "batches", batches)
    monkeypatch.setattr(diff.SourceDiff, "_apply", apply)
    monkeypatch.setattr(unchanged.UnchangedRecords, "to_map", to_map)
    # No helper ever starts: the listing reads every batch itself, as while a helper catches up.
    monkeypatch.setattr(readahead, "read_ahead", lambda prefix: "")
    again, again_items = rerun(workers)
    assert again_items == items
    batches_read = 40 // READ_BATCH
    if workers == 2:
        assert looked_up == []
        assert order == [
            f"{step} {n}" for n in range(1, batches_read + 1) for step in ("read", "apply")
        ]
    else:
        assert len(looked_up) == batches_read - 1
        assert order[:4] == ["read 1", "apply 1", "read 2", "read 3"]


def test_a_re_run_that_maps_its_rows_is_not_read_ahead(rerun, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Rows unchanged by content but not by raw hash are mapped: mapping, not reading, is
    # then the listing's work, and the other workers map (ingestion.pipeline.mapping).
    started: list[str] = []
    monkeypatch.setattr(readahead.ReadAhead, "_start", lambda self, *_: started.append("") or False)
    Job.objects.update(raw_hash="")
    again, _ = rerun(2)
    assert outcome_counts(again)["unchanged"] == 38
    assert started == []
    rerun(2)  # the raw hashes stored again: read ahead
    assert started == [""]


@pytest.mark.slow
def test_a_second_real_worker_reads_an_unchanged_re_run_ahead(
    worker, procs, tmp_path: Path, user
) -> None:  # type: ignore[no-untyped-def]
    """Real forked workers, the listing's real batch size."""
    queue = django_rq.get_queue("default")
    procs.append(start_worker(tmp_path, name="w1"))
    wait_for(lambda: Worker.count(queue=queue) >= 2, timeout=60, what="live workers")
    # Past the helper's head start, with four batches to spare for a helper that starts late.
    batches = 1 + readahead.HEAD_START + 4
    rows = [posting_row(n) for n in range(1, batches * diff.LISTING_BATCH_SIZE + 1)]
    source = _source(user, rows)

    def ingest() -> IngestionRun:
        run = services.ingest_start(owner=user, source_ids=[source.pk])
        wait_for(
            lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=300, what="the run"
        )
        run.refresh_from_db()
        assert run.status == RunStatus.FINISHED, run.error_message
        return run

    first = ingest()
    again = ingest()
    assert read_elsewhere(first) == 0
    assert read_elsewhere(again) > 0, "the second worker read no batch"
    items = list(RunItem.objects.filter(run=again).order_by("id").values_list("row", "outcome"))
    assert items == [(n, "unchanged") for n in range(1, len(rows) + 1)]
    assert JobSeen.objects.filter(last_seen_at__gt=first.finished_at).count() == len(rows)
    assert readahead_keys() == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statistics")
def test_a_listing_first_analyzes_a_job_table_changed_since_its_statistics(work, user) -> None:  # type: ignore[no-untyped-def]
    # Without statistics the stored-jobs lookup hashes all of a company's jobs per batch.
    from tests.ingestion.test_views_jobs import _bulk_jobs

    def estimated() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'ingestion_job'")
            return float(cursor.fetchone()[0])

    source = _source(user, _rows())
    _ingest(work, user, source)
    _bulk_jobs(user, 3000)
    stored = Job.objects.count()
    assert estimated() != stored
    _ingest(work, user, source)
    assert estimated() == stored


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statistics")
def test_an_ingest_that_grew_the_job_table_leaves_it_analyzed_for_a_re_run(work, user) -> None:  # type: ignore[no-untyped-def]
    # A first ingest analyzes the table after its first thousand jobs and writes the rest:
    # once it is finished, the re-run that follows finds the statistics fresh.
    from django.test.utils import CaptureQueriesContext

    rows = [posting_row(n) for n in range(1, 3 * diff.LISTING_BATCH_SIZE + 1)]
    _ingest(work, user, _source(user, rows))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.2)
    with CaptureQueriesContext(connection) as queries:
        store.analyze_if_stale(Job)
    assert not [q for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statistics")
def test_a_job_table_whose_rows_were_rewritten_in_place_is_not_analyzed_again(user) -> None:  # type: ignore[no-untyped-def]
    # A re-run rewrites many rows (their raw hashes): the plans depend on how many there are.
    from django.contrib.auth.models import User
    from django.test.utils import CaptureQueriesContext

    from tests.ingestion.test_views_jobs import _bulk_jobs

    def flush_statistics() -> None:
        # This backend's counts reach the statistics views when it is next idle, otherwise
        # up to seconds later: inserts counted after the ANALYZE would read as growth.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.2)

    _bulk_jobs(user, 3000)
    flush_statistics()
    store.analyze(Job)
    Job.objects.update(raw_hash="rewritten")
    flush_statistics()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.reltuples, c.relpages, pg_relation_size(c.oid) / 8192, s.n_live_tup"
            " FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.relname = 'ingestion_job'"
        )
        stats = cursor.fetchone()
    with CaptureQueriesContext(connection) as queries:
        store.analyze_if_stale(Job)
    analyzed = [q for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]
    assert not analyzed, f"(reltuples, relpages, pages, n_live_tup) = {stats}"
    _bulk_jobs(User.objects.create_user("another"), 6000)  # tripled: stale
    with CaptureQueriesContext(connection) as queries:
        store.analyze_if_stale(Job)
    assert [q for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statistics")
def test_analyzing_the_job_table_skips_the_columns_no_query_searches(work, user) -> None:  # type: ignore[no-untyped-def]
    """A listing analyzes a stale job table first: each column analyzed costs a sort of the
    sample, and the descriptions and hashes are never searched."""
    _ingest(work, user, _source(user, _rows()))
    store.analyze(Job)
    with connection.cursor() as cursor:
        cursor.execute("SELECT attname FROM pg_stats WHERE tablename = 'ingestion_job'")
        analyzed = {name for (name,) in cursor.fetchall()}
    assert {"owner_id", "company", "external_id", "status", "source_id", "title"} <= analyzed
    assert not analyzed & {"description", "raw_description", "raw_hash", "content_hash"}


def test_a_files_records_share_one_mapper_pickled_once_a_batch(user) -> None:  # type: ignore[no-untyped-def]
    """Records are pickled to be mapped on another worker: a mapper of each record's own
    would be written once per record."""
    source = _source(user, _rows())
    records = list(get_adapter(source, None).records(lambda text: "h"))  # type: ignore[arg-type]
    assert len(records) == ROWS
    assert len({id(record.mapper) for record in records}) == 1


def test_a_batch_read_ahead_travels_as_plain_tuples_and_reads_back_the_same(user) -> None:  # type: ignore[no-untyped-def]
    """The listing unpickles every batch a helper read: records pickled as themselves are
    rebuilt through the dataclass's own __setstate__, one Python call per record, and a CSV
    row as its cells is a string per cell and a call to rebuild the row (it travels as one
    string, cut into cells only when the row is mapped)."""
    rows = _rows()
    rows[1]["location"] = ""  # an empty cell in the middle
    rows[2]["description"] = 'Ünïcode — "quoted", with a comma\nand a line'
    source = _source(user, rows)
    adapter = get_adapter(source, None)  # type: ignore[arg-type]
    batch = list(adapter.records(lambda text: f"h{len(text)}"))
    batch.append(diff.Posting(external_id="board-1", title="A board's posting"))
    blob = readahead.pickle.dumps(readahead.pack(batch))
    assert b"RawRecord" not in blob
    assert b"CsvRow" not in blob
    back = readahead.unpack(readahead.pickle.loads(blob))
    assert [type(entry) for entry in back] == [type(entry) for entry in batch]
    for entry, copy in zip(batch, back, strict=True):
        if isinstance(entry, diff.RawRecord):
            assert copy.posting() == entry.posting()
            assert copy.record == entry.record
            copy.mapper, copy.record = entry.mapper, entry.record
        assert copy == entry


def _counting_item_writes(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """The items each transaction of the listing writes (store.insert_items' calls)."""
    writes: list[int] = []
    real = store.insert_items

    def insert_items(items):  # type: ignore[no-untyped-def]
        writes.append(len(items))
        return real(items)

    monkeypatch.setattr(store, "insert_items", insert_items)
    return writes


def _run_counters(run: Any) -> tuple[Any, ...]:
    return (
        run.items_done,
        run.total_jobs,
        run.jobs_new,
        run.jobs_updated,
        run.jobs_skipped,
        run.jobs_failed,
        outcome_counts(run),
    )


def test_batches_that_write_no_job_are_written_together(rerun, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(batchwrite, "HELD_BATCHES_MAX", 1)  # each batch its own transaction
    one_by_one, items = rerun(1)
    writes = _counting_item_writes(monkeypatch)
    monkeypatch.setattr(batchwrite, "HELD_BATCHES_MAX", 3)

    held, held_items = rerun(1)

    assert writes == [3 * READ_BATCH, 3 * READ_BATCH, 2 * READ_BATCH]
    assert held_items == items
    assert {i[5] for i in items} == {"unchanged", "invalid", "duplicate"}
    assert _run_counters(held) == _run_counters(one_by_one)
    # The invalid row's feed event, told once as before.
    invalid = [e for e in held.events.all() if e.type == "item.invalid"]
    assert [e.payload["row"] for e in invalid] == [13]
    assert JobSeen.objects.filter(last_seen_at__gte=held.started_at).count() == 38


def test_a_batch_that_writes_jobs_first_writes_the_batches_held_before_it(
    work, user, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", READ_BATCH)
    monkeypatch.setattr(batchwrite, "HELD_BATCHES_MAX", 10)
    rows = [posting_row(n) for n in range(1, 31)]
    source = _source(user, rows)
    _ingest(work, user, source)
    rows[16]["title"] = "Principal Gardener"  # batch 4 writes a job
    services.source_update(source, upload=io.BytesIO(postings_csv(rows)), upload_name="v2.csv")
    writes = _counting_item_writes(monkeypatch)

    again = _ingest(work, user, source)

    assert writes == [3 * READ_BATCH, READ_BATCH, 2 * READ_BATCH]
    items = list(RunItem.objects.filter(run=again).order_by("id").values_list("row", "outcome"))
    assert items == [(n, "updated" if n == 17 else "unchanged") for n in range(1, 31)]
    assert Job.objects.get(external_id=rows[16]["external_id"]).title == "Principal Gardener"


def _rerun_failing_at_batch_4(work, user, monkeypatch, error: Exception) -> tuple[Any, list[int]]:  # type: ignore[no-untyped-def]
    """A 30-row upload ingested, then ingested again unchanged with up to 10 batches held,
    its listing raising `error` as it reads the 4th batch: the second run, and the items
    each of its transactions wrote."""
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", READ_BATCH)
    monkeypatch.setattr(batchwrite, "HELD_BATCHES_MAX", 10)
    source = _source(user, [posting_row(n) for n in range(1, 31)])
    _ingest(work, user, source)
    real = diff.listing_batches

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        for number, batch in enumerate(real(*args, **kwargs), 1):
            if number == 4:
                raise error
            yield batch

    monkeypatch.setattr(diff, "listing_batches", failing)
    writes = _counting_item_writes(monkeypatch)
    return work(services.ingest_start(owner=user, source_ids=[source.pk])), writes


def test_a_reading_failure_after_held_batches_writes_them_first(work, user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    again, writes = _rerun_failing_at_batch_4(
        work, user, monkeypatch, files.SourceFailed("The file went away.")
    )

    assert writes == [3 * READ_BATCH]
    assert RunItem.objects.filter(run=again, outcome="unchanged").count() == 3 * READ_BATCH
    assert outcome_counts(again)["unchanged"] == 3 * READ_BATCH
    assert "The file went away." in str(again.summary)


def test_batches_held_when_the_run_is_gone_are_not_written(work, user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A worker whose run was ended elsewhere (RunGone) stops without changing anything, as
    it did when each batch was written at once: what it held is dropped, not written."""
    again, writes = _rerun_failing_at_batch_4(
        work, user, monkeypatch, RunGone("the run was ended elsewhere")
    )

    assert writes == []
    assert not RunItem.objects.filter(run=again).exists()

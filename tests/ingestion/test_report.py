"""A run's report: the JSON summary and the CSV of its items, for its owner only."""

from __future__ import annotations

import csv
import inspect
import io
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from ingestion import report, services
from ingestion.report import safe_cell
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def finished_run(boards, work, user, greenhouse_source):  # type: ignore[no-untyped-def]
    mount_greenhouse(
        boards,
        "acme",
        [
            greenhouse_job(1, '=HYPERLINK("http://evil.example","click")'),
            greenhouse_job(2, "Backend Engineer"),
            greenhouse_job(3, omit=["title"]),
        ],
    )
    return work(services.ingest_start(owner=user))


def test_a_cell_that_a_spreadsheet_would_run_as_a_formula_is_defused():
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("+SUM(A1)") == "'+SUM(A1)"
    assert safe_cell("-2") == "'-2"
    assert safe_cell("@cmd") == "'@cmd"
    assert safe_cell("Engineer") == "Engineer"
    assert safe_cell(None) == ""


def _download_csv(user, url: str):  # type: ignore[no-untyped-def]
    """GET the CSV as the ASGI server does (an async client, streamed), with every warning an
    error: returns (response, body)."""

    async def fetch():  # type: ignore[no-untyped-def]
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get(url)
        chunks = [chunk async for chunk in response.streaming_content]
        return response, b"".join(chunks)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return async_to_sync(fetch)()


def test_the_csv_report_lists_every_item_with_its_outcome_and_is_formula_safe(finished_run, user):
    response, raw = _download_csv(user, f"/runs/{finished_run.pk}/report.csv")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    body = raw.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 3
    by_id = {row["external_id"]: row for row in rows}
    assert by_id["1"]["title"].startswith("'=HYPERLINK")
    assert by_id["2"]["outcome"] == "new" and by_id["2"]["job_status"] == "ready"
    assert by_id["3"]["outcome"] == "invalid" and "title" in by_id["3"]["reason"]


def test_the_csv_report_is_streamed_from_an_async_iterator_without_a_warning(finished_run, user):
    # Django warns "StreamingHttpResponse must consume synchronous iterators in order to serve
    # them asynchronously" (and reads the whole report first) for a sync iterator under ASGI;
    # _download_csv turns that warning into an error.
    response, _ = _download_csv(user, f"/runs/{finished_run.pk}/report.csv")
    assert response.is_async
    assert inspect.isasyncgen(report.report_csv_stream(finished_run))


def test_the_csv_report_reads_the_items_in_bounded_blocks(finished_run):
    with CaptureQueriesContext(connection) as queries:
        blocks = list(report.report_csv_blocks(finished_run, block_rows=2))
    # The header, then a block of two items and one of one: never the whole run at once.
    assert [len(list(csv.reader(io.StringIO(b)))) for b in blocks] == [1, 2, 1]
    item_reads = [q["sql"] for q in queries.captured_queries if "ingestion_runitem" in q["sql"]]
    assert len(item_reads) == 2 and all("LIMIT 2" in sql for sql in item_reads)


def test_the_json_report_carries_the_snapshot_counts_and_per_source_outcomes(finished_run, user):
    client = Client()
    client.force_login(user)
    data = client.get(f"/runs/{finished_run.pk}/report.json").json()
    assert data["run"]["status"] == "finished"
    # The invalid posting never became a job: it is an invalid outcome, not a failed job.
    assert data["run"]["counts"]["ready"] == 2 and data["run"]["counts"]["failed"] == 0
    assert data["outcomes"]["new"] == 2 and data["outcomes"]["invalid"] == 1
    # The counts kept while it ran are the items' outcomes, in the same words.
    assert data["run"]["outcomes"] == {k: v for k, v in data["outcomes"].items() if v}
    assert data["sources"][0]["company"] == "Acme"


def test_another_user_cannot_read_the_report(finished_run, other_user):
    client = Client()
    client.force_login(other_user)
    assert client.get(f"/runs/{finished_run.pk}/report.csv").status_code == 404
    assert client.get(f"/runs/{finished_run.pk}/report.json").status_code == 404


def test_the_json_report_is_a_download_when_asked_and_refuses_a_junk_flag(finished_run, user):
    client = Client()
    client.force_login(user)
    url = f"/runs/{finished_run.pk}/report.json"
    assert "Content-Disposition" not in client.get(url)
    assert "attachment" in client.get(url, {"download": "1"})["Content-Disposition"]
    assert "Content-Disposition" not in client.get(url, {"download": "0"})
    refused = client.get(url, {"download": "²"})
    assert refused.status_code == 400
    assert "download must be 1 or 0" in refused.json()["detail"]

"""A run's report: the JSON summary and the CSV of its items, for its owner only."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from ingestion import services
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


def test_the_csv_report_lists_every_item_with_its_outcome_and_is_formula_safe(finished_run, user):
    client = Client()
    client.force_login(user)
    response = client.get(f"/runs/{finished_run.pk}/report.csv")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 3
    by_id = {row["external_id"]: row for row in rows}
    assert by_id["1"]["title"].startswith("'=HYPERLINK")
    assert by_id["2"]["outcome"] == "new" and by_id["2"]["job_status"] == "ready"
    assert by_id["3"]["outcome"] == "invalid" and "title" in by_id["3"]["reason"]


def test_the_json_report_carries_the_snapshot_counts_and_per_source_outcomes(finished_run, user):
    client = Client()
    client.force_login(user)
    data = client.get(f"/runs/{finished_run.pk}/report.json").json()
    assert data["run"]["status"] == "finished"
    assert data["run"]["counts"]["ready"] == 2 and data["run"]["counts"]["failed"] == 1
    assert data["outcomes"]["new"] == 2 and data["outcomes"]["invalid"] == 1
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

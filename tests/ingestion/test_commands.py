"""manage.py add_source and ingest, through the same services as every other door."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingestion.models import Job, JobStatus, Source
from ingestion.run_kinds import PREVIEW
from runs.models import IngestionRun, RunStatus
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)


def call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_add_source_recognises_a_pasted_greenhouse_board_url(user):
    out = call("add_source", "--owner", "alice", "https://boards.greenhouse.io/acme-corp")
    source = Source.objects.get()
    assert (source.kind, source.identifier, source.company) == (
        "greenhouse",
        "acme-corp",
        "Acme Corp",
    )
    assert f"#{source.pk}" in out


def test_add_source_takes_a_kind_an_identifier_and_filters(user):
    call(
        "add_source",
        "--owner",
        "alice",
        "--kind",
        "lever",
        "globex",
        "--company",
        "Globex",
        "--region",
        "eu",
        "--include",
        "python",
        "--exclude",
        "intern",
        "--location",
        "Berlin",
        "--remote-only",
    )
    source = Source.objects.get()
    assert source.options == {"region": "eu"}
    assert source.filters() == {
        "include_keywords": ["python"],
        "exclude_keywords": ["intern"],
        "locations": ["Berlin"],
        "remote_only": True,
    }


def test_add_source_treats_another_careers_url_as_a_json_ld_page(user):
    call("add_source", "--owner", "alice", "https://careers.example.com/jobs", "--company", "Ex")
    assert Source.objects.get().kind == "jsonld"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("javascript:alert(1)", "only http and https are allowed, not javascript:"),
        ("http://exa mple.com/careers", "it contains a space"),
        ("http://169.254.169.254/latest", "cloud metadata addresses are always refused"),
        ("http://127.0.0.1:8000/jobs", "unless INTAKE_ALLOW_PRIVATE_NETWORK is on"),
    ],
)
def test_add_source_refuses_a_url_the_fetcher_would_refuse(user, target, message):
    with pytest.raises(CommandError, match=message):
        call("add_source", "--owner", "alice", target, "--company", "Ex")
    assert not Source.objects.exists()


def test_add_source_refuses_a_duplicate_with_a_clear_message(user):
    call("add_source", "--owner", "alice", "https://jobs.lever.co/globex")
    with pytest.raises(CommandError, match="already have a Lever postings source for 'globex'"):
        call("add_source", "--owner", "alice", "https://jobs.lever.co/globex")


def test_add_source_reads_an_uploaded_csv(user, tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("external_id,title,url\n1,Engineer,https://example.com/1\n")
    call("add_source", "--owner", "alice", "--file", str(path), "--company", "Initech")
    source = Source.objects.get()
    assert (source.kind, source.upload_name, source.upload_format) == ("file", "jobs.csv", "csv")


def test_the_readmes_example_works_as_written(user, django_user_model):
    django_user_model.objects.create_user("admin")
    call("add_source", "--owner", "admin", "https://boards.greenhouse.io/yourcompany")
    source = Source.objects.get()
    assert (source.kind, source.identifier, source.company) == (
        "greenhouse",
        "yourcompany",
        "Yourcompany",
    )


def test_add_source_names_a_careers_page_after_its_host_without_company(user):
    call("add_source", "--owner", "alice", "https://careers.initech-corp.example/jobs")
    source = Source.objects.get()
    assert (source.kind, source.company) == ("jsonld", "Initech Corp")
    assert source.options == {"company_from": "host"}


def test_add_source_file_without_company_takes_the_company_its_rows_name(user, tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text(
        "external_id,title,url,company_name\n"
        "1,Engineer,https://example.com/1,Initech\n"
        "2,Designer,https://example.com/2,Globex\n"
        "3,Analyst,https://example.com/3,Initech\n"
    )
    call("add_source", "--owner", "alice", "--file", str(path))
    assert Source.objects.get().company == "Initech"


def test_add_source_file_without_company_column_takes_its_urls_site(user, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id": "1", "title": "Engineer", "url": "https://jobs.globex.com/1"}\n')
    call("add_source", "--owner", "alice", "--file", str(path))
    assert Source.objects.get().company == "Globex"


def test_add_source_url_list_without_company_takes_its_first_urls_site(user, tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("url\nftp://nope.example/1\nhttps://www.umbrella.co.uk/jobs/2\n")
    call("add_source", "--owner", "alice", "--kind", "urls", "--file", str(path))
    assert Source.objects.get().company == "Umbrella"


def test_add_source_file_naming_no_company_asks_for_one(user, tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("external_id,title\n1,Engineer\n")
    with pytest.raises(CommandError, match="A company name is required: the file names none"):
        call("add_source", "--owner", "alice", "--file", str(path))
    assert not Source.objects.exists()


def test_ingest_refuses_an_unknown_owner_or_source(user):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call("ingest", "--owner", "nobody")
    with pytest.raises(CommandError, match="no enabled sources"):
        call("ingest", "--owner", "alice")
    with pytest.raises(CommandError, match="company 'Nope'"):
        call("ingest", "--owner", "alice", "Nope")


@pytest.fixture
def child_env_overrides(fixture_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "INTAKE_ALLOW_PRIVATE_NETWORK": "1",
        "INTAKE_GREENHOUSE_URL": fixture_server.base_url,
    }


def test_ingest_dry_run_json_prints_the_preview_summary_and_writes_no_job(
    boards, worker, user, greenhouse_source
):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 4)])
    out = call("ingest", "--owner", "alice", "Acme", "--dry-run", "--json", "--timeout", "60")
    summary = json.loads(out)
    assert summary["run"]["kind"] == PREVIEW and summary["run"]["status"] == "finished"
    assert summary["outcomes"]["new"] == 3
    assert summary["sources"][0]["listed"] == 3
    assert not Job.objects.exists()


def test_ingest_json_counts_in_the_outcome_words_of_the_pages(
    boards, worker, user, greenhouse_source
):
    mount_greenhouse(
        boards, "acme", [greenhouse_job(1, "Role 1"), greenhouse_job(9, omit=["title"])]
    )
    summary = json.loads(call("ingest", "--owner", "alice", "--json", "--timeout", "60"))
    assert summary["run"]["outcomes"] == {"new": 1, "invalid": 1}
    assert summary["run"]["phase"] == "Finished"
    # The ingesting stage's results in the job status words; the invalid row is no job.
    assert summary["jobs"] == {"ready": 1, "skipped": 0, "error": 0}


def test_ingest_wait_follows_the_run_to_the_end(boards, worker, user, greenhouse_source):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 4)])
    out = call("ingest", "--owner", "alice", str(greenhouse_source.pk), "--wait", "--timeout", "60")
    run = IngestionRun.objects.get()
    assert run.status == RunStatus.FINISHED
    assert f"Run #{run.pk} finished." in out and "3 ready" in out
    assert Job.objects.filter(status=JobStatus.READY).count() == 3

"""The stepper's run steps through Django's test client: home resumes the active run, Preview
and Ingest start runs and show their results, the items table filters and pages, retry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from ingestion import services
from ingestion.models import Job, JobStatus, Source
from ingestion.run_kinds import INGEST, PREVIEW
from runs import services as run_services
from runs import transitions
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_every_step_needs_a_login(user, greenhouse_source):
    anonymous = Client()
    for path in ("/start/", "/preview/1/", "/ingest/1/", "/runs/1/items/"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_home_goes_to_configure_or_resumes_the_active_run(client, user, greenhouse_source):
    assert client.get("/start/")["Location"] == "/configure/"
    run = services.preview_start(owner=user)
    assert client.get("/start/")["Location"] == f"/preview/{run.pk}/"
    run_services.run_request_abort(run)
    ingest = services.ingest_start(owner=user)
    assert client.get("/start/")["Location"] == f"/ingest/{ingest.pk}/"
    assert client.get("/")["Location"] == "/start/"


def test_home_does_not_resume_a_run_whose_worker_stopped_responding(
    client, user, greenhouse_source, settings
):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = services.ingest_start(owner=user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    IngestionRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    assert client.get("/start/")["Location"] == "/configure/"
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR and "worker stopped responding" in run.error_message


def test_the_step_page_of_a_run_whose_worker_stopped_responding_shows_it_ended(
    client, user, greenhouse_source, settings
):
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = services.preview_start(owner=user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    IngestionRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    page = client.get(f"/preview/{run.pk}/").content.decode()
    assert "worker stopped responding" in page
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ERROR


def test_preview_start_runs_the_selected_sources(client, user, greenhouse_source):
    Source.objects.create(owner=user, company="Globex", kind="lever", identifier="globex")
    response = client.post("/preview/", {"source": [greenhouse_source.pk]})
    run = IngestionRun.objects.get()
    assert response["Location"] == f"/preview/{run.pk}/"
    assert run.kind == PREVIEW
    assert [s["id"] for s in run.config["sources"]] == [greenhouse_source.pk]


def test_starting_while_a_run_is_active_shows_the_active_run(client, user, greenhouse_source):
    active = services.ingest_start(owner=user)
    response = client.post("/preview/", {"source": [greenhouse_source.pk]}, follow=True)
    assert response.redirect_chain[-1][0] == f"/ingest/{active.pk}/"
    assert "already in progress" in response.content.decode()
    assert IngestionRun.objects.count() == 1


def test_a_preview_without_sources_is_refused_on_configure(client, user):
    response = client.post("/preview/", {}, follow=True)
    assert response.redirect_chain[-1][0] == "/configure/"


def test_another_users_runs_are_404(client, other_user, greenhouse_source):
    Source.objects.create(owner=other_user, company="B", kind="greenhouse", identifier="b")
    theirs = services.preview_start(owner=other_user)
    for path in (f"/preview/{theirs.pk}/", f"/runs/{theirs.pk}/items/"):
        assert client.get(path).status_code == 404
    assert client.post("/ingest/", {"preview": theirs.pk}).status_code == 404
    assert client.post(f"/runs/{theirs.pk}/retry/").status_code == 404


def test_a_finished_preview_shows_its_diff_and_offers_to_ingest_it(
    boards, work, client, user, greenhouse_source
):
    mount_greenhouse(
        boards,
        "acme",
        [greenhouse_job(i, f"Role {i}") for i in range(1, 4)] + [greenhouse_job(9, omit=["title"])],
    )
    preview = work(services.preview_start(owner=user))
    page = client.get(f"/preview/{preview.pk}/").content.decode()
    assert "What an ingest would change" in page
    assert "nothing was written to your jobs" in page
    assert 'data-role="ingest"' in page and "Ingest these results" in page
    assert page.count('data-outcome="new"') == 3 and page.count('data-outcome="invalid"') == 1

    response = client.post("/ingest/", {"preview": preview.pk})
    ingest = IngestionRun.objects.get(kind=INGEST)
    assert response["Location"] == f"/ingest/{ingest.pk}/" and ingest.preview == preview
    work(ingest)
    page = client.get(f"/ingest/{ingest.pk}/").content.decode()
    assert f"/jobs/?run={ingest.pk}" in page
    assert f"/runs/{ingest.pk}/report.csv" in page and f"/runs/{ingest.pk}/report.json" in page


def test_a_stale_or_changed_preview_says_so_before_ingesting(
    boards, work, client, user, greenhouse_source, settings
):
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Role 1")])
    preview = work(services.preview_start(owner=user))
    assert "Before you ingest" not in client.get(f"/preview/{preview.pk}/").content.decode()
    IngestionRun.objects.filter(pk=preview.pk).update(
        finished_at=timezone.now() - timedelta(hours=3)
    )
    greenhouse_source.exclude_keywords = ["Intern"]
    greenhouse_source.save()
    page = client.get(f"/preview/{preview.pk}/").content.decode()
    assert "Before you ingest" in page and "3 hours old" in page
    assert "Acme (greenhouse) was changed since this preview" in page
    assert "Ingest anyway" in page


def test_the_items_table_filters_by_outcome_and_pages(
    boards, work, client, user, greenhouse_source
):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 121)])
    preview = work(services.preview_start(owner=user))
    first = client.get(f"/runs/{preview.pk}/items/").content.decode()
    assert first.count("<tr data-outcome=") == 50 and "Page 1 of 3" in first
    last = client.get(f"/runs/{preview.pk}/items/", {"page": 3}).content.decode()
    assert last.count("<tr data-outcome=") == 20
    none = client.get(f"/runs/{preview.pk}/items/", {"outcome": "invalid"}).content.decode()
    assert "No postings match" in none


@pytest.mark.parametrize(
    "query, note",
    [
        ("source=%C2%B2", "source must be a whole number"),  # "²": isdigit() but not int()
        ("source=9223372036854775808", "source must be a whole number"),
        ("outcome=%00", "outcome must be one of"),
        ("status=bogus", "status must be one of"),
        ("page=9223372036854775808", "page must be a whole number from 1 to 1,000,000"),
    ],
)
def test_a_bad_items_filter_is_ignored_with_a_note(
    boards, work, client, user, greenhouse_source, query, note
):
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 4)])
    preview = work(services.preview_start(owner=user))
    for path in (f"/runs/{preview.pk}/items/", f"/preview/{preview.pk}/"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 200
        body = response.content.decode()
        assert body.count("<tr data-outcome=") == 3
        assert f"Ignored: {note}" in body


@pytest.mark.parametrize(
    "data, message",
    [
        ({"source": ["²"]}, "source must be a whole number"),
        ({"source": ["9223372036854775808"]}, "source must be a whole number"),
    ],
)
def test_a_junk_posted_value_is_refused_with_a_message_and_starts_nothing(
    client, user, greenhouse_source, data, message
):
    for path in ("/preview/", "/ingest/"):
        response = client.post(path, data, follow=True)
        assert response.redirect_chain[-1][0] == "/configure/"
        assert message in response.content.decode()
    assert not IngestionRun.objects.exists()


@pytest.mark.parametrize(
    "key, message",
    [("a\x00b", "must not contain control characters"), ("k" * 256, "at most 255 characters")],
)
def test_an_idempotency_key_the_column_cannot_hold_is_refused(
    client, user, greenhouse_source, key, message
):
    data = {"source": [greenhouse_source.pk], "idempotency_key": key}
    response = client.post("/preview/", data, follow=True)
    assert message in response.content.decode()
    assert not IngestionRun.objects.exists()


def test_a_junk_preview_id_is_refused_with_a_message(client, user, greenhouse_source):
    response = client.post("/ingest/", {"preview": "²"}, follow=True)
    assert "preview must be a whole number" in response.content.decode()
    assert not IngestionRun.objects.exists()


@pytest.mark.parametrize("back", ["//evil.example/", "/\\evil.example/", "https://evil.example/"])
def test_a_refusal_goes_back_only_to_a_page_of_this_site(client, user, back):
    response = client.post("/preview/", {"back": back})
    assert response.status_code == 302 and response["Location"] == "/configure/"


def test_the_run_page_of_an_unfinished_run_waits_for_the_results(client, user, greenhouse_source):
    run = services.ingest_start(owner=user)
    page = client.get(f"/ingest/{run.pk}/").content.decode()
    assert 'hx-trigger="run-terminal from:body"' in page
    assert "Results appear here as soon as the run ends" in page
    assert f'sse-connect="/runs/{run.pk}/stream/' in page


def test_retry_failed_starts_a_run_over_the_failed_jobs(
    boards, work, client, user, greenhouse_source
):
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 3)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    boards.route("/v1/boards/acme/jobs/2", status=404, json={})
    run = work(services.ingest_start(owner=user))
    page = client.get(f"/ingest/{run.pk}/").content.decode()
    assert "Retry 1 failed job" in page
    boards.route("/v1/boards/acme/jobs/2", json=jobs[1])
    response = client.post(f"/runs/{run.pk}/retry/")
    retry = IngestionRun.objects.latest("id")
    assert response["Location"] == f"/ingest/{retry.pk}/" and retry.config["retry_of"] == run.pk
    work(retry)
    assert retry.status == RunStatus.FINISHED or retry.refresh_from_db() is None
    assert Job.objects.filter(status=JobStatus.READY).count() == 2


def test_the_generic_run_page_and_the_runs_list_lead_to_the_step_pages(
    client, user, greenhouse_source
):
    preview = services.preview_start(owner=user)
    assert client.get(f"/runs/{preview.pk}/")["Location"] == f"/preview/{preview.pk}/"
    assert f'href="/preview/{preview.pk}/"' in client.get("/runs/").content.decode()
    run_services.run_request_abort(preview)
    diagnostic = run_services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    assert client.get(f"/runs/{diagnostic.pk}/").status_code == 200  # keeps the generic page

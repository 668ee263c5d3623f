"""The run endpoints: start, follow, abort, retry, resume, items, report and events, with
their status codes and problems. Runs are worked by a real RQ worker (in burst mode) against
the real local board server."""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from ingestion import services
from ingestion.models import Job, JobStatus, Source
from ingestion.run_kinds import INGEST, PREVIEW
from runs import services as run_services
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.api.conftest import ApiClient, assert_problem
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)

LINKS = ("statusUrl", "itemsUrl", "reportUrl", "eventsUrl")


@pytest.fixture
def board(boards, greenhouse_source):  # type: ignore[no-untyped-def]
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 4)])
    return greenhouse_source


@pytest.fixture
def other_api(other_user) -> ApiClient:  # type: ignore[no-untyped-def]
    from api import tokens

    return ApiClient(tokens.token_create(owner=other_user, name="theirs")[1])


# --- POST /runs -----------------------------------------------------------------------------


def test_starting_a_preview_answers_202_with_the_run_and_its_urls(api, user, board):
    response = api.post("/runs", json={"kind": "preview", "sources": [board.pk]})
    assert response.status_code == 202
    body = response.json()
    run = IngestionRun.objects.get(owner=user)
    assert body["runId"] == run.pk and body["kind"] == PREVIEW and body["status"] == "pending"
    assert body["statusUrl"] == f"/api/v1/runs/{run.pk}" == response["Location"]
    assert body["eventsUrl"] == f"/api/v1/runs/{run.pk}/events"
    assert all(body[link].startswith(f"/api/v1/runs/{run.pk}") for link in LINKS)
    assert run.config["sources"][0]["id"] == board.pk


def test_a_run_without_sources_reads_every_enabled_one(api, user, board):
    Source.objects.create(owner=user, company="Off", kind="lever", identifier="off", enabled=False)
    assert api.post("/runs", json={"kind": "preview"}).status_code == 202
    run = IngestionRun.objects.get(owner=user)
    assert [s["id"] for s in run.config["sources"]] == [board.pk]


def test_an_ingest_of_a_finished_preview_applies_it(api, user, board, work):
    preview = work(services.preview_start(owner=user))
    response = api.post("/runs", json={"kind": "ingest", "options": {"previewId": preview.pk}})
    assert response.status_code == 202
    ingest = IngestionRun.objects.get(pk=response.json()["runId"])
    assert ingest.kind == INGEST and ingest.preview == preview
    assert work(ingest).status == RunStatus.FINISHED
    assert Job.objects.filter(owner=user, status=JobStatus.READY).count() == 3


def test_the_same_idempotency_key_returns_the_same_run(api, user, board):
    headers = {"Idempotency-Key": "nightly-2026-12-02"}
    body = {"kind": "preview", "sources": [board.pk]}
    first = api.post("/runs", json=body, headers=headers)
    again = api.post("/runs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["runId"] == again.json()["runId"]
    assert again["Idempotent-Replayed"] == "true"
    assert IngestionRun.objects.filter(owner=user).count() == 1


def test_the_same_key_with_another_body_is_a_422(api, user, board):
    headers = {"Idempotency-Key": "k1"}
    api.post("/runs", json={"kind": "preview", "sources": [board.pk]}, headers=headers)
    response = api.post("/runs", json={"kind": "preview"}, headers=headers)
    body = assert_problem(response, 422, "idempotency-key-reused")
    assert body["runId"] == IngestionRun.objects.get(owner=user).pk


def test_a_second_start_is_a_409_naming_the_active_run(api, user, board):
    active = services.preview_start(owner=user)
    response = api.post("/runs", json={"kind": "ingest"})
    body = assert_problem(response, 409, "run-in-progress")
    assert body["activeRunId"] == active.pk and f"#{active.pk}" in body["detail"]


def test_refusals_of_the_services_are_422_problems(api, user, board):
    cases = [
        ({"kind": "preview", "sources": [999999]}, "No such source"),
        ({"kind": "preview", "sources": []}, "at least one source"),
        ({"kind": "ingest", "options": {"previewId": 999999}}, "No such preview"),
        ({"kind": "preview", "options": {"previewId": 1}}, "for an ingest"),
        ({"kind": "ingest", "sources": [board.pk], "options": {"previewId": 1}}, "give one"),
    ]
    for body, words in cases:
        assert words in assert_problem(api.post("/runs", json=body), 422)["detail"]
    assert not IngestionRun.objects.exists()


def test_another_users_sources_and_previews_are_not_found(api, other_user, user, board, work):
    theirs = Source.objects.create(owner=other_user, company="B", kind="lever", identifier="b")
    detail = assert_problem(
        api.post("/runs", json={"kind": "preview", "sources": [theirs.pk]}), 422
    )
    assert "No such source" in detail["detail"]
    their_preview = IngestionRun.objects.create(owner=other_user, kind=PREVIEW, status="finished")
    response = api.post(
        "/runs", json={"kind": "ingest", "options": {"previewId": their_preview.pk}}
    )
    assert "No such preview" in assert_problem(response, 422)["detail"]


def test_an_exhausted_run_quota_is_a_429_with_retry_after(api, user, board, settings):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    IngestionRun.objects.create(owner=user, kind=PREVIEW, status="finished")
    response = api.post("/runs", json={"kind": "preview"})
    body = assert_problem(response, 429, "quota-exceeded")
    assert body["quota"] == "runs" and 0 < int(response["Retry-After"]) <= 86400 + 1
    assert IngestionRun.objects.filter(owner=user).count() == 1


def test_the_run_quota_is_shared_with_the_pages(api, user, board, settings):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    work_run = services.preview_start(owner=user)  # through the page's service
    run_services.run_request_abort(work_run)
    assert_problem(api.post("/runs", json={"kind": "preview"}), 429, "quota-exceeded")


# --- reading runs ---------------------------------------------------------------------------


def test_current_is_the_active_run_or_null(api, user, board):
    assert api.get("/runs/current").json() is None
    run = services.preview_start(owner=user)
    body = api.get("/runs/current").json()
    assert body["id"] == run.pk and body["status"] == "pending"
    assert body["links"]["eventsUrl"] == f"/api/v1/runs/{run.pk}/events"


def test_a_run_reads_as_its_snapshot_with_an_etag(api, user, board, work):
    run = work(services.preview_start(owner=user))
    response = api.get(f"/runs/{run.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "finished" and body["terminal"] is True
    assert body["totalJobs"] == run.total_jobs and body["outcomes"]["new"] == 3
    assert {"createdAt", "startedAt", "finishedAt", "errorMessage", "counts", "phase"} <= set(body)
    etag = response["ETag"]
    cached = api.get(f"/runs/{run.pk}", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached["ETag"] == etag


def test_the_etag_changes_when_the_run_does(api, user, board):
    run = services.preview_start(owner=user)
    etag = api.get(f"/runs/{run.pk}")["ETag"]
    run_services.run_request_abort(run)
    response = api.get(f"/runs/{run.pk}", headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.json()["status"] == "aborted"


def test_polling_a_run_is_one_query(api, user, board, django_assert_max_num_queries, work):
    run = work(services.preview_start(owner=user))
    api.get(f"/runs/{run.pk}")  # the token's last use is written at most once a minute
    # The token's row (with its user), then the run.
    with django_assert_max_num_queries(2):
        assert api.get(f"/runs/{run.pk}").status_code == 200


def test_another_users_run_is_a_404_everywhere(api, other_api, user, board):
    run = services.preview_start(owner=user)
    for path in ("", "/items", "/report", "/events"):
        assert_problem(other_api.get(f"/runs/{run.pk}{path}"), 404, "not-found")
    for action in ("abort", "retry-failed", "resume"):
        assert_problem(other_api.post(f"/runs/{run.pk}/{action}"), 404, "not-found")
    assert_problem(api.get("/runs/987654"), 404)
    assert other_api.get("/runs").json()["items"] == []
    assert IngestionRun.objects.get(pk=run.pk).status == "pending"


def test_the_list_filters_and_pages_with_a_cursor(api, user):
    for n in range(5):
        IngestionRun.objects.create(
            owner=user, kind=PREVIEW if n % 2 else INGEST, status="finished"
        )
    IngestionRun.objects.create(owner=user, kind=DIAGNOSTIC, status="error")
    seen = []
    cursor = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/runs", data=query).json()
        seen += [run["id"] for run in body["items"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert seen == list(
        IngestionRun.objects.order_by("-created_at", "-id").values_list("id", flat=True)
    )
    previews = api.get("/runs", data={"kind": "preview"}).json()["items"]
    assert len(previews) == 2 and {r["kind"] for r in previews} == {"preview"}
    errors = api.get("/runs", data={"status": "error"}).json()["items"]
    assert [r["kind"] for r in errors] == [DIAGNOSTIC]


@pytest.mark.parametrize(
    "query",
    [{"status": "sideways"}, {"kind": "nope"}, {"limit": 0}, {"limit": 100000}, {"limit": "x"}],
)
def test_bad_list_filters_are_422_problems(api, query):
    body = assert_problem(api.get("/runs", data=query), 422, "validation-failed")
    assert body["errors"][0]["in"] == "query"


@pytest.mark.parametrize("cursor", ["junk", "eyJpZCI6IngifQ", "W10", "x" * 600, "²"])
def test_a_cursor_this_api_did_not_hand_out_is_a_400(api, cursor):
    assert_problem(api.get("/runs", data={"cursor": cursor}), 400, "bad-cursor")


# --- abort, retry, resume -------------------------------------------------------------------


def test_abort_is_202_then_409_once_the_run_has_ended(api, user, board):
    run = services.preview_start(owner=user)
    response = api.post(f"/runs/{run.pk}/abort")
    assert response.status_code == 202 and response.json()["status"] == "aborted"
    assert_problem(api.post(f"/runs/{run.pk}/abort"), 409, "run-not-active")


def test_abort_of_a_running_run_asks_it_to_stop(api, user):
    run = run_services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 5})
    IngestionRun.objects.filter(pk=run.pk).update(
        status=RunStatus.INGESTING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    response = api.post(f"/runs/{run.pk}/abort")
    assert response.status_code == 202 and response.json()["abortRequested"] is True


def test_retry_failed_starts_an_ingest_over_the_failed_jobs(
    api, user, boards, greenhouse_source, work
):
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 3)]
    mount_greenhouse(boards, "acme", jobs, listing_content=False)
    boards.route("/v1/boards/acme/jobs/2", status=404, json={})
    run = work(services.ingest_start(owner=user))
    boards.route("/v1/boards/acme/jobs/2", json=jobs[1])
    response = api.post(f"/runs/{run.pk}/retry-failed")
    assert response.status_code == 202
    retry = IngestionRun.objects.get(pk=response.json()["runId"])
    assert retry.config["retry_of"] == run.pk
    assert work(retry).status == RunStatus.FINISHED
    assert Job.objects.filter(status=JobStatus.READY).count() == 2
    again = api.post(f"/runs/{retry.pk}/retry-failed")
    assert "no failed jobs" in assert_problem(again, 422)["detail"]


def test_resume_needs_an_ended_ingest_with_pending_jobs(api, user, board, work):
    run = work(services.ingest_start(owner=user))
    assert (
        "only an aborted or failed ingest"
        in assert_problem(api.post(f"/runs/{run.pk}/resume"), 422)["detail"]
    )


# --- items and report -----------------------------------------------------------------------


def test_items_filter_by_outcome_and_source_and_page(api, user, boards, greenhouse_source, work):
    jobs = [greenhouse_job(i, f"Role {i}") for i in range(1, 6)] + [
        greenhouse_job(9, omit=["title"])
    ]
    mount_greenhouse(boards, "acme", jobs)
    run = work(services.preview_start(owner=user))
    first = api.get(f"/runs/{run.pk}/items", data={"limit": 4}).json()
    assert len(first["items"]) == 4 and first["nextCursor"]
    rest = api.get(f"/runs/{run.pk}/items", data={"limit": 4, "cursor": first["nextCursor"]})
    items = first["items"] + rest.json()["items"]
    assert rest.json()["nextCursor"] is None and len(items) == 6
    assert {"id", "sourceId", "externalId", "outcome", "jobStatus", "reason"} <= set(items[0])
    invalid = api.get(f"/runs/{run.pk}/items", data={"outcome": "invalid"}).json()["items"]
    assert len(invalid) == 1 and invalid[0]["reason"]
    other = api.get(f"/runs/{run.pk}/items", data={"source": greenhouse_source.pk + 1}).json()
    assert other["items"] == []
    assert_problem(api.get(f"/runs/{run.pk}/items", data={"outcome": "maybe"}), 422)


def test_the_report_is_409_until_the_run_ends_then_json_or_csv(api, user, board, work):
    run = services.preview_start(owner=user)
    assert_problem(api.get(f"/runs/{run.pk}/report"), 409, "run-not-terminal")
    work(run)
    summary = api.get(f"/runs/{run.pk}/report")
    assert summary.status_code == 200 and summary["Content-Type"].startswith("application/json")
    assert summary.json()["run"]["id"] == run.pk and summary.json()["outcomes"]["new"] == 3
    response = api.get(f"/runs/{run.pk}/report", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response.is_async  # streamed under ASGI, never gathered whole

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    rows = list(csv.DictReader(io.StringIO(async_to_sync(read)().decode())))
    assert len(rows) == 3 and {row["outcome"] for row in rows} == {"new"}
    picky = api.get(f"/runs/{run.pk}/report", headers={"Accept": "application/xml"})
    assert_problem(picky, 406, "not-acceptable")
    preferred = api.get(
        f"/runs/{run.pk}/report", headers={"Accept": "application/json;q=0.5, text/csv"}
    )
    assert preferred["Content-Type"].startswith("text/csv")


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "preview", "sources": [2**63]},
        {"kind": "preview", "sources": [0]},
        {"kind": "ingest", "options": {"previewId": -1}},
        {"kind": "ingest", "options": {"previewId": 10**30}},
    ],
)
def test_ids_past_what_the_database_holds_are_422s(api, board, body):
    assert_problem(api.post("/runs", json=body), 422, "validation-failed")


def test_path_and_query_ids_past_a_bigint_are_not_found_or_invalid(api, user):
    assert_problem(api.get(f"/runs/{2**64}"), 404)
    run = IngestionRun.objects.create(owner=user, kind=PREVIEW, status="finished")
    assert_problem(api.get(f"/runs/{run.pk}/items", data={"source": 2**64}), 422)

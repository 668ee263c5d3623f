"""The jobs endpoints: the list with the jobs browser's filters and keyset cursors (dated
postings first, undated last, nothing repeated or skipped), one job with its duplicate group,
and another user's jobs and runs as 404s."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingestion import store
from ingestion.models import JobStatus
from ingestion.run_kinds import INGEST
from ingestion.services import source_create
from runs.models import IngestionRun, RunStatus
from tests.api.conftest import ApiClient, assert_problem
from tests.ingestion.test_views_jobs import make_job

pytestmark = pytest.mark.django_db


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [job["id"] for job in response.json()["items"]]


def test_the_list_pages_through_dated_then_undated_jobs(api: ApiClient, user: Any) -> None:
    now = timezone.now()
    dated = [make_job(user, posted_at=now - timedelta(days=n)) for n in range(5)]
    # Two postings on the same instant: the id breaks the tie.
    dated.append(make_job(user, posted_at=dated[2].posted_at))
    undated = [make_job(user, posted_at=None) for _ in range(3)]
    expected = [dated[0].pk, dated[1].pk, dated[5].pk, dated[2].pk, dated[3].pk, dated[4].pk]
    expected += [job.pk for job in reversed(undated)]

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/jobs", data=params).json()
        seen += [job["id"] for job in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
        # A job added meanwhile, newer than every page read: neither repeated nor skipped.
        if pages == 2:
            make_job(user, posted_at=now + timedelta(days=1))
    assert seen == expected
    first = api.get("/jobs", data={"limit": 1}).json()["items"][0]
    assert set(first) >= {"id", "title", "company", "postedAt", "workplaceType", "sourceId"}
    assert first["links"]["self"] == f"/api/v1/jobs/{first['id']}"


def test_the_browser_s_filters_apply(api: ApiClient, user: Any) -> None:
    source = source_create(owner=user, kind="greenhouse", identifier="acme")
    now = timezone.now()
    python = make_job(user, title="Python Engineer", location="Berlin", source=source)
    remote = make_job(user, title="Go Engineer", workplace_type="remote")
    expired = make_job(user, title="Old Python role", status=JobStatus.EXPIRED)
    old = make_job(user, title="Ancient", posted_at=now - timedelta(days=90))

    assert _ids(api.get("/jobs", data={"q": "python"})) == sorted(
        [python.pk, expired.pk], reverse=True
    )
    assert _ids(api.get("/jobs", data={"q": "python", "status": "expired"})) == [expired.pk]
    assert _ids(api.get("/jobs", data={"remote": "remote"})) == [remote.pk]
    assert _ids(api.get("/jobs", data={"location": "berl"})) == [python.pk]
    assert _ids(api.get("/jobs", data={"source": source.pk})) == [python.pk]
    assert old.pk not in _ids(api.get("/jobs", data={"posted": "30"}))
    day = (now - timedelta(days=90)).date().isoformat()
    assert _ids(api.get("/jobs", data={"postedFrom": day, "postedTo": day})) == [old.pk]


def test_the_run_filter_lists_what_a_run_touched(api: ApiClient, user: Any, other_user: Any):
    run = IngestionRun.objects.create(owner=user, kind=INGEST, status=RunStatus.FINISHED)
    touched = make_job(user, last_run=run)
    make_job(user)
    assert _ids(api.get("/jobs", data={"run": run.pk})) == [touched.pk]
    theirs = IngestionRun.objects.create(owner=other_user, kind=INGEST)
    assert_problem(api.get("/jobs", data={"run": theirs.pk}), 404, "not-found")


@pytest.mark.parametrize(
    "params",
    [
        {"status": "nope"},
        {"remote": "mars"},
        {"posted": "2"},
        {"postedFrom": "2025-13-40"},
        {"source": "x"},
        {"source": 2**64},
        {"run": 0},
        {"limit": 0},
        {"limit": 1000},
    ],
)
def test_a_bad_filter_is_a_422(api: ApiClient, params: dict[str, Any]) -> None:
    body = assert_problem(api.get("/jobs", data=params), 422, "validation-failed")
    assert body["errors"][0]["in"] == "query"


@pytest.mark.parametrize("cursor", ["nope", "eyJpZCI6MX0", "eyJwb3N0ZWRBdCI6IngiLCJpZCI6MX0"])
def test_a_bad_cursor_is_a_400(api: ApiClient, cursor: str) -> None:
    assert_problem(api.get("/jobs", data={"cursor": cursor}), 400, "bad-cursor")


def test_only_your_jobs_are_listed(api: ApiClient, user: Any, other_user: Any) -> None:
    mine = make_job(user)
    theirs = make_job(other_user)
    assert _ids(api.get("/jobs")) == [mine.pk]
    assert_problem(api.get(f"/jobs/{theirs.pk}"), 404, "not-found")


def test_a_job_comes_with_its_duplicate_group(api: ApiClient, user: Any) -> None:
    canonical = make_job(user, title="Backend Engineer", salary_min=100000, salary_currency="EUR")
    repost = make_job(
        user, title="Backend (repost)", status=JobStatus.SKIPPED, duplicate_of=canonical
    )
    again = make_job(
        user, title="Backend (again)", status=JobStatus.SKIPPED, duplicate_of=canonical
    )

    body = api.get(f"/jobs/{canonical.pk}").json()
    assert body["title"] == "Backend Engineer" and body["salaryCurrency"] == "EUR"
    assert body["duplicateOfId"] is None
    group = body["duplicateGroup"]
    assert group["canonical"]["id"] == canonical.pk
    assert [job["id"] for job in group["duplicates"]] == [repost.pk, again.pk]
    assert (group["size"], group["truncated"]) == (3, False)

    body = api.get(f"/jobs/{repost.pk}").json()
    assert body["duplicateOfId"] == canonical.pk
    assert body["duplicateGroup"]["canonical"]["id"] == canonical.pk

    alone = api.get(f"/jobs/{make_job(user).pk}").json()["duplicateGroup"]
    assert (alone["size"], alone["duplicates"]) == (1, [])


@pytest.mark.parametrize("path", ["/jobs", "/jobs/1"])
def test_the_jobs_need_a_token(anonymous: ApiClient, path: str) -> None:
    assert_problem(anonymous.get(path), 401, "unauthorized")
    assert_problem(ApiClient("intake_nope_nope").get(path), 401, "unauthorized")


def test_a_page_costs_the_same_few_queries_however_many_rows(api: ApiClient, user: Any) -> None:
    source = source_create(owner=user, kind="greenhouse", identifier="acme")
    for _ in range(3):
        make_job(user, source=source)
    api.get("/jobs")  # the token's first use writes its last_used_at

    def queries(limit: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(api.get("/jobs", data={"limit": limit}).json()["items"]) == min(limit, 40)
        return len(captured)

    few = queries(2)
    for _ in range(37):
        make_job(user, source=source, posted_at=None)
    # Every field a row shows is read with the page: no query per row.
    assert queries(40) <= few + 1


def test_last_seen_is_when_a_listing_last_named_the_job(api: ApiClient, user: Any) -> None:
    # A re-run that finds a job unchanged stamps JobSeen, not the job row.
    written = (timezone.now() - timedelta(days=3)).replace(microsecond=0)
    seen = written + timedelta(days=2)
    job = make_job(user, last_seen_at=written)
    store.touch_unchanged(seen, [job.pk])
    older = make_job(user, last_seen_at=seen)
    store.touch_unchanged(written, [older.pk])

    listed = {row["id"]: row["lastSeenAt"] for row in api.get("/jobs").json()["items"]}
    for pk in (job.pk, older.pk):
        assert listed[pk] == api.get(f"/jobs/{pk}").json()["lastSeenAt"]
        assert datetime.fromisoformat(listed[pk].replace("Z", "+00:00")) == seen

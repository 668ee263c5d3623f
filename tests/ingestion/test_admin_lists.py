"""The admin's job, run item and raw payload lists stay cheap on tables of millions of rows:
counts stop at a cap, filters list known values instead of reading every row for DISTINCT
ones, the order is the primary key's, and the job list leaves the long texts unread."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin import ModelAdmin, site
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingestion import admin as ingestion_admin
from ingestion.models import ItemOutcome, Job, JobStatus, RawPayload, RunItem, Source
from project import paging
from runs.models import IngestionRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(django_user_model) -> Client:  # type: ignore[no-untyped-def]
    admin = django_user_model.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(admin)
    return client


def make_jobs(owner, count: int) -> list[Job]:  # type: ignore[no-untyped-def]
    now = timezone.now()
    return Job.objects.bulk_create(
        Job(
            owner=owner,
            company="Acme",
            external_id=f"job-{n}",
            title=f"Engineer {n}",
            status=JobStatus.READY,
            workplace_type="hybrid" if n % 2 else "remote",
            employment_type="full_time",
            description=f"<p>{'long text ' * 50}</p>",
            first_seen_at=now,
            last_seen_at=now,
        )
        for n in range(count)
    )


def test_the_job_list_counts_up_to_a_cap_and_reads_no_distinct_values(
    admin_client, django_user_model, monkeypatch
):
    monkeypatch.setattr(paging, "COUNT_CAP", 30)
    owner = django_user_model.objects.create_user("owner")
    jobs = make_jobs(owner, 40)
    if connection.vendor == "postgresql":  # the estimate (40) is under 3 × the cap: counted
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE ingestion_job")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/ingestion/job/")
    assert response.status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    counts = [s for s in sql if "COUNT(" in s.upper()]
    assert counts and all("LIMIT 31" in s for s in counts), counts
    assert not [s for s in sql if "DISTINCT" in s.upper()]
    listing = next(s for s in sql if 'ingestion_job"."title"' in s and "COUNT(" not in s.upper())
    assert '"ingestion_job"."description"' not in listing
    assert 'ORDER BY "ingestion_job"."id" DESC' in listing
    page = response.content.decode()
    # Newest first, a page of the list's size, and a total that says it is past the cap.
    assert f"/admin/ingestion/job/{jobs[-1].pk}/change/" in page
    assert _result_count(page) == (
        "about 40" if connection.vendor == "postgresql" else "more than 30"
    )
    # The workplace filter offers the known values, in words.
    assert "On-site" in page and "Hybrid" in page


def _result_count(page: str) -> str:
    found = re.search(r'data-role="result-count">([^<]*)<', page)
    assert found, "no result count on the page"
    return found.group(1)


def test_past_the_cap_the_admin_says_more_not_the_cap(admin_client, django_user_model, monkeypatch):
    # Counting stops at the cap: the list, its search box and "select all" must not present
    # the cap as the number of jobs (an action on "all" reaches every match, not 30).
    monkeypatch.setattr(paging, "COUNT_CAP", 30)
    owner = django_user_model.objects.create_user("owner")
    make_jobs(owner, 40)
    postgres = connection.vendor == "postgresql"
    if postgres:  # the planner's estimate, read past the cap
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE ingestion_job")
    past = "about 40" if postgres else "more than 30"

    page = admin_client.get("/admin/ingestion/job/").content.decode()
    assert _result_count(page) == past
    assert f"Select all matching jobs ({past})" in page
    assert f"All matching jobs selected ({past})" in page
    assert not re.search(r"(?<!than )\b30 (jobs|selected|results)", page)

    searched = admin_client.get("/admin/ingestion/job/?q=engineer").content.decode()
    assert re.search(r"(about [\d,]+|more than 30) results", searched), searched
    assert re.search(r"(about [\d,]+|more than 30)</span> jobs", searched)

    # Under the cap the count is exact, in Django's own words.
    few = admin_client.get("/admin/ingestion/job/?q=engineer+7").content.decode()
    assert _result_count(few) == "4"  # Engineer 7, 17, 27, 37
    assert "4 results" in few and "Select all matching" not in few


def test_the_fixed_filters_filter(admin_client, django_user_model):
    owner = django_user_model.objects.create_user("owner")
    jobs = make_jobs(owner, 4)
    response = admin_client.get("/admin/ingestion/job/?workplace_type=remote")
    page = response.content.decode()
    shown = {j.pk for j in jobs if f"/admin/ingestion/job/{j.pk}/change/" in page}
    assert shown == {j.pk for j in jobs if j.workplace_type == "remote"}


def test_a_job_page_still_shows_its_texts(admin_client, django_user_model):
    owner = django_user_model.objects.create_user("owner")
    job = make_jobs(owner, 1)[0]
    response = admin_client.get(f"/admin/ingestion/job/{job.pk}/change/")
    assert response.status_code == 200
    assert "long text" in response.content.decode()


BIG_LISTS = pytest.mark.parametrize(
    ("path", "table"),
    [
        ("/admin/ingestion/runitem/", "ingestion_runitem"),
        ("/admin/ingestion/rawpayload/", "ingestion_rawpayload"),
    ],
    ids=["runitem", "rawpayload"],
)


def _list_of(client: Client, owner, path: str, table: str, rows: int) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """The list at `path` over `rows` rows of `table`: its count queries and result count.

    On PostgreSQL the table is ANALYZEd first, so the planner's estimate is `rows`. It comes
    from the statistics, which ANALYZE writes outside any transaction: an earlier test's
    ANALYZE (or autovacuum's, whenever a busy machine gets to it) leaves numbers its
    rolled-back rows no longer match, thousands of rows read for an empty table."""
    if table == "ingestion_runitem":
        make_items(owner, rows)
    else:
        RawPayload.objects.bulk_create(RawPayload(url=f"https://x.test/{n}") for n in range(rows))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    return counts, _result_count(response.content.decode())


@BIG_LISTS
def test_the_other_big_lists_count_up_to_the_cap(
    admin_client, django_user_model, monkeypatch, path, table
):
    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    owner = django_user_model.objects.create_user("owner")
    counts, shown = _list_of(admin_client, owner, path, table, 3)
    assert counts and all("LIMIT 3" in s for s in counts), counts
    # Past the cap: the estimate (3, under 3 × the cap, so counted) or "more than".
    assert shown == ("about 3" if connection.vendor == "postgresql" else "more than 2")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimate: PostgreSQL")
@BIG_LISTS
def test_the_other_big_lists_count_nothing_when_the_estimate_is_far_past_the_cap(
    admin_client, django_user_model, monkeypatch, path, table
):
    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    owner = django_user_model.objects.create_user("owner")
    assert _list_of(admin_client, owner, path, table, 7) == ([], "about 7")


def _letters(number: int) -> str:
    """`number` in letters (12 is "bc"), so that a number searched for is only a run's."""
    return "".join(chr(ord("a") + int(digit)) for digit in str(number))


def make_items(owner, count: int, *, sources: int = 1, **fields) -> list[RunItem]:  # type: ignore[no-untyped-def]
    run = IngestionRun.objects.create(owner=owner, kind="ingest", status="finished")
    made = [
        Source.objects.create(
            owner=owner, company=f"Co {n}", kind="greenhouse", identifier=f"r{run.pk}-{n}"
        )
        for n in range(sources)
    ]
    return RunItem.objects.bulk_create(
        RunItem(
            run=run,
            source=made[n % sources],
            external_id=f"ext-{_letters(run.pk)}-{_letters(n)}",
            title=f"Posting {_letters(n)}",
            outcome=ItemOutcome.NEW,
            **fields,
        )
        for n in range(count)
    )


def _item_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/ingestion/runitem/")
    assert response.status_code == 200
    return len(queries.captured_queries)


def test_the_run_item_list_reads_a_fixed_number_of_queries(admin_client, django_user_model):
    owner = django_user_model.objects.create_user("owner")
    make_items(owner, 2, sources=2)
    few = _item_queries(admin_client)
    make_items(owner, 40, sources=40)
    # Each row's run and source come with the page, not one query per row.
    assert _item_queries(admin_client) == few


def _items_listed(response) -> set[int]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    page = response.content.decode()
    return {int(pk) for pk in re.findall(r"/admin/ingestion/runitem/(\d+)/change/", page)}


def test_a_run_item_search_reads_the_newest_items_or_one_whole_run(
    admin_client, django_user_model, monkeypatch
):
    monkeypatch.setattr(ingestion_admin, "RUN_ITEM_SEARCH_WINDOW", 10)
    owner = django_user_model.objects.create_user("owner")
    old = make_items(owner, 20)
    new = make_items(owner, 5)
    url = "/admin/ingestion/runitem/?q="
    # Everywhere: the newest items only (the window of 10 holds all of the new run's).
    assert _items_listed(admin_client.get(url + "%22posting+d%22")) == {new[3].pk}
    assert _items_listed(admin_client.get(url + "POSTING")) == {i.pk for i in new + old[-5:]}
    assert _items_listed(admin_client.get(url + old[0].external_id)) == set()
    # Narrowed to one run, all of its items, however old.
    narrowed = admin_client.get(f"{url}{old[0].external_id}&run__id__exact={old[0].run_id}")
    assert _items_listed(narrowed) == {old[0].pk}
    in_old_run = admin_client.get(f"{url}%22posting+b%22&run__id__exact={old[0].run_id}")
    assert _items_listed(in_old_run) == {i.pk for i in old if "Posting b" in i.title}
    # A run's Items link narrows the list to it.
    runs = admin_client.get("/admin/runs/ingestionrun/").content.decode()
    assert f'/admin/ingestion/runitem/?run__id__exact={old[0].run_id}"' in runs
    # A number is also a run's: the newest of its items.
    assert _items_listed(admin_client.get(f"{url}{new[0].run_id}")) == {i.pk for i in new}


def test_the_big_lists_write_djangos_checkbox_without_a_template_per_row(
    admin_client, django_user_model
):
    owner = django_user_model.objects.create_user("owner")
    job = make_jobs(owner, 3)[0]
    response = admin_client.get("/admin/ingestion/job/")
    assert "django/forms/widgets/checkbox.html" not in [t.name for t in response.templates]
    model_admin = site._registry[Job]
    assert model_admin.action_checkbox(job) == ModelAdmin.action_checkbox(model_admin, job)
    # The checkbox still selects rows for an action.
    selected = admin_client.post(
        "/admin/ingestion/job/", {"action": "delete_selected", "_selected_action": [job.pk]}
    )
    assert "Are you sure" in selected.content.decode()

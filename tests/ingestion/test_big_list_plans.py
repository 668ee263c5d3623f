"""The jobs list's and the admin's reads that would walk a whole table of a million jobs for a
rare value: on PostgreSQL a trigram index finds a rare search word's or location's jobs, the
admin's fixed filters read their own indexes, and past the cap the jobs list shows the
planner's estimate ("about 1,000,000") rather than a count that reads every match."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone

from ingestion.models import ItemOutcome, Job, JobSeen, JobStatus, RunItem
from ingestion.views import jobs as jobs_view
from project import paging
from runs.models import IngestionRun
from tests.ingestion.test_views_jobs import _bulk_jobs, listed, make_job

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram indexes and estimates are PostgreSQL's"
)
TRIGRAM_INDEX = "ingestion_job_search_trgm"


@pytest.fixture
def client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(django_user_model) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def _analyze() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE ingestion_job")


def _plan(sql: str) -> str:
    """The plan of `sql`; on PostgreSQL with sequential scans discouraged, since on a table of
    thousands of rows (not millions) reading it all can be as cheap as any index."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            return "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute("EXPLAIN " + sql)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")


def _plans_of(client: Client, url: str, marker: str) -> tuple[object, list[str]]:
    """The response to `url` and the plans of its queries whose SQL holds `marker`."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    sqls = [
        q["sql"]
        for q in captured.captured_queries
        if marker in q["sql"] and not q["sql"].startswith("EXPLAIN")  # the count's estimate
    ]
    assert sqls, f"no query of {url} holds {marker!r}"
    return response, [_plan(sql) for sql in sqls]


@postgres_only
def test_rare_words_and_locations_are_found_through_the_trigram_index(client, user):
    # ~2 "Rust Compiler Engineer"s among 20,000 (see _bulk_jobs), and 3 jobs in Reykjavik.
    _bulk_jobs(user, 20_000)
    far = {make_job(user, location="Reykjavik, Iceland").pk for _ in range(3)}
    _analyze()
    rust = set(
        Job.objects.filter(owner=user, title__startswith="Rust Compiler").values_list(
            "pk", flat=True
        )
    )
    for url, expected in [
        ("/jobs/?q=rust+compiler", rust),
        ("/jobs/?q=COMPILER+Rust", rust),
        ("/jobs/?location=reykjavik", far),
        ("/jobs/?q=zyxwv", set()),
    ]:
        response, plans = _plans_of(client, url, "LIMIT 51")
        assert set(listed(response)) == expected, url
        assert TRIGRAM_INDEX in plans[0] and "Seq Scan on ingestion_job" not in plans[0], (
            url,
            plans[0],
        )


@postgres_only
def test_the_admin_search_finds_a_rare_term_through_the_trigram_index(admin_client, user):
    _bulk_jobs(user, 20_000)
    _analyze()
    rust = list(Job.objects.filter(title__startswith="Rust Compiler").values_list("pk", flat=True))
    by_id = list(Job.objects.filter(external_id="19946").values_list("pk", flat=True))
    for term, expected in [
        ("rust+compiler", rust),
        ("%22rust+compiler%22", rust),
        ("19946", by_id),  # an external id (the generated ones are numbers)
    ]:
        response, plans = _plans_of(
            admin_client, f"/admin/ingestion/job/?q={term}", '"ingestion_job"."title"'
        )
        assert _admin_listed(response) == set(expected), term
        for plan in plans:  # the page and its capped count
            assert TRIGRAM_INDEX in plan and "Seq Scan on ingestion_job" not in plan, (term, plan)


def _admin_listed(response) -> set[int]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    return {
        int(pk)
        for pk in re.findall(r"/admin/ingestion/job/(\d+)/change/", response.content.decode())
    }


def test_the_search_looks_in_one_text_of_the_searched_columns(client, admin_client, user):
    """Every word must be in the title, company, location or external id, whatever its case;
    words too short for a trigram still match."""
    now = timezone.now()
    job = make_job(user, title="Staff Engineer", company="Nördlicht AG", location="Oslo, NO")
    make_job(user, title="Other", company="Elsewhere", location="Bergen, NO", posted_at=now)
    for query in ("staff+nördlicht+oslo", "ENGINEER+ag", "st+os", "ördl", job.external_id):
        assert listed(client.get(f"/jobs/?q={query}")) == [job.pk], query
    assert listed(client.get("/jobs/?location=oslo")) == [job.pk]
    assert listed(client.get("/jobs/?location=nördlicht")) == []  # the location only
    assert listed(client.get("/jobs/?q=engineer+bergen")) == []
    found = admin_client.get(f"/admin/ingestion/job/?q=%22staff+engineer%22+{job.external_id}")
    assert _admin_listed(found) == {job.pk}
    assert _admin_listed(admin_client.get("/admin/ingestion/job/?q=%22engineer+staff%22")) == set()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("status__exact=pending", "ingestion_job_admin_status"),
        ("employment_type=internship", "ingestion_job_admin_employment"),
        # Django writes it `NOT remote`, which SQLite reads by scanning; PostgreSQL, by index.
        pytest.param("remote__exact=0", "ingestion_job_admin_remote", marks=postgres_only),
        ("workplace_type=onsite", "ingestion_job_admin_workplace"),
    ],
)
def test_an_admin_filter_on_a_rare_value_reads_its_index(admin_client, user, query, index):
    _bulk_jobs(user, 3_000)
    Job.objects.filter(owner=user, workplace_type="onsite").update(workplace_type="hybrid")
    rare = [
        make_job(
            user,
            status=JobStatus.PENDING,
            employment_type="internship",
            remote=False,
            workplace_type="onsite",
        ).pk
        for _ in range(3)
    ]
    _analyze()
    response, plans = _plans_of(
        admin_client, f"/admin/ingestion/job/?{query}", 'FROM "ingestion_job"'
    )
    assert _admin_listed(response) == set(rare)
    for plan in plans:  # the page and its capped count
        assert index in plan, (query, plan)


def _total(client: Client, url: str) -> str:
    """The jobs list's "of …" total."""
    found = re.search(r'data-role="total">([^<]*)<', client.get(url).content.decode())
    assert found, url
    return found.group(1)


def test_past_the_cap_the_total_is_the_planners_estimate(client, user, monkeypatch):
    def total(url: str) -> str:
        return _total(client, url)

    monkeypatch.setattr(jobs_view, "TOTAL_CAP", 30)
    _bulk_jobs(user, 2_000)
    _analyze()

    if connection.vendor == "postgresql":
        assert total("/jobs/") == "about 2,000"
        assert total("/jobs/?status=error").startswith("about 2")  # 222 of them
    else:  # no estimate to give
        assert total("/jobs/") == "more than 30"
    # A search word's share comes from the trigram index's statistics (PostgreSQL).
    assert total("/jobs/?q=engineer").startswith(
        "about " if connection.vendor == "postgresql" else "more than 30"
    )
    # Under the cap, the count is exact.
    assert total("/jobs/?company=Company+007") == "8"

    if connection.vendor == "postgresql":
        # Far past the cap the estimate is trusted and nothing is counted.
        monkeypatch.setattr(jobs_view, "ESTIMATE_TRUSTED", 1_000)
        with CaptureQueriesContext(connection) as captured:
            assert total("/jobs/") == "about 2,000"
        assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]


@postgres_only
def test_far_past_the_cap_the_admin_counts_nothing(admin_client, user, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_CAP", 30)
    _bulk_jobs(user, 2_000)
    _analyze()
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get("/admin/ingestion/job/?q=engineer")
    assert response.status_code == 200
    assert re.search(r'data-role="result-count">about [\d,]+<', response.content.decode())
    assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]


# SQLite uses a partial index only when the query repeats its condition's terms.
@postgres_only
@pytest.mark.parametrize("query", ["outcome__exact=error", "outcome__exact=invalid"])
def test_the_admin_run_item_outcome_filter_reads_the_rare_outcomes_index(admin_client, user, query):
    run = IngestionRun.objects.create(owner=user, kind="ingest", status="finished")
    RunItem.objects.bulk_create(
        RunItem(run=run, external_id=str(n), outcome=ItemOutcome.UNCHANGED) for n in range(3_000)
    )
    rare = {
        RunItem.objects.create(run=run, external_id=f"rare-{n}", outcome=outcome).pk
        for n, outcome in enumerate([ItemOutcome.ERROR, ItemOutcome.INVALID] * 2)
    }
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE ingestion_runitem")
    response, plans = _plans_of(
        admin_client, f"/admin/ingestion/runitem/?{query}", 'FROM "ingestion_runitem"'
    )
    page = response.content.decode()
    shown = {int(pk) for pk in re.findall(r"/admin/ingestion/runitem/(\d+)/change/", page)}
    outcome = query.rpartition("=")[2]
    assert shown == set(
        RunItem.objects.filter(pk__in=rare, outcome=outcome).values_list("pk", flat=True)
    )
    for plan in plans:  # the page and its capped count
        assert "ingestion_runitem_rare_outcome" in plan, (query, plan)


def _stamp(jobs: list[Job]) -> dict[int, object]:
    """A JobSeen stamp a day after each job's own last_seen_at: what the lists must show."""
    stamps = {job.pk: job.last_seen_at + timedelta(days=1) for job in jobs}
    JobSeen.objects.bulk_create(JobSeen(job_id=pk, last_seen_at=at) for pk, at in stamps.items())
    return stamps


def _seen_reads(captured: CaptureQueriesContext) -> tuple[list[str], list[str]]:
    """(the queries reading the jobs themselves, the queries reading JobSeen stamps)."""
    sqls = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith("EXPLAIN")]
    listing = [s for s in sqls if 'FROM "ingestion_job"' in s]
    return listing, [s for s in sqls if 'FROM "ingestion_jobseen"' in s]


def test_the_jobs_list_reads_last_seen_stamps_for_its_page_alone(client, user):
    # Annotated on the list's query, the stamp's subquery ran for every row PostgreSQL read
    # before the LIMIT: the OFFSET's rows (9,500 on page 190) and a sort's whole input.
    _bulk_jobs(user, 120)
    stamps = _stamp(list(Job.objects.filter(owner=user)))
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/jobs/?page=2").content.decode()
    listing, seen = _seen_reads(captured)
    assert listing and not [s for s in listing if "ingestion_jobseen" in s], listing
    assert len(seen) == 1
    shown = [int(pk) for pk in re.findall(r'href="/jobs/(\d+)/"', page)]
    assert len(shown) == jobs_view.PAGE_SIZE
    for pk in shown[:3]:  # the stamp, not the job row's own last_seen_at
        local = timezone.localtime(stamps[pk])
        assert f'title="{local:%Y-%m-%d %H:%M}"' in page


def test_the_admin_job_list_reads_stamps_for_its_page_and_sorts_by_id_alone(admin_client, user):
    _bulk_jobs(user, 60)
    stamps = _stamp(list(Job.objects.filter(owner=user)))
    newest = max(stamps)
    # ?o=2 asks for the title column's order: a sort of every row at a million.
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get("/admin/ingestion/job/?o=2")
    page = response.content.decode()
    listing, seen = _seen_reads(captured)
    rows = [s for s in listing if "COUNT(" not in s.upper()]
    assert rows and all('ORDER BY "ingestion_job"."id" DESC' in s for s in rows), rows
    assert not [s for s in listing if "ingestion_jobseen" in s]
    assert len(seen) == 1  # one query for the page, not one per row
    # Only the id column offers to sort.
    assert page.count('class="sortable') == 1
    local = formats.localize(timezone.template_localtime(stamps[newest]))
    assert local in page
    # A job's own page still reads its stamp.
    change = admin_client.get(f"/admin/ingestion/job/{newest}/change/").content.decode()
    assert f'<div class="readonly">{stamps[newest]}</div>' in change


@postgres_only
def test_an_either_or_workplace_filter_says_more_than_the_page_not_an_estimate(
    client, user, monkeypatch
):
    # "On-site" is the type, or no type and the board's remote flag false: the planner
    # multiplies the two columns' shares as if unrelated (about 390,000 for 1,000 jobs of a
    # million), so its estimate is not shown, and counting would walk every job.
    monkeypatch.setattr(jobs_view, "TOTAL_CAP", 30)
    monkeypatch.setattr(jobs_view, "ESTIMATE_TRUSTED", 1)  # any estimate would be shown

    def total(url: str) -> str:
        return _total(client, url)

    _bulk_jobs(user, 2_000)
    _analyze()

    with CaptureQueriesContext(connection) as captured:
        assert total("/jobs/?remote=onsite") == "more than 50"
    assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    # One column's estimate stands.
    assert total("/jobs/?remote=hybrid").startswith("about ")

"""The jobs list and a job's page, through Django's test client: the user's jobs only, search,
filters, pages without a COUNT, the run-scoped list, the sanitized description, the duplicate
group, and the list on 100,000 jobs (bounded queries, indexed reads)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingestion import selectors
from ingestion.models import Job, JobStatus, Source
from ingestion.run_kinds import INGEST
from runs.models import IngestionRun, RunStatus

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


def make_job(owner, **fields: Any) -> Job:  # type: ignore[no-untyped-def]
    n = next(_numbers)
    now = timezone.now()
    values: dict[str, Any] = {
        "company": "Acme",
        "external_id": f"job-{n}",
        "title": f"Job {n}",
        "url": f"https://jobs.example.com/{n}",
        "status": JobStatus.READY,
        "posted_at": now - timedelta(days=1),
        "first_seen_at": now,
        "last_seen_at": now,
    }
    values.update(fields)
    return Job.objects.create(owner=owner, **values)


def listed(response) -> list[int]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    return [int(i) for i in re.findall(r'data-job-id="(\d+)"', response.content.decode())]


@pytest.fixture
def client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_the_jobs_pages_need_a_login(user):
    job = make_job(user)
    for path in ("/jobs/", f"/jobs/{job.pk}/"):
        response = Client().get(path)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_list_shows_the_users_jobs_newest_posting_first_and_undated_last(
    client, user, other_user
):
    now = timezone.now()
    old = make_job(user, posted_at=now - timedelta(days=9))
    undated_first = make_job(user, posted_at=None)
    new = make_job(user, posted_at=now - timedelta(hours=1))
    undated_second = make_job(user, posted_at=None)
    same_day = make_job(user, posted_at=old.posted_at)
    make_job(other_user, title="Not yours", posted_at=now)

    response = client.get("/jobs/")
    assert listed(response) == [new.pk, same_day.pk, old.pk, undated_second.pk, undated_first.pk]
    assert "Not yours" not in response.content.decode()


def test_the_list_shows_each_jobs_columns_and_status_badge(client, user):
    job = make_job(
        user,
        title="Platform Engineer",
        company="Globex",
        location="Berlin, Germany",
        workplace_type="hybrid",
        status=JobStatus.SKIPPED,
        posted_at=datetime(2024, 5, 17, 12, tzinfo=UTC),
    )
    body = client.get("/jobs/").content.decode()
    row = re.search(rf'<tr data-job-id="{job.pk}">(.*?)</tr>', body, re.S)
    assert row is not None
    cells = row.group(1)
    assert f'href="/jobs/{job.pk}/"' in cells and "Platform Engineer" in cells
    assert "Globex" in cells and "Berlin, Germany" in cells and "Hybrid" in cells
    assert 'class="badge badge-skipped"' in cells and ">Skipped<" in cells
    assert "2024-05-17" in cells


def test_the_list_says_how_many_jobs_match(client, user, monkeypatch):
    monkeypatch.setattr("ingestion.views.jobs.PAGE_SIZE", 2)
    for _ in range(5):
        make_job(user)
    make_job(user, company="Globex")
    assert '<span data-role="total">6</span>' in client.get("/jobs/").content.decode()
    third = client.get("/jobs/?page=3").content.decode()
    assert "Jobs 5–6 of <span" in third and '<span data-role="total">6</span>' in third
    filtered = client.get("/jobs/?company=Globex").content.decode()
    assert '<span data-role="total">1</span>' in filtered


def test_the_empty_list_says_so_and_points_to_ingesting(client, user):
    body = client.get("/jobs/").content.decode()
    assert "No jobs yet" in body and 'href="/start/"' in body
    assert "No jobs match these filters" in client.get("/jobs/?q=nothing").content.decode()


def test_search_needs_every_word_in_the_title_company_or_location(client, user):
    by_title = make_job(user, title="Senior Python Developer", location="Berlin")
    by_company = make_job(user, title="Engineer", company="Python Software", location="Remote")
    by_location = make_job(user, title="Analyst", location="Python Falls, Berlin")
    make_job(user, title="Go Developer", location="Berlin")

    assert set(listed(client.get("/jobs/?q=python"))) == {
        by_title.pk,
        by_company.pk,
        by_location.pk,
    }
    assert set(listed(client.get("/jobs/?q=PYTHON+berlin"))) == {by_title.pk, by_location.pk}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("company=Globex", {"globex"}),
        ("status=error", {"error"}),
        ("remote=remote", {"remote", "remote_flag"}),
        ("remote=hybrid", {"hybrid"}),
        ("remote=onsite", {"onsite", "onsite_flag"}),
        ("location=lisbon", {"lisbon"}),
        ("posted=7", {"recent", "globex", "error", "remote", "hybrid", "lisbon", "source"}),
        ("posted_from=2024-01-01&posted_to=2024-01-31", {"january"}),
        ("posted_to=2023-12-31", {"old"}),
    ],
)
def test_each_filter_narrows_the_list(client, user, query, expected):
    now = timezone.now()
    other_source = Source.objects.create(owner=user, company="S", kind="lever", identifier="s")
    jobs = {
        "recent": make_job(user),
        "globex": make_job(user, company="Globex"),
        "error": make_job(user, status=JobStatus.ERROR, error_message="boom"),
        "remote": make_job(user, workplace_type="remote", remote=True),
        "remote_flag": make_job(user, remote=True, posted_at=now - timedelta(days=40)),
        "hybrid": make_job(user, workplace_type="hybrid", remote=False),
        "onsite": make_job(user, workplace_type="onsite", posted_at=now - timedelta(days=40)),
        "onsite_flag": make_job(user, remote=False, posted_at=now - timedelta(days=50)),
        "lisbon": make_job(user, location="Lisbon, Portugal"),
        "source": make_job(user, source=other_source),
        "january": make_job(user, posted_at=datetime(2024, 1, 31, 23, tzinfo=UTC)),
        "old": make_job(user, posted_at=datetime(2023, 12, 31, 8, tzinfo=UTC)),
        "undated": make_job(user, posted_at=None),
    }
    names = {pk: name for name, pk in ((n, j.pk) for n, j in jobs.items())}
    assert {names[pk] for pk in listed(client.get(f"/jobs/?{query}"))} == expected
    assert listed(client.get(f"/jobs/?source={other_source.pk}")) == [jobs["source"].pk]


def test_the_filters_form_offers_the_users_companies_and_sources(client, user, other_user):
    make_job(user, company="Initech")
    make_job(user, company="Acme")
    make_job(user, company="Acme")
    make_job(other_user, company="Umbrella")
    source = Source.objects.create(owner=user, company="Initech", kind="ashby", identifier="x")
    body = client.get("/jobs/?company=Initech&status=ready").content.decode()
    companies = re.search(r'<select name="company".*?</select>', body, re.S)
    assert companies is not None
    assert re.findall(r'<option value="([^"]*)"', companies.group(0)) == ["", "Acme", "Initech"]
    assert '<option value="Initech" selected>' in companies.group(0)
    assert f'<option value="{source.pk}">Initech · Ashby job board</option>' in body
    assert '<option value="ready" selected>Ready</option>' in body


def test_invalid_filter_values_are_ignored(client, user):
    job = make_job(user)
    response = client.get("/jobs/?status=bogus&posted_from=yesterday&page=x&source=abc&remote=moon")
    assert listed(response) == [job.pk]


@pytest.mark.parametrize(
    "query, note",
    [
        # A day after it overflows Python's dates.
        ("posted_to=9999-12-31", "posted_to must be a date (YYYY-MM-DD) from 1900-01-01"),
        # An offset past PostgreSQL's bigint (and SQLite's integer).
        ("page=9223372036854775808", "page must be a whole number from 1 to 1,000,000"),
        ("source=%C2%B2", "source must be a whole number"),  # "²": isdigit() but not int()
        ("run=9223372036854775808", "run must be a whole number"),
        ("q=a%00b", "q must not contain control characters"),
        ("company=%00", "company must not contain control characters"),
    ],
)
def test_a_filter_value_out_of_range_is_ignored_with_a_note_on_the_page(client, user, query, note):
    job = make_job(user)
    response = client.get(f"/jobs/?{query}")
    assert listed(response) == [job.pk]
    body = response.content.decode()
    assert 'data-role="ignored-params"' in body and f"Ignored: {note}" in body
    fragment = client.get(f"/jobs/?{query}", HTTP_HX_REQUEST="true").content.decode()
    assert f"Ignored: {note}" in fragment


def test_valid_filters_show_no_note(client, user):
    make_job(user)
    body = client.get("/jobs/?posted_to=2099-12-31&page=1&status=ready").content.decode()
    assert "ignored-params" not in body


def test_the_form_works_with_htmx_and_without(client, user):
    make_job(user, title="Python Developer")
    page = client.get("/jobs/").content.decode()
    form = re.search(r"<form[^>]*role=\"search\"[^>]*>", page)
    assert form is not None
    tag = form.group(0)
    assert 'method="get"' in tag and 'action="/jobs/"' in tag
    assert 'hx-get="/jobs/"' in tag and 'hx-target="#job-results"' in tag
    assert 'hx-push-url="true"' in tag

    fragment = client.get("/jobs/?q=python", HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert body.lstrip().startswith('<div id="job-results"')
    assert "<html" not in body and "Python Developer" in body
    assert "HX-Request" in fragment["Vary"]

    # The back button after a swap: htmx asks for the whole page of that URL.
    restored = client.get(
        "/jobs/?q=python", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    ).content.decode()
    assert "<html" in restored and 'value="python"' in restored


def test_pages_go_older_and_newer_and_keep_the_filters(client, user, monkeypatch):
    monkeypatch.setattr("ingestion.views.jobs.PAGE_SIZE", 2)
    now = timezone.now()
    jobs = [make_job(user, title=f"Dev {i}", posted_at=now - timedelta(days=i)) for i in range(5)]
    make_job(user, title="Manager")

    first = client.get("/jobs/?q=dev")
    assert listed(first) == [jobs[0].pk, jobs[1].pk]
    body = first.content.decode()
    assert 'href="?q=dev&amp;page=2"' in body and "Newer" not in body

    second = client.get("/jobs/?q=dev&page=2")
    assert listed(second) == [jobs[2].pk, jobs[3].pk]
    body = second.content.decode()
    assert 'href="?q=dev&amp;page=1"' in body and 'href="?q=dev&amp;page=3"' in body
    assert 'hx-get="?q=dev&amp;page=3"' in body

    third = client.get("/jobs/?q=dev&page=3")
    assert listed(third) == [jobs[4].pk]
    assert "Older" not in third.content.decode()
    assert "No more jobs here" in client.get("/jobs/?q=dev&page=9").content.decode()


def test_a_page_reads_dated_then_undated_jobs_in_order_across_the_boundary(user, other_user):
    now = timezone.now()
    dated = [make_job(user, posted_at=now - timedelta(hours=i)) for i in range(7)]
    undated = [make_job(user, posted_at=None) for _ in range(6)]
    make_job(other_user, posted_at=None)
    expected = [j.pk for j in dated] + [j.pk for j in reversed(undated)]

    jobs = selectors.jobs_for_owner(user)
    seen: list[int] = []
    for number in range(1, 6):
        page = selectors.jobs_page(jobs, number=number, per_page=3)
        seen += [job.pk for job in page.jobs]
        assert page.has_next == (number < 5)
    assert seen == expected


def test_the_run_scoped_list_shows_the_jobs_the_run_touched(client, user, other_user):
    run = IngestionRun.objects.create(owner=user, kind=INGEST, status=RunStatus.FINISHED)
    touched = make_job(user, last_run=run, status=JobStatus.ERROR)
    make_job(user)
    response = client.get(f"/jobs/?run={run.pk}")
    assert listed(response) == [touched.pk]
    body = response.content.decode()
    assert "touched last" in body and f'<input type="hidden" name="run" value="{run.pk}">' in body
    assert listed(client.get(f"/jobs/?run={run.pk}&status=ready")) == []

    theirs = IngestionRun.objects.create(owner=other_user, kind=INGEST, status=RunStatus.FINISHED)
    assert client.get(f"/jobs/?run={theirs.pk}").status_code == 404


def test_another_users_job_page_is_not_found(client, other_user):
    theirs = make_job(other_user)
    assert client.get(f"/jobs/{theirs.pk}/").status_code == 404
    assert client.get("/jobs/999999/").status_code == 404


def test_the_job_page_shows_the_sanitized_description_never_the_raw_one(client, user):
    job = make_job(
        user,
        raw_description='<p>Hello</p><script>alert("raw")</script><img src=x onerror="steal()">',
        description="<p>Hello <strong>world</strong></p>",
    )
    body = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "<p>Hello <strong>world</strong></p>" in body
    assert 'alert("raw")' not in body and "steal()" not in body


def test_the_job_page_shows_the_postings_facts(client, user):
    source = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="a")
    job = make_job(
        user,
        source=source,
        title="Data Engineer",
        location="Remote - US",
        workplace_type="remote",
        remote=True,
        employment_type="full-time",
        salary_min=Decimal("120000"),
        salary_max=Decimal("150000.00"),
        salary_currency="USD",
        salary_period="year",
        posted_at=datetime(2024, 3, 1, 9, tzinfo=UTC),
        valid_through=datetime(2024, 6, 30, tzinfo=UTC),
        first_seen_at=datetime(2024, 3, 2, 10, 0, tzinfo=UTC),
        last_seen_at=datetime(2024, 3, 9, 11, 30, tzinfo=UTC),
        url="https://boards.greenhouse.io/acme/jobs/1",
    )
    body = client.get(f"/jobs/{job.pk}/").content.decode()
    assert '<h1 id="job-title">Data Engineer</h1>' in body
    assert "USD 120,000–150,000 per year" in body
    assert "Remote - US" in body and "Full-time" in body
    assert "2024-03-01" in body and "2024-06-30" in body
    assert "2024-03-02 10:00" in body and "2024-03-09 11:30" in body
    assert "Acme · Greenhouse board" in body
    link = re.search(r'<a href="https://boards.greenhouse.io/acme/jobs/1"[^>]*>', body)
    assert link is not None
    assert 'target="_blank"' in link.group(0)
    assert 'rel="noopener noreferrer nofollow"' in link.group(0)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("full_time", "Full-time"), ("per_diem", "Per diem"), ("part_time", "Part-time")],
)
def test_the_employment_type_is_shown_in_words(client, user, stored, shown):
    job = make_job(user, employment_type=stored)
    body = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'<span data-role="employment">{shown}</span>' in body
    assert stored not in body


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"workplace_type": "onsite"}, "On-site"),
        ({"remote": False}, "On-site"),
        ({"remote": True}, "Remote"),
        ({"workplace_type": "hybrid", "remote": True}, "Hybrid"),
    ],
)
def test_each_rows_workplace_reads_as_the_filter_option_that_lists_it(client, user, fields, words):
    job = make_job(user, **fields)
    page = client.get("/jobs/").content.decode()
    options = dict(re.findall(r'<option value="(\w+)"[^>]*>([^<]+)</option>', page))
    row = re.search(rf'<tr data-job-id="{job.pk}">(.*?)</tr>', page, re.S)
    assert row is not None and f"<td>{words}</td>" in row.group(1)
    matching = [value for value, label in options.items() if label == words]
    assert len(matching) == 1
    assert listed(client.get(f"/jobs/?remote={matching[0]}")) == [job.pk]


@pytest.mark.parametrize(
    ("kind", "text"),
    [("greenhouse", "Open on Greenhouse board ↗"), ("file", "Open the posting ↗")],
)
def test_the_posting_link_names_a_board_but_not_an_uploaded_file(client, user, kind, text):
    source = Source.objects.create(owner=user, company="Acme", kind=kind, identifier="a")
    job = make_job(user, source=source)
    body = client.get(f"/jobs/{job.pk}/").content.decode()
    link = re.search(r'data-role="posting-link">([^<]*)</a>', body)
    assert link is not None and link.group(1) == text
    assert "Open on Uploaded file" not in body


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        (
            {"salary_min": Decimal("50"), "salary_currency": "EUR", "salary_period": "hour"},
            "EUR from 50 per hour",
        ),
        ({"salary_max": Decimal("90000.50"), "salary_currency": "GBP"}, "GBP up to 90,000.50"),
        ({"salary_text": "Competitive"}, "Competitive"),
    ],
)
def test_the_salary_is_shown_as_parsed_or_as_written(client, user, fields, shown):
    job = make_job(user, **fields)
    assert shown in client.get(f"/jobs/{job.pk}/").content.decode()


def test_an_error_job_shows_its_error(client, user):
    job = make_job(user, status=JobStatus.ERROR, error_message="Detail page answered 404")
    body = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Detail page answered 404" in body and "badge-error" in body


def test_the_duplicate_group_lists_the_canonical_and_its_duplicates(client, user, other_user):
    canonical = make_job(user, title="Backend Engineer", company="Acme")
    first = make_job(
        user, title="Backend Engineer (repost)", status=JobStatus.SKIPPED, duplicate_of=canonical
    )
    second = make_job(
        user,
        title="Backend Engineer",
        company="Acme EU",
        status=JobStatus.SKIPPED,
        duplicate_of=canonical,
    )
    unrelated = make_job(user, title="Designer")

    body = client.get(f"/jobs/{first.pk}/").content.decode()
    assert f'near-duplicate of <a href="/jobs/{canonical.pk}/">Backend Engineer</a>' in body
    group = body[body.index('id="duplicate-group"') :]
    assert f'href="/jobs/{canonical.pk}/"' in group and f'href="/jobs/{second.pk}/"' in group
    assert "(this job)" in group and f'href="/jobs/{unrelated.pk}/"' not in group

    body = client.get(f"/jobs/{canonical.pk}/").content.decode()
    group = body[body.index('id="duplicate-group"') :]
    assert f'href="/jobs/{first.pk}/"' in group and f'href="/jobs/{second.pk}/"' in group

    assert 'id="duplicate-group"' not in client.get(f"/jobs/{unrelated.pk}/").content.decode()


def test_the_duplicate_group_is_capped(user):
    canonical = make_job(user)
    for _ in range(4):
        make_job(user, status=JobStatus.SKIPPED, duplicate_of=canonical)
    group = selectors.duplicate_group(canonical, limit=3)
    assert group.canonical == canonical and len(group.duplicates) == 3 and group.truncated


# --- 100,000 jobs ---------------------------------------------------------------------------

ROLES = [
    "Backend Engineer",
    "Data Scientist",
    "Product Designer",
    "Account Executive",
    "Site Reliability Engineer",
    "Frontend Developer",
    "Support Specialist",
    "Recruiter",
]
# Seven cities, four workplaces, nine statuses, 251 companies: pairwise coprime, so every
# combination of filters has rows.
CITIES = [
    "Berlin, Germany",
    "London, UK",
    "New York, NY",
    "Remote - US",
    "Lisbon, Portugal",
    "Toronto, Canada",
    "Singapore",
]
STATUSES = [JobStatus.READY] * 6 + [JobStatus.SKIPPED, JobStatus.EXPIRED, JobStatus.ERROR]
WORKPLACES = ["remote", "hybrid", "onsite", ""]


def _bulk_jobs(owner, count: int, *, batch: int = 5_000) -> None:  # type: ignore[no-untyped-def]
    """`count` jobs for `owner`, inserted with executemany in batches: bulk_create spends
    ~45 s of Python preparing 100,000 rows' 38 values on SQLite, this ~3 s. Every column
    starts from a prototype Job's database values; only the listed ones vary."""
    now = timezone.now()
    proto = Job(owner=owner, first_seen_at=now, last_seen_at=now, created_at=now, updated_at=now)
    fields = [f for f in Job._meta.concrete_fields if not f.primary_key]
    base = [f.get_db_prep_save(getattr(proto, f.attname), connection) for f in fields]
    at = {f.name: i for i, f in enumerate(fields)}
    posted_field = Job._meta.get_field("posted_at")
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {Job._meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    with connection.cursor() as cursor:
        for start in range(0, count, batch):
            rows = []
            for n in range(start, min(start + batch, count)):
                row = list(base)
                row[at["company"]] = f"Company {n % 251:03d}"
                row[at["external_id"]] = str(n)
                row[at["url"]] = f"https://jobs.example.com/{n}"
                # A rare title, for a search that must walk far.
                role = "Rust Compiler Engineer" if n % 9_973 == 0 else ROLES[n % len(ROLES)]
                row[at["title"]] = f"{role} {n}"
                row[at["location"]] = CITIES[n % len(CITIES)]
                row[at["workplace_type"]] = WORKPLACES[n % len(WORKPLACES)]
                row[at["status"]] = STATUSES[n % len(STATUSES)]
                # 2% undated.
                posted = None if n % 50 == 7 else now - timedelta(minutes=5 * n)
                row[at["posted_at"]] = posted_field.get_db_prep_save(posted, connection)
                rows.append(row)
            cursor.executemany(sql, rows)


def _explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.slow
def test_the_list_answers_from_indexes_in_a_few_queries_on_100000_jobs(
    client, user, other_user, django_assert_max_num_queries
):
    _bulk_jobs(user, 100_000)
    for _ in range(3):
        make_job(other_user, title="Rust Compiler Engineer elsewhere")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE ingestion_job")

    # session + user + page + the total's estimate (PostgreSQL) and capped count, and on a full
    # page companies and sources; a fragment: session + user + page + estimate + count + the
    # page's last-seen stamps.
    with django_assert_max_num_queries(7):
        first = client.get("/jobs/")
    assert len(listed(first)) == 50 and "Older" in first.content.decode()
    total = "about 100,000" if connection.vendor == "postgresql" else "more than 10,000"
    assert f'<span data-role="total">{total}</span>' in first.content.decode()

    with django_assert_max_num_queries(6):
        filtered = client.get(
            "/jobs/?status=ready&company=Company+042&page=3", HTTP_HX_REQUEST="true"
        )
    rows = Job.objects.in_bulk(listed(filtered))
    assert len(rows) == 50
    assert {(j.status, j.company) for j in rows.values()} == {("ready", "Company 042")}

    with django_assert_max_num_queries(6):
        filtered = client.get(
            "/jobs/?status=ready&remote=hybrid&location=lisbon&posted=30&page=3",
            HTTP_HX_REQUEST="true",
        )
    rows = Job.objects.in_bulk(listed(filtered))
    assert len(rows) == 50
    assert {(j.status, j.workplace_type, j.location) for j in rows.values()} == {
        ("ready", "hybrid", "Lisbon, Portugal")
    }

    # All its matches fit one page: after the dated ones, the undated pass (+1), then the
    # shown jobs' last-seen stamps (+1); the total is the page's own (no count).
    with django_assert_max_num_queries(5):
        search = client.get("/jobs/?q=rust+compiler", HTTP_HX_REQUEST="true")
    found = Job.objects.in_bulk(listed(search))
    assert len(found) == 11 and all(j.owner_id == user.pk for j in found.values())

    # The last page, past every dated job: one count of the dated jobs, one undated read.
    with django_assert_max_num_queries(6):
        last = client.get("/jobs/?page=2000", HTTP_HX_REQUEST="true")
    assert '<span data-role="total">100,000</span>' in last.content.decode()
    assert len(listed(last)) == 50 and "Older" not in last.content.decode()

    if connection.vendor == "postgresql":
        plans = {}
        for name, query in [
            ("page 1", ""),
            ("status", "status=ready"),
            ("company", "company=Company+007"),
        ]:
            with CaptureQueriesContext(connection) as captured:
                client.get(f"/jobs/?{query}", HTTP_HX_REQUEST="true")
            sql = next(q["sql"] for q in captured.captured_queries if "LIMIT 51" in q["sql"])
            plans[name] = _explain(sql)
        assert "ingestion_job_owner_posted" in plans["page 1"], plans["page 1"]
        assert "ingestion_job_status_posted" in plans["status"], plans["status"]
        assert "ingestion_job_company_posted" in plans["company"], plans["company"]
        for plan in plans.values():
            assert "Sort" not in plan and "Seq Scan" not in plan, plan

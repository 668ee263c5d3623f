"""The admin's job, run item and raw payload lists stay cheap on tables of millions of rows:
counts stop at a cap, filters list known values instead of reading every row for DISTINCT
ones, the order is the primary key's, and the job list leaves the long texts unread."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingestion.models import Job, JobStatus
from project import paging

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
    # Newest first, a page of the list's size, and the capped total.
    assert f"/admin/ingestion/job/{jobs[-1].pk}/change/" in page
    assert "30 jobs" in page
    # The workplace filter offers the known values, in words.
    assert "On-site" in page and "Hybrid" in page


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


@pytest.mark.parametrize("path", ["/admin/ingestion/runitem/", "/admin/ingestion/rawpayload/"])
def test_the_other_big_lists_count_up_to_the_cap(admin_client, path):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(path)
    assert response.status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all(f"LIMIT {paging.COUNT_CAP + 1}" in s for s in counts), counts

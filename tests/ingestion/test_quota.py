"""Daily quotas: runs counted in the database, outbound requests counted in Redis (shared by
every Fetcher), the refusals' messages, failing open without Redis, and the summary bar."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from ingestion import quota, services
from ingestion.fetching import Fetcher, FetchError
from ingestion.models import Source
from ingestion.quota import (
    QuotaExceeded,
    quota_check_run_start,
    quota_status,
    quota_take_request,
    take_request_for,
)
from ingestion.run_kinds import INGEST, PREVIEW
from runs.exceptions import RunError
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.fixture_server import Reply
from tests.ingestion.boards import greenhouse_job, mount_greenhouse

pytestmark = pytest.mark.django_db(transaction=True)

# Whole hours read "in 2 h" (format_span): the tests must pass at any time of day.
RESET = re.compile(r"It resets at 00:00 UTC \(in (\d+ h( \d+ min)?|\d+ min|less than a minute)\)\.")


@pytest.fixture(autouse=True)
def clean_redis(redis_client: redis.Redis, settings) -> redis.Redis:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = "UTC"
    return redis_client


def finished_run(owner, kind=PREVIEW, **fields) -> IngestionRun:  # type: ignore[no-untyped-def]
    now = timezone.now()
    defaults = {
        "status": RunStatus.FINISHED,
        "started_at": now - timedelta(seconds=65),
        "finished_at": now,
    }
    return IngestionRun.objects.create(owner=owner, kind=kind, **{**defaults, **fields})


def next_midnight_utc() -> datetime:
    now = timezone.now().astimezone(ZoneInfo("UTC"))
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), ZoneInfo("UTC"))


def render_bar(user) -> str:  # type: ignore[no-untyped-def]
    request = RequestFactory().get("/configure/")
    request.user = user
    html = Template("{% load intake %}{% summary_bar %}").render(Context({"request": request}))
    return re.sub(r"\s+", " ", html)


# --- Runs -----------------------------------------------------------------------------------


def test_a_second_preview_is_refused_with_the_reset_time(settings, user, greenhouse_source):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    finished_run(user)
    with pytest.raises(QuotaExceeded) as refused:
        services.preview_start(owner=user)
    message = str(refused.value)
    assert message.startswith("You have used your 1 run for today (preview and ingest runs;")
    assert "INTAKE_QUOTA_RUNS_PER_DAY" in message
    assert RESET.search(message), message
    assert refused.value.resets_at == next_midnight_utc()
    assert refused.value.quota == "runs"
    assert isinstance(refused.value, RunError)  # every door shows it as a refusal
    assert IngestionRun.objects.filter(owner=user).count() == 1


def test_an_ingest_is_refused_too_but_a_repeated_idempotency_key_returns_its_run(
    settings, user, greenhouse_source
):
    run = services.preview_start(owner=user, idempotency_key="k-1")
    IngestionRun.objects.filter(pk=run.pk).update(status=RunStatus.FINISHED)
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    with pytest.raises(QuotaExceeded, match="1 run for today"):
        services.ingest_start(owner=user)
    assert services.preview_start(owner=user, idempotency_key="k-1").pk == run.pk


def test_diagnostic_runs_do_not_count(settings, user):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    finished_run(user, kind=DIAGNOSTIC)
    finished_run(user, kind=DIAGNOSTIC)
    quota_check_run_start(user)
    assert quota_status(user).runs_used == 0


def test_runs_of_yesterday_do_not_count(settings, user):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    run = finished_run(user, kind=INGEST)
    midnight = next_midnight_utc() - timedelta(days=1)
    IngestionRun.objects.filter(pk=run.pk).update(created_at=midnight - timedelta(seconds=1))
    quota_check_run_start(user)
    IngestionRun.objects.filter(pk=run.pk).update(created_at=midnight)
    with pytest.raises(QuotaExceeded):
        quota_check_run_start(user)


def test_the_day_is_the_calendar_day_of_time_zone(settings, user):
    settings.TIME_ZONE = "America/New_York"
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    finished_run(user)
    with pytest.raises(QuotaExceeded) as refused:
        quota_check_run_start(user)
    local = refused.value.resets_at.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (0, 0)
    assert 0 < (refused.value.resets_at - timezone.now()).total_seconds() <= 86400
    assert re.search(r"resets at 00:00 E[SD]T \(in ", str(refused.value))


def test_other_users_runs_and_a_zero_limit_do_not_refuse(settings, user, other_user):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 1
    finished_run(other_user)
    quota_check_run_start(user)
    finished_run(user)
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 0  # unlimited
    quota_check_run_start(user)
    assert quota_status(user).runs_left is None


# --- Requests -------------------------------------------------------------------------------


def test_requests_are_counted_across_fetchers_and_refused_past_the_limit(settings, boards, user):
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 3
    boards.route("/page", json={"ok": True})
    with (
        Fetcher(on_request=take_request_for(user.pk)) as first,
        Fetcher(on_request=take_request_for(user.pk)) as second,
    ):
        first.get(boards.url("/page"))
        first.get(boards.url("/page"))
        second.get(boards.url("/page"))
        with pytest.raises(FetchError) as refused:
            second.get(boards.url("/page"))
    assert "daily request quota ran out" in str(refused.value)
    assert "INTAKE_QUOTA_REQUESTS_PER_DAY" in str(refused.value)
    assert RESET.search(str(refused.value)), str(refused.value)
    assert boards.hits["/page"] == 3  # the refused request never left
    with Fetcher() as anonymous:  # no owner: not counted, not refused
        anonymous.get(boards.url("/page"))
    status = quota_status(user)
    assert (status.requests_used, status.requests_left, status.requests_exhausted) == (3, 0, True)


def test_each_try_counts_as_a_request(settings, boards, user, redis_client):
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 10
    boards.sequence("/flaky", [Reply(503), Reply(200, b"{}")])
    with Fetcher(on_request=take_request_for(user.pk)) as fetcher:
        fetcher.get(boards.url("/flaky"))
    day = timezone.localdate(timezone.now())
    key = quota.request_key(user.pk, day)
    assert int(redis_client.get(key)) == 2
    assert 86400 < redis_client.ttl(key) <= quota.REQUEST_KEY_TTL


def test_a_run_whose_requests_run_out_fails_its_next_source_with_the_quota_reason(
    settings, boards, work, user, greenhouse_source
):
    Source.objects.create(owner=user, company="Beta", kind="greenhouse", identifier="beta")
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Role One")])
    mount_greenhouse(boards, "beta", [greenhouse_job(2, "Role Two", board="beta")])
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 1
    run = work(services.preview_start(owner=user))
    assert run.status == RunStatus.FINISHED, run.error_message
    assert run.jobs_new == 1
    failed = run.events.get(type="source.failed")
    assert "Beta" in failed.message and "daily request quota ran out" in failed.message
    assert RESET.search(failed.message), failed.message
    assert boards.hits["/v1/boards/beta/jobs"] == 0


def test_a_run_started_just_before_the_quota_ran_out_fails_saying_so(
    settings, boards, work, user, greenhouse_source, redis_client
):
    mount_greenhouse(boards, "acme", [greenhouse_job(1, "Role One")])
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 5
    run = services.ingest_start(owner=user)
    redis_client.set(quota.request_key(user.pk, timezone.localdate(timezone.now())), 5)
    run = work(run)
    assert run.status == RunStatus.ERROR
    assert "Every source failed" in run.error_message
    assert "daily request quota ran out" in run.error_message


def test_a_run_is_refused_once_the_request_quota_is_used_up(settings, user, greenhouse_source):
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 2
    for _ in range(2):
        quota_take_request(user.pk)
    with pytest.raises(QuotaExceeded) as refused:
        services.preview_start(owner=user)
    assert refused.value.quota == "requests"
    assert str(refused.value).startswith("Your daily request quota ran out")
    assert RESET.search(str(refused.value))


def test_without_redis_the_request_quota_fails_open(settings, monkeypatch, boards, user, caplog):
    def unreachable() -> redis.Redis:
        return redis.Redis(unix_socket_path="/nonexistent/valkey.sock", socket_connect_timeout=1)

    monkeypatch.setattr(quota, "_redis", unreachable)
    monkeypatch.setattr(quota, "_last_fail_open_log", 0.0)
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 1
    boards.route("/page", json={})
    with caplog.at_level(logging.WARNING, logger="ingestion.quota"):
        with Fetcher(on_request=take_request_for(user.pk)) as fetcher:
            for _ in range(3):
                fetcher.get(boards.url("/page"))
        quota_check_run_start(user)
    assert boards.hits["/page"] == 3
    assert "Request quota not enforced" in caplog.text
    assert len(caplog.records) == 1  # logged once, not per request
    assert quota_status(user).requests_known is False
    assert "unknown" in render_bar(user)


# --- Summary bar ----------------------------------------------------------------------------


def test_the_summary_bar_shows_the_last_run_its_counts_and_the_quota(
    settings, user, django_assert_max_num_queries
):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 10
    settings.INTAKE_QUOTA_REQUESTS_PER_DAY = 20_000
    finished_run(user, kind=PREVIEW, jobs_new=9)
    run = finished_run(
        user, kind=INGEST, jobs_new=5, jobs_ready=3, outcome_counts={"new": 5, "invalid": 1}
    )
    finished_run(user, kind=DIAGNOSTIC)  # newer, but not a step of the stepper
    for _ in range(500):
        quota_take_request(user.pk)
    with django_assert_max_num_queries(2):
        html = render_bar(user)
    assert 'role="status"' in html and 'data-quota-state="ok"' in html
    assert f'href="/ingest/{run.pk}/"' in html and f"Ingest #{run.pk}" in html
    assert f'data-summary="outcome" data-run-id="{run.pk}">Finished<' in html
    assert re.search(r'finished <time datetime="[^"]+" title="[^"]+ UTC">just now</time>', html)
    assert 'data-summary="duration">1 min 5 s<' in html
    # The outcome words of the run's page, then the jobs it made ready.
    assert '<strong data-summary="new">5</strong> new, ' in html
    assert '<strong data-summary="invalid">1</strong> invalid' in html
    assert '<strong data-summary="jobs-ready">3</strong> jobs ready' in html
    assert "8 of 10 runs left today" in html
    assert "19,500 of 20,000 requests left" in html
    assert "Nearly used up" not in html and "used up" not in html


def test_the_summary_bar_says_what_a_preview_would_bring_and_links_to_its_page(user):
    run = finished_run(
        user, kind=PREVIEW, jobs_new=4, status=RunStatus.ERROR, outcome_counts={"new": 4}
    )
    html = render_bar(user)
    assert f'href="/preview/{run.pk}/"' in html
    assert 'would bring <strong data-summary="new">4</strong> new' in html
    assert "jobs ready" not in html
    assert f'class="badge badge-error" data-summary="outcome" data-run-id="{run.pk}">Error<' in html


def test_the_summary_bar_warns_near_the_quota_and_says_when_it_resets_once_used_up(settings, user):
    settings.INTAKE_QUOTA_RUNS_PER_DAY = 5
    settings.INTAKE_QUOTA_WARN_AT = 0.8
    for _ in range(4):
        finished_run(user)
    html = render_bar(user)
    assert 'summary-bar summary-warn"' in html and "1 of 5 runs left today" in html
    assert "Nearly used up." in html and "You have used 4 of your 5 runs for today" in html
    finished_run(user)
    html = render_bar(user)
    assert 'summary-bar summary-exhausted"' in html and "0 of 5 runs left today" in html
    assert "Daily quota used up." in html and RESET.search(html), html


def test_the_summary_bar_is_empty_for_visitors_and_friendly_before_the_first_run(user):
    from django.contrib.auth.models import AnonymousUser

    assert render_bar(AnonymousUser()).strip() == ""
    assert "No runs yet" in render_bar(user)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2 * 3600 + 30, "2 h"),
        (5 * 3600 + 12 * 60 + 59, "5 h 12 min"),
        (12 * 60, "12 min"),
        (59, "less than a minute"),
        (-5, "less than a minute"),
    ],
)
def test_a_span_reads_in_hours_and_minutes(seconds: int, text: str) -> None:
    assert quota.format_span(timedelta(seconds=seconds)) == text

    assert RESET.fullmatch(f"It resets at 00:00 UTC (in {text}).")

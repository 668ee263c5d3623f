"""GET /metrics: Prometheus text read from the database and Redis (project/metrics.py)."""

from __future__ import annotations

from datetime import timedelta

import django_rq
import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, SimpleWorker

from ingestion import services
from ingestion.models import Source
from project import metrics
from runs.models import IngestionRun, RunStatus
from tests.ingestion.boards import greenhouse_jobs, mount_greenhouse
from tests.support import free_port

pytestmark = pytest.mark.django_db

TOKEN = "scrape-me-123"


@pytest.fixture(autouse=True)
def metrics_token(settings):  # type: ignore[no-untyped-def]
    settings.INTAKE_METRICS_TOKEN = TOKEN
    metrics.forget_settled()  # another test's runs


def scrape(client: Client | None = None, token: str | None = TOKEN) -> dict[str, dict]:
    """The scrape, parsed by prometheus_client's own parser: {family: {(name, labels): value}}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    families: dict[str, dict] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        families[family.name] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples
        }
    return families


def value(families: dict[str, dict], family: str, sample: str, **labels: str) -> float:
    return families[family][(sample, tuple(sorted(labels.items())))]


@pytest.mark.django_db(transaction=True)
def test_it_holds_the_families_with_their_values_after_a_real_run(
    fixture_server, settings, redis_client, user
):
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    settings.INTAKE_GREENHOUSE_URL = fixture_server.base_url
    settings.INTAKE_FETCH_TRIES = 1
    mount_greenhouse(fixture_server, "acme", list(greenhouse_jobs(3)))
    fixture_server.route("/v1/boards/broken/jobs", status=500, body="down")
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    Source.objects.create(owner=user, company="Broken", kind="greenhouse", identifier="broken")

    run = services.ingest_start(owner=user)
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED, run.error_message

    families = scrape()
    assert value(families, "intake_database_up", "intake_database_up") == 1
    assert value(families, "intake_redis_up", "intake_redis_up") == 1
    assert value(families, "intake_runs", "intake_runs", kind="ingest", status="finished") == 1

    durations = "intake_run_duration_seconds"
    labels = {"kind": "ingest", "status": "finished"}
    assert value(families, durations, f"{durations}_count", **labels) == 1
    assert value(families, durations, f"{durations}_bucket", le="+Inf", **labels) == 1
    assert value(families, durations, f"{durations}_bucket", le="21600.0", **labels) == 1
    assert value(families, durations, f"{durations}_sum", **labels) == pytest.approx(
        run.duration_seconds, abs=0.01
    )

    items = "intake_run_items"
    assert value(families, items, f"{items}_total", kind="ingest", outcome="new") == 3
    assert value(families, items, f"{items}_total", kind="ingest", outcome="updated") == 0
    jobs = "intake_run_jobs"
    assert value(families, jobs, f"{jobs}_total", kind="ingest", counter="ready") == 3

    errors = "intake_fetch_errors_last_hour"
    assert value(families, errors, errors, source_kind="greenhouse") == 1
    failing = "intake_sources_failing"
    assert value(families, failing, failing, source_kind="greenhouse") == 1

    assert value(families, "intake_queue_length", "intake_queue_length", queue="default") == 0
    assert value(families, "intake_workers_live", "intake_workers_live", queue="default") == 0
    # No relay runs here: the run's lifecycle and job events wait in the outbox.
    pending = value(families, "intake_outbox_pending", "intake_outbox_pending")
    assert pending >= 4  # run.requested, run.started, job.created, run.finished
    assert value(families, "intake_outbox_lag_seconds", "intake_outbox_lag_seconds") >= 0


def test_the_queue_length_counts_waiting_jobs(redis_client):
    Queue("default", connection=redis_client).enqueue("os.getcwd")
    families = scrape()
    assert value(families, "intake_queue_length", "intake_queue_length", queue="default") == 1


def test_a_run_in_progress_has_no_duration_yet(user, redis_client):
    IngestionRun.objects.create(owner=user, kind="ingest", status=RunStatus.PENDING)
    families = scrape()
    assert value(families, "intake_runs", "intake_runs", kind="ingest", status="pending") == 1
    assert families["intake_run_duration_seconds"] == {}


def test_runs_that_ended_long_ago_count_from_the_cache_with_the_new_ones(user, redis_client):
    now = timezone.now()
    old = now - timedelta(days=3)

    def ended(started, seconds: float, new: int) -> None:  # type: ignore[no-untyped-def]
        IngestionRun.objects.create(
            owner=user,
            kind="preview",
            status=RunStatus.FINISHED,
            started_at=started,
            finished_at=started + timedelta(seconds=seconds),
            jobs_new=new,
            outcome_counts={"new": new},
        )

    ended(old, 3, 5)
    ended(old, 40, 7)
    labels = {"kind": "preview", "status": "finished"}
    first = scrape()  # sums the settled runs into this process's cache
    ended(now - timedelta(seconds=20), 10, 11)  # ended just now: read at every scrape
    families = scrape()
    hist = "intake_run_duration_seconds"
    assert value(first, hist, f"{hist}_count", **labels) == 2
    assert value(families, hist, f"{hist}_count", **labels) == 3
    assert value(families, hist, f"{hist}_bucket", le="5.0", **labels) == 1
    assert value(families, hist, f"{hist}_bucket", le="15.0", **labels) == 2
    assert value(families, hist, f"{hist}_bucket", le="60.0", **labels) == 3
    assert value(families, hist, f"{hist}_sum", **labels) == pytest.approx(53)
    items = "intake_run_items"
    assert value(families, items, f"{items}_total", kind="preview", outcome="new") == 23
    assert value(families, "intake_runs", "intake_runs", **labels) == 3

    # The settled runs were summed once: their rows are not read again until the refresh.
    IngestionRun.objects.filter(started_at=old).delete()
    assert value(scrape(), "intake_runs", "intake_runs", **labels) == 3
    metrics.forget_settled()
    assert value(scrape(), "intake_runs", "intake_runs", **labels) == 1


def test_a_dead_redis_leaves_out_its_families_and_says_so(settings, redis_client):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    families = scrape()
    assert value(families, "intake_redis_up", "intake_redis_up") == 0
    assert value(families, "intake_database_up", "intake_database_up") == 1
    assert "intake_queue_length" not in families


def test_it_refuses_a_request_without_credentials():
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


@pytest.mark.parametrize(
    "header", ["Bearer wrong", "Bearer ", "Basic c2NyYXBlLW1lLTEyMw==", "Bearer ключ"]
)
def test_it_refuses_a_wrong_token(header):
    assert Client().get("/metrics", headers={"Authorization": header}).status_code == 401


def test_without_a_token_set_a_bearer_gets_nothing(settings):
    settings.INTAKE_METRICS_TOKEN = ""
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 401


def test_a_staff_session_may_scrape_and_another_user_may_not(admin_user, user, redis_client):
    staff = Client()
    staff.force_login(admin_user)
    assert "intake_runs" in scrape(staff, token=None)
    plain = Client()
    plain.force_login(user)
    assert plain.get("/metrics").status_code == 401

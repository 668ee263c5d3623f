"""The cron process (`manage.py cron`) and a worker, as separate processes: the scheduler
queues the schedules tick at once and every minute, a worker runs it, a due schedule's ingest
runs to the end; a schedule not yet due starts nothing."""

from __future__ import annotations

import pytest
from django.utils import timezone

from ingestion import schedules
from ingestion.models import Job, Schedule, ScheduleOutcome, Source
from runs.models import IngestionRun
from tests.fixture_server import FixtureServer
from tests.ingestion.boards import greenhouse_job, mount_greenhouse
from tests.support import start_cron, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def child_env_overrides(fixture_server: FixtureServer) -> dict[str, str]:
    return {
        "INTAKE_ALLOW_PRIVATE_NETWORK": "1",
        "INTAKE_GREENHOUSE_URL": fixture_server.base_url,
    }


def test_the_cron_process_starts_a_due_schedule_on_a_worker(
    fixture_server, worker, user, procs, tmp_path, child_env_overrides
):
    mount_greenhouse(fixture_server, "acme", [greenhouse_job(1, "Engineer")])
    source = Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    due = schedules.schedule_create(owner=user, source_ids=[source.pk], interval_hours=6)
    Schedule.objects.filter(pk=due.pk).update(next_run_at=timezone.now())
    later = schedules.schedule_create(
        owner=user, source_ids=[source.pk], interval_hours=6, name="Later"
    )
    procs.append(start_cron(tmp_path, **child_env_overrides))

    def started() -> bool:
        due.refresh_from_db()
        return due.last_outcome == ScheduleOutcome.STARTED

    wait_for(started, timeout=60, what="the cron tick to start the due schedule")
    wait_for(
        lambda: IngestionRun.objects.get(pk=due.last_run_id).is_terminal,
        timeout=60,
        what="the scheduled ingest to end",
    )
    run = IngestionRun.objects.get(pk=due.last_run_id)
    assert run.status == "finished" and run.origin_label == f"schedule “{due.name}”"
    assert Job.objects.filter(source=source).count() == 1
    later.refresh_from_db()
    assert later.last_outcome == "" and IngestionRun.objects.count() == 1

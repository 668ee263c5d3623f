"""The RQ worker class Intake runs."""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import pytest
from django.db import connection
from rq import Worker

from runs.worker import IntakeWorker
from runs.workloads import DIAGNOSTIC

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_closes_database_connections_before_forking_a_work_horse(redis_client):
    connection.ensure_connection()
    seen = {}

    def fork(self, job, queue):  # type: ignore[no-untyped-def]
        seen["connection_open_at_fork"] = connection.connection is not None

    worker = IntakeWorker(["default"], connection=redis_client)
    with mock.patch.object(Worker, "fork_work_horse", fork):
        worker.fork_work_horse(mock.Mock(), mock.Mock())
    assert seen == {"connection_open_at_fork": False}


def test_settings_point_rq_at_the_intake_worker(settings):
    assert settings.RQ["WORKER_CLASS"] == "runs.worker.IntakeWorker"


WARMED: list[str] = []


def record_warm_up() -> None:
    WARMED.append("warm")


def test_the_worker_runs_its_warm_up_hooks_before_taking_jobs(redis_client, settings):
    settings.INTAKE_WORKER_WARM_UP = ["tests.runs.test_worker.record_warm_up"]
    WARMED.clear()
    worker = IntakeWorker(["default"], connection=redis_client)
    worker.work(burst=True)
    assert WARMED == ["warm"]


def run_as_a_starting_worker(code: str, settings) -> None:  # type: ignore[no-untyped-def]
    """Run `code` in a fresh interpreter, as a worker starts; it fails the test by raising."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def test_the_warm_up_hooks_load_what_every_work_horse_would(settings):
    # In a fresh interpreter, as a worker starts: nothing has imported the pipeline yet.
    code = (
        "import sys, django; django.setup()\n"
        "assert 'ingestion.pipeline.process' not in sys.modules\n"
        "from ingestion.simhash import text, vectorized\n"
        "from runs.worker import warm_up\n"
        "warm_up()\n"
        "assert 'ingestion.pipeline.process' in sys.modules\n"
        "assert 'ingestion.adapters.greenhouse' in sys.modules\n"
        "assert len(vectorized._powers) >= 2 * vectorized._PASS_BYTES, len(vectorized._powers)\n"
        "assert text._bmp_alnum.cache_info().currsize == 1\n"
        "from ingestion.fetching import guard\n"
        "assert guard._ssl_context is not None\n"
    )
    run_as_a_starting_worker(code, settings)


@pytest.mark.skipif(
    not connection.settings_dict.get("OPTIONS", {}).get("pool"), reason="a pooled database"
)
def test_the_warm_up_imports_the_connection_pool_without_opening_it(settings):
    # Django imports psycopg's pool when the first connection is opened: in the worker
    # once, rather than in every work horse before its first query.
    code = (
        "import sys, django; django.setup()\n"
        "assert 'psycopg_pool' not in sys.modules\n"
        "from runs.worker import warm_up\n"
        "warm_up()\n"
        "assert 'psycopg_pool' in sys.modules\n"
        "from django.db import connection\n"
        "assert connection.connection is None\n"
        "assert not connection._connection_pools, 'a pool made before the fork'\n"
    )
    run_as_a_starting_worker(code, settings)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's adapters")
def test_the_warm_up_builds_the_connections_adapters_without_connecting(settings):
    # Django builds them when the first connection is opened: in the worker once, rather
    # than in every work horse before its first query.
    code = (
        "import django; django.setup()\n"
        "from django.db.backends.postgresql.psycopg_any import get_adapters_template\n"
        "assert get_adapters_template.cache_info().currsize == 0\n"
        "from runs.worker import warm_up\n"
        "warm_up()\n"
        "assert get_adapters_template.cache_info().currsize == 1\n"
        "from django.db import connection\n"
        "assert connection.connection is None\n"
        "assert not connection._connection_pools, 'a pool made before the fork'\n"
    )
    run_as_a_starting_worker(code, settings)


def test_the_warm_up_freezes_what_the_worker_holds_out_of_the_collector(settings):
    # A fresh interpreter, as a worker starts; what it loaded is then left alone by the
    # collector of every work horse forked from it.
    code = (
        "import gc, django; django.setup()\n"
        "from runs.worker import warm_up\n"
        "before = gc.get_freeze_count()\n"
        "warm_up()\n"
        "assert gc.get_freeze_count() > before + 10000, gc.get_freeze_count()\n"
        "assert sum(gc.get_count()) < 1000, gc.get_count()\n"
    )
    run_as_a_starting_worker(code, settings)


# --- a work horse that died: what the run hears ---------------------------------------------


@pytest.fixture
def sigkill_status() -> int:
    """A real waitpid status of a process killed by SIGKILL."""
    import signal

    child = subprocess.Popen(["sleep", "30"])
    os.kill(child.pid, signal.SIGKILL)
    _, status = os.waitpid(child.pid, 0)
    child.returncode = -signal.SIGKILL  # reaped here: Popen must not wait for it again
    return status


def running_run(user):  # type: ignore[no-untyped-def]
    from runs import services, transitions
    from runs.models import IngestionRun, RunStatus

    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    return IngestionRun.objects.get(pk=run.pk)


def queued_part(run, redis_client):  # type: ignore[no-untyped-def]
    from rq.job import Job

    from runs import services

    (job_id,) = services.run_enqueue_parts(run, "tests.runs.nothing", [("chunk-3", (3,))])
    return Job.fetch(job_id, connection=redis_client)


def test_parts_are_queued_with_attempts_left_for_a_dead_work_horse(user, redis_client):
    from runs import queue

    job = queued_part(running_run(user), redis_client)
    assert job.retries_left == queue.PART_RETRIES == 2  # three attempts in all


def test_a_part_whose_work_horse_was_killed_tells_the_run_it_is_retried(
    user, redis_client, sigkill_status
):
    from runs import tasks
    from runs.models import RunStatus

    run = running_run(user)
    tasks.work_horse_died(queued_part(run, redis_client), sigkill_status)
    run.refresh_from_db()
    assert run.status == RunStatus.INITIALIZING
    event = run.events.order_by("-seq").first()
    assert event.type == "run.part_retried"
    assert event.message == (
        "The worker process running chunk 3 was killed by signal 9 (SIGKILL); chunk 3 is "
        "queued again and resumes after its last committed batch (attempt 2 of 3)."
    )


def test_a_part_out_of_attempts_ends_its_run_saying_what_killed_it(
    user, redis_client, sigkill_status
):
    from runs import tasks
    from runs.models import RunStatus

    run = running_run(user)
    job = queued_part(run, redis_client)
    job.retries_left = 0
    tasks.work_horse_died(job, sigkill_status)
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_message.startswith(
        "The worker process running chunk 3 was killed by signal 9 (SIGKILL), and chunk 3 "
        "has no attempts left"
    )


def test_a_part_queued_without_retries_ends_its_run_saying_it_cannot_resume(
    user, redis_client, sigkill_status
):
    from rq.job import Job

    from runs import services, tasks
    from runs.models import RunStatus

    run = running_run(user)
    (job_id,) = services.run_enqueue_parts(
        run, "tests.runs.nothing", [("listing-1", (1,))], retries=0
    )
    tasks.work_horse_died(Job.fetch(job_id, connection=redis_client), sigkill_status)
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_message.startswith(
        "The worker process running listing 1 was killed by signal 9 (SIGKILL). Listing 1 "
        "cannot resume from where it stopped, so the run was ended"
    )


def test_a_run_whose_own_work_horse_was_killed_ends_at_once(user, redis_client, sigkill_status):
    from rq.job import Job

    from runs import tasks
    from runs.models import RunStatus

    run = running_run(user)
    job = Job.fetch(run.queue_job_ids[0], connection=redis_client)
    tasks.work_horse_died(job, sigkill_status)
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert "was killed by signal 9 (SIGKILL)" in run.error_message
    assert "cannot resume" in run.error_message

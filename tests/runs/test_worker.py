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


def test_the_warm_up_hooks_load_what_every_work_horse_would(settings):
    # In a fresh interpreter, as a worker starts: nothing has imported the feed's views yet.
    code = (
        "import sys, django; django.setup()\n"
        "assert 'django_grip' not in sys.modules\n"
        "from ingestion import simhash\n"
        "from runs.worker import warm_up\n"
        "warm_up()\n"
        "assert 'django_grip' in sys.modules and 'django_eventstream.views' in sys.modules\n"
        "assert 'ingestion.pipeline.process' in sys.modules\n"
        "assert 'ingestion.adapters.greenhouse' in sys.modules\n"
        "assert len(simhash._powers) >= 2 * simhash._PASS_BYTES, len(simhash._powers)\n"
        "assert simhash._bmp_alnum.cache_info().currsize == 1\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()

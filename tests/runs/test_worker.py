"""The RQ worker class Intake runs."""

from __future__ import annotations

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

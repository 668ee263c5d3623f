"""Ten simultaneous starts for one owner: the database lets exactly one win."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from runs import services
from runs.exceptions import RunInProgress
from runs.models import IngestionRun
from runs.workloads import DIAGNOSTIC

pytestmark = pytest.mark.django_db(transaction=True)


def test_ten_concurrent_starts_create_exactly_one_run(user, redis_client):
    barrier = threading.Barrier(10)
    results: list[object] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            barrier.wait()
            outcome: object = services.run_start(owner=user, kind=DIAGNOSTIC)
        except Exception as exc:  # collected and judged below
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    runs = list(IngestionRun.objects.filter(owner=user))
    assert len(runs) == 1
    winner = runs[0]
    started = [r for r in results if isinstance(r, IngestionRun)]
    refused = [r for r in results if isinstance(r, RunInProgress)]
    assert [r.pk for r in started] == [winner.pk]
    assert len(refused) == 9, [repr(r) for r in results]
    for refusal in refused:
        assert refusal.active_run.pk == winner.pk
        assert f"Run #{winner.pk}" in str(refusal)

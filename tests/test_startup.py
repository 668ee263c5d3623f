"""The start command's wait for its children before it prints the URL (the whole command is
tested end to end in test_start_command.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from project import startup
from project.supervisor import StopSignals, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    supervisor = Supervisor(StopSignals(), lambda message: None, Path.cwd())
    yield supervisor
    supervisor.stop_all()


@pytest.mark.parametrize("reachable", [True, False], ids=["redis up", "redis unreachable"])
def test_children_that_do_not_register_with_redis_are_named_once_the_wait_runs_out(
    monkeypatch, supervisor, redis_server, tmp_path, reachable
):
    monkeypatch.setattr(startup, "CHILDREN_READY_TIMEOUT", 1.0)
    redis_url = redis_server if reachable else f"unix://{tmp_path / 'nothing.sock'}"
    supervisor.spawn("web server", "web", SLEEPER)  # not waited for here: it answers HTTP
    worker = supervisor.spawn("RQ worker 1", "worker", SLEEPER)
    cron = supervisor.spawn("cron scheduler", "cron", SLEEPER)

    assert startup.wait_for_children(supervisor, redis_url) == [worker, cron]

"""LOG_FORMAT=json: one JSON object per line, with the run's id while a run's work executes
(project/logjson.py, runs/logcontext.py), from every process Intake runs."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingestion import services
from ingestion.models import Source
from project.logjson import JsonFormatter
from project.management.commands.start import Command as StartCommand
from project.supervisor import StopSignals, Supervisor
from runs.logcontext import run_logging
from runs.models import IngestionRun
from tests.fixture_server import FixtureServer
from tests.ingestion.boards import greenhouse_jobs, mount_greenhouse
from tests.support import Proc, child_env, start_asgi, start_worker, wait_for

JSON_ENV = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


def json_lines(text: str) -> list[dict]:
    """Every non-blank line, parsed: fails on the first that is not a JSON object."""
    entries = []
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)
            assert isinstance(entry, dict), line
            assert {"ts", "level", "logger", "message"} <= entry.keys(), line
            entries.append(entry)
    return entries


def _record(message: str, **kwargs) -> logging.LogRecord:  # type: ignore[no-untyped-def]
    return logging.LogRecord("intake.test", logging.INFO, __file__, 1, message, (), None, **kwargs)


def test_a_record_is_one_json_line_with_the_run_id_while_a_run_executes():
    formatter = JsonFormatter()
    with run_logging(42):
        inside = json.loads(formatter.format(_record("inside")))
    outside = json.loads(formatter.format(_record("outside")))
    assert inside["run_id"] == 42 and inside["message"] == "inside"
    assert inside["logger"] == "intake.test" and inside["level"] == "INFO"
    assert inside["ts"].endswith("+00:00")
    assert "run_id" not in outside


def test_a_traceback_stays_inside_its_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "intake.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc_info"]


def test_the_default_format_is_unchanged(settings):
    assert settings.LOG_FORMAT == "plain"
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "plain"
    assert "uvicorn" not in settings.LOGGING["loggers"]


@pytest.fixture
def json_board(fixture_server: FixtureServer) -> dict[str, str]:
    mount_greenhouse(fixture_server, "acme", list(greenhouse_jobs(3)))
    return {
        **JSON_ENV,
        "INTAKE_ALLOW_PRIVATE_NETWORK": "1",
        "INTAKE_GREENHOUSE_URL": fixture_server.base_url,
    }


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_logs_json_lines_carrying_the_run_id(
    procs, tmp_path, redis_client, json_board, user
):
    worker = start_worker(tmp_path, **json_board)
    procs.append(worker)
    Source.objects.create(owner=user, company="Acme", kind="greenhouse", identifier="acme")
    run = services.ingest_start(owner=user)
    wait_for(lambda: IngestionRun.objects.get(pk=run.pk).is_terminal, timeout=60, what="the run")
    wait_for(lambda: "Successfully completed" in worker.output(), timeout=10, what="RQ's line")
    worker.stop()
    entries = json_lines(worker.output())
    with_run = [e for e in entries if e.get("run_id") == run.pk]
    assert any(e["logger"] == "rq.worker" for e in entries)
    assert any("Successfully completed" in e["message"] for e in with_run), entries
    assert all(e.get("run_id") in (None, run.pk) for e in entries)


@pytest.mark.django_db(transaction=True)
def test_the_web_server_logs_json_lines(procs, tmp_path, redis_client):
    proc, base = start_asgi(tmp_path, **JSON_ENV)
    procs.append(proc)
    assert httpx.get(f"{base}/no-such-page", timeout=10).status_code == 404
    wait_for(lambda: "no-such-page" in proc.output(), timeout=10, what="the 404's line")
    entries = json_lines(proc.output())
    assert any(e["logger"] == "django.request" and e["level"] == "WARNING" for e in entries)


@pytest.mark.django_db(transaction=True)
def test_the_cron_process_logs_json_lines(procs, tmp_path, redis_client):
    argv = [sys.executable, "manage.py", "cron"]
    cron = Proc("cron", argv, env=child_env(**JSON_ENV), log_dir=tmp_path)
    procs.append(cron)
    wait_for(lambda: "Cron started" in cron.output(), timeout=60, what="cron to start")
    cron.stop()
    entries = json_lines(cron.output())
    assert any(e["logger"] == "project.cron" for e in entries)


def test_the_supervisor_passes_json_lines_on_and_wraps_the_others(capfdbinary):
    said: list[str] = []
    supervisor = Supervisor(StopSignals(), said.append, Path.cwd(), json_logs=True)
    mine = {"ts": "2026-01-01T00:00:00.000+00:00", "level": "INFO", "logger": "x", "message": "m"}
    code = f"print('a plain line'); print({json.dumps(json.dumps(mine))})"
    child = supervisor.spawn("RQ worker 1", "worker", [sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while child.alive() or supervisor.selector.get_map():
        supervisor.pump(0.1)
        assert time.monotonic() < deadline
    entries = json_lines(capfdbinary.readouterr().out.decode())
    assert entries[0]["message"] == "a plain line"
    assert entries[0]["logger"] == "intake.worker" and entries[0]["child"] == "RQ worker 1"
    assert entries[1] == mine  # passed on as it was
    assert list(child.tail) == ["a plain line", json.dumps(mine)]


def test_start_says_its_lines_as_json(settings):
    settings.LOG_FORMAT = "json"
    out = io.StringIO()
    command = StartCommand(stdout=out)
    command.say("Intake is running at http://127.0.0.1:8000/ - press Ctrl-C to stop.")
    (entry,) = json_lines(out.getvalue())
    assert entry["logger"] == "intake.start" and entry["message"].startswith("Intake is running")


@pytest.mark.django_db
def test_start_passes_migrate_s_report_as_json(settings):
    settings.LOG_FORMAT = "json"
    out = io.StringIO()
    StartCommand(stdout=out)._migrate(verbosity=1)
    entries = json_lines(out.getvalue())
    assert entries and all(e["logger"] == "intake.start" for e in entries)

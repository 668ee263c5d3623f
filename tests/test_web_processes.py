"""`manage.py start` sizes the web server from the cores it may run on."""

from __future__ import annotations

import pytest

from project.management.commands import start


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 2), (4, 4), (64, 8)])
def test_start_runs_one_web_process_per_core_up_to_a_cap(monkeypatch, cores, expected):
    monkeypatch.setattr(start.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert start.default_web_processes() == expected == min(cores, start.WEB_PROCESSES_MAX)


def test_several_web_processes_run_under_uvicorns_own_process_manager():
    argv = start.web_command("python", "127.0.0.1", 8000, 3)
    assert argv[argv.index("--workers") + 1] == "3"


def test_one_web_process_runs_uvicorn_without_a_process_manager():
    assert "--workers" not in start.web_command("python", "127.0.0.1", 8000, 1)


def test_the_start_command_defaults_to_the_cores(monkeypatch):
    monkeypatch.setattr(start.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    parser = start.Command().create_parser("manage.py", "start")
    assert parser.parse_args([]).web_processes == 3

"""`manage.py start`: run all of Intake as one process tree until Ctrl-C or SIGTERM.

Order of work: migrate, make sure somebody can sign in, start the embedded valkey-server when
REDIS_URL is unset (project/embedded_redis.py), then the web server (uvicorn), N RQ workers,
the cron scheduler and the event relay (runs/relay.py), all children of the supervisor
(project/supervisor.py), which restarts a child that dies and stops them in order.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from project.embedded_redis import clear_stale_socket, embedded_lock, start_valkey, wait_for_redis
from project.logjson import wrap_lines
from project.startup import (
    CHILDREN_READY_TIMEOUT,
    browser_url,
    ensure_login,
    ensure_port_free,
    wait_for_children,
    wait_for_http,
)
from project.supervisor import (
    CRASH_LOOP_DEATHS,
    CRASH_LOOP_WINDOW,
    CrashLoop,
    StopRequested,
    StopSignals,
    Supervisor,
    become_subreaper,
)

# Open SSE streams never end by themselves: uvicorn stops waiting for them after this long,
# which must stay below supervisor.STOP_TIMEOUT so uvicorn exits on its own rather than being
# killed.
WEB_GRACEFUL_SECONDS = 5


# Web processes at most, whatever the cores: each holds its own copy of the app in memory.
WEB_PROCESSES_MAX = 8


def default_web_processes() -> int:
    """One web process per core this process may run on (up to WEB_PROCESSES_MAX): Django's
    ASGI handler runs a process's sync views one at a time on one thread, so pages and
    status polls scale with processes, not with threads. Each process has its own event
    listener, so an SSE stream is served by whichever process accepted it."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, WEB_PROCESSES_MAX))


def web_command(python: str, host: str, port: int, processes: int) -> list[str]:
    """The web server's command line (also what bench/ starts, to measure the same server)."""
    argv = [
        python, "-m", "uvicorn", "project.asgi:application",
        "--host", host, "--port", str(port),
        "--no-access-log",
        # uvicorn's own start and stop lines, once per process, would come after the URL
        # whenever a second process starts late; start says what is running itself.
        "--log-level", "warning",
        "--lifespan", "off",  # Django has no lifespan handler; skip uvicorn's notice
        "--timeout-graceful-shutdown", str(WEB_GRACEFUL_SECONDS),
    ]  # fmt: skip
    if processes > 1:
        # uvicorn's own process manager: it restarts a worker process that dies.
        argv += ["--workers", str(processes)]
    return argv


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


class Command(BaseCommand):
    help = (
        "Run Intake until Ctrl-C or SIGTERM: migrate, create a first 'admin' superuser with a "
        "random password if none exists, start the embedded valkey-server (only when REDIS_URL "
        "is unset), then the web server (uvicorn, one process per core), the RQ workers, the "
        "cron scheduler and the event relay (manage.py relay_events) as child processes, and "
        "print the URL once the web server answers and the workers and the cron scheduler "
        "have started. A child that exits "
        "is restarted after a delay (1 s, doubling while it keeps dying, up to 30 s); one that "
        f"exits {CRASH_LOOP_DEATHS} times within {CRASH_LOOP_WINDOW:.0f} s stops everything, "
        "and the command exits non-zero with that child's last output."
    )
    requires_system_checks = []  # migrate runs them; the children run them again

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
        )
        parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
        parser.add_argument(
            "--web-processes",
            type=positive_int,
            default=default_web_processes(),
            help="web server processes (default: one per core, up to "
            f"{WEB_PROCESSES_MAX}; here %(default)s)",
        )
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=2,
            help="RQ worker processes (default: %(default)s)",
        )

    def say(self, message: str, style: Any = None) -> None:
        if settings.LOG_FORMAT == "json":
            self.stdout.write(wrap_lines(message, logger="intake.start"), ending="")
        else:
            self.stdout.write(style(message) if style else message)
        # stdout is block-buffered when piped (CI logs, tests): our lines must not wait.
        self.stdout.flush()

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        workers: int,
        web_processes: int,
        **options: Any,
    ) -> None:
        signals = StopSignals()
        signals.install()
        become_subreaper()
        supervisor = Supervisor(
            signals, self.say, Path(settings.BASE_DIR), json_logs=settings.LOG_FORMAT == "json"
        )
        url = browser_url(host, port)
        login_line: str | None = None
        crashed: CrashLoop | None = None
        try:
            ensure_port_free(host, port)
            with contextlib.ExitStack() as stack:
                if settings.INTAKE_EMBEDDED_REDIS:
                    stack.enter_context(embedded_lock(settings.VAR_DIR / "valkey"))
                    clear_stale_socket(Path(settings.INTAKE_EMBEDDED_REDIS_SOCKET))
                self._migrate(options["verbosity"])
                if settings.INTAKE_EMBEDDED_REDIS:
                    self._end_orphaned_runs()
                login_line = ensure_login(url)
                try:
                    self._start_children(supervisor, host, port, workers, web_processes)
                    wait_for_http(supervisor, url)
                    # The URL and the sign-in line come last, after the children's start-up
                    # output, where a newcomer looks for them.
                    for child in wait_for_children(supervisor, settings.REDIS_URL):
                        self.say(
                            f"{child.name} has not started within "
                            f"{CHILDREN_READY_TIMEOUT:.0f} s (is Redis reachable? its output is "
                            "above); Intake runs meanwhile, and it joins when it can."
                        )
                    self.say(login_line, self.style.WARNING)
                    login_line = None
                    self.say(
                        f"Intake is running at {url} - press Ctrl-C to stop.", self.style.SUCCESS
                    )
                    supervisor.run_until_stopped()
                except StopRequested:
                    pass
                except CrashLoop as exc:
                    crashed = exc
                finally:
                    self._stop(supervisor)
        finally:
            signals.restore()
            if login_line and "as admin /" in login_line:
                # The new password must not be lost because start-up failed after creating it.
                self.say(login_line, self.style.WARNING)
        if crashed is not None:
            raise CommandError(str(crashed))

    def _migrate(self, verbosity: int) -> None:
        if settings.LOG_FORMAT != "json":
            call_command("migrate", interactive=False, verbosity=verbosity)
            return
        # Its report, line by line, as JSON lines like the rest of the output.
        output = io.StringIO()
        call_command("migrate", interactive=False, verbosity=verbosity, stdout=output)
        if output.getvalue().strip():
            self.say(output.getvalue())

    def _end_orphaned_runs(self) -> None:
        # With the embedded Redis no worker can live outside this process tree (it cannot
        # reach the socket), and the lock says no other `start` runs: a run still running in
        # the database was cut off when Intake last stopped. End it now, with a message,
        # rather than leave it for the reaper.
        from runs.stale import run_end_orphaned

        for run in run_end_orphaned(
            message="Intake was stopped while this run was in progress; start it again. "
            "Work it finished is kept."
        ):
            self.say(f"Run #{run.pk} was cut off when Intake last stopped; marked as error.")

    def _start_children(
        self, supervisor: Supervisor, host: str, port: int, workers: int, web_processes: int
    ) -> None:
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        if settings.INTAKE_EMBEDDED_REDIS:
            socket_path = Path(settings.INTAKE_EMBEDDED_REDIS_SOCKET)
            valkey = start_valkey(supervisor, socket_path, settings.VAR_DIR / "valkey")
            wait_for_redis(supervisor, valkey, socket_path)
            self.say(f"Embedded valkey-server is up on {socket_path}.")
        supervisor.spawn(
            "web server (uvicorn)", "web", web_command(python, host, port, web_processes)
        )
        for number in range(1, workers + 1):
            supervisor.spawn(
                f"RQ worker {number}",
                "worker",
                [python, manage, "rqworker", "default", "--with-scheduler"],
            )
        supervisor.spawn("cron scheduler", "cron", [python, manage, "cron"])
        supervisor.spawn("event relay", "relay", [python, manage, "relay_events"])

    def _stop(self, supervisor: Supervisor) -> None:
        if not supervisor.children:
            return
        self.say("Stopping Intake ...")
        supervisor.stop_all()
        self.say("Stopped.")

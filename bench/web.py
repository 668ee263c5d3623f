"""What bench/live_feed.py and bench/poll.py share: a scratch database and Redis db, the web
server started as `manage.py start` starts it, a signed-in owner with one live run, client
processes, and the web process's threads, memory and CPU.

Not a benchmark itself. Environment: BENCH_PG (server URL, default
postgresql://postgres@127.0.0.1:5432), BENCH_DB (default intake_bench_web; created and
migrated when missing, never dropped), BENCH_REDIS (default redis://127.0.0.1:6379/10).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import (
    PG_SERVER,
    ROOT,
    busy_cpu,  # noqa: F401  (the benchmarks print it)
)

DB_NAME, DATABASE_URL, REDIS_URL = harness.bench_stores(
    "intake_bench_web", "redis://127.0.0.1:6379/10"
)


def child_env(**extra: str) -> dict[str, str]:
    """bench/harness.py's environment for child processes, on this module's database and
    Redis db."""
    return harness.child_env(DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL, **extra)


def setup_django() -> None:
    """Create and migrate the scratch database if needed, then set Django up in this process
    on it (the bench process creates the owner and publishes the events)."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    harness.migrate(child_env())
    os.environ.update(child_env())
    import django

    django.setup()


def owner_with_live_run() -> tuple[Any, str]:
    """A fresh owner (so an earlier bench's run never blocks a new one) with one pending run
    (no worker runs here: it stays active), and that owner's session cookie header."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from runs import services
    from runs.workloads import DIAGNOSTIC

    user = User.objects.create_user(username=f"bench-{uuid.uuid4().hex[:10]}")
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    return run, cookie


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Web:
    """The web server, started with `manage.py start`'s own command line."""

    def __init__(
        self,
        log_dir: Path,
        *,
        web_workers: int | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        from project.management.commands import start

        self.port = port or free_port()
        if hasattr(start, "default_web_processes"):
            processes = web_workers or start.default_web_processes()
            argv = start.web_command(sys.executable, "127.0.0.1", self.port, processes)
        else:  # a checkout from before start sized the web server (to measure "before")
            argv = start.web_command(sys.executable, "127.0.0.1", self.port)
            if web_workers and web_workers > 1:
                argv += ["--workers", str(web_workers)]
        self.argv = argv
        self.log = log_dir / "web.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=child_env(**(env or {})),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the web server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock,
        ):
            sock.sendall(b"GET /login/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
        return False

    def processes(self) -> list[Any]:
        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        return []

    def stop(self) -> None:
        import psutil

        tree = self.processes()
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class Sampler:
    """Samples the web processes' threads and RSS (summed over uvicorn's processes; the
    largest sum seen) and their CPU time between start() and stop()."""

    def __init__(self, web: Web, interval: float = 0.25) -> None:
        self.web = web
        self.interval = interval
        self.threads = 0
        self.rss = 0
        self._cpu0 = 0.0
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self) -> float:
        total = 0.0
        for proc in self.web.processes():
            with contextlib.suppress(Exception):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def _sample(self) -> None:
        threads = rss = 0
        for proc in self.web.processes():
            with contextlib.suppress(Exception):
                threads += proc.num_threads()
                rss += proc.memory_info().rss
        self.threads = max(self.threads, threads)
        self.rss = max(self.rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> Sampler:
        self._cpu0 = self._cpu()
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._sample()
        self.cpu_seconds = self._cpu() - self._cpu0
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self._started
        return {
            "threads": self.threads,
            "rss_mb": round(self.rss / 2**20, 1),
            "cpu_percent_of_a_core": round(100 * self.cpu_seconds / wall, 1),
        }


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def spawn_clients(script: str, count: int, args: list[str]) -> list[subprocess.Popen[str]]:
    """`count` client processes of `script --client …`, each printing one JSON line when
    ready and one with its results at the end."""
    return [
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / script), "--client", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def read_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"a client process exited (code {proc.wait()})")
    return dict(json.loads(line))


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--web-workers", type=int, default=None, help="web processes (default: start's)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")


def client_args(names: tuple[str, ...]) -> argparse.Namespace:
    """A client process's positional arguments (after --client), as strings."""
    parser = argparse.ArgumentParser()
    for name in names:
        parser.add_argument(name)
    return parser.parse_args(sys.argv[2:])

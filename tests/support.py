"""Real parts for tests: the embedded valkey server, RQ worker and ASGI server processes, and
an SSE client that reads a stream in a background thread."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from django.conf import settings
from django.db import connection
from django.test import Client

from project.embedded_redis import valkey_binary

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


class Proc:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _tree(self) -> list[psutil.Process]:
        try:
            leader = psutil.Process(self.popen.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_hard(self) -> None:
        """SIGKILL the worker and its work horse at once: a machine that died. (RQ puts the
        horse in a session of its own, so the process group alone would miss it.)"""
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.popen.wait(10)

    def stop(self, timeout: float = 10) -> None:
        tree = self._tree()
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_hard()
            except ProcessLookupError:
                pass
        for proc in tree:  # whatever it left behind (a work horse) goes too
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


class ValkeyServer:
    """A private valkey-server on a Unix socket: stoppable and restartable on the same path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "valkey.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))

    def start(self) -> None:
        if self.socket.exists():
            self.socket.unlink()
        self.process = subprocess.Popen(
            [
                valkey_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(unix_socket_path=str(self.socket))
        wait_for(lambda: self._ping(client), timeout=10, what="valkey to answer")

    @staticmethod
    def _ping(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def children_database_url() -> str:
    """A DATABASE_URL for child processes pointing at the test database."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or ""
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{params['NAME']}"


def child_env(**overrides: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = children_database_url()
    env["REDIS_URL"] = settings.REDIS_URL
    env["INTAKE_VAR_DIR"] = str(settings.VAR_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in overrides.items():
        env[key] = str(value)
    return env


def start_worker(log_dir: Path, *, name: str = "worker", **env: Any) -> Proc:
    argv = [sys.executable, "manage.py", "rqworker", "default", "--with-scheduler"]
    return Proc(name, argv, env=child_env(**env), log_dir=log_dir)


def start_cron(log_dir: Path, **env: Any) -> Proc:
    """`manage.py cron`: the stale-run check, and RQ's cron schedule (project/cron.py)."""
    argv = [sys.executable, "manage.py", "cron"]
    return Proc("cron", argv, env=child_env(**env), log_dir=log_dir)


def start_asgi(
    log_dir: Path, *, name: str = "web", port: int | None = None, **env: Any
) -> tuple[Proc, str]:
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "project.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        # Open SSE streams would hold a graceful shutdown for its whole timeout.
        "--timeout-graceful-shutdown",
        "2",
    ]
    proc = Proc(name, argv, env=child_env(**env), log_dir=log_dir)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"web server died:\n{proc.output()}")
        try:
            return httpx.get(f"{base}/login/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30, interval=0.2, what="the ASGI server")
    return proc, base


def session_cookies(user: Any) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


@contextlib.contextmanager
def signed_in_client(base_url: str, user: Any, *, timeout: float = 60) -> Iterator[httpx.Client]:
    """An httpx client of a live server, signed in as `user`, sending the CSRF token the
    forms need (from a first page view)."""
    with httpx.Client(base_url=base_url, cookies=session_cookies(user), timeout=timeout) as client:
        client.get("/sources/new/").raise_for_status()
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        yield client


class PeakRSS:
    """Samples the resident memory of process trees in a thread: `peak(name)` is the largest
    RSS one process of the tree registered as `name` reached since `reset()` (a work horse
    forked by a worker is part of the worker's tree, and counted alone: horses are
    separate processes)."""

    def __init__(self, interval: float = 0.02) -> None:
        self._roots: dict[str, int] = {}
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, name: str, pid: int, *, children_only: bool = False) -> None:
        with self._lock:
            self._roots[name] = -pid if children_only else pid
            self._peaks[name] = 0

    def reset(self) -> None:
        with self._lock:
            self._peaks = dict.fromkeys(self._roots, 0)

    def peak(self, name: str) -> int:
        time.sleep(self._interval * 3)  # a last sample
        with self._lock:
            return self._peaks[name]

    def _sample(self, pid: int) -> int:
        children_only = pid < 0
        try:
            root = psutil.Process(abs(pid))
            tree = root.children(recursive=True) + ([] if children_only else [root])
        except psutil.NoSuchProcess:
            return 0
        largest = 0
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                largest = max(largest, proc.memory_info().rss)
        return largest

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                roots = dict(self._roots)
            for name, pid in roots.items():
                rss = self._sample(pid)
                with self._lock:
                    self._peaks[name] = max(self._peaks.get(name, 0), rss)
            self._stop.wait(self._interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class SSEClient:
    """Reads an SSE response in a background thread; events land in a queue."""

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        cookies: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status_code: int | None = None
        self.body = ""
        self.error: Exception | None = None
        self.opened = threading.Event()
        self.closed = threading.Event()
        self._client = httpx.Client(
            base_url=base_url, cookies=cookies, timeout=httpx.Timeout(10, read=None)
        )
        self._request = self._client.build_request("GET", path, headers=headers, params=params)
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._response = self._client.send(self._request, stream=True)
            self.status_code = self._response.status_code
            self.opened.set()
            if self.status_code != 200:
                self.body = self._response.read().decode(errors="replace")
                return
            for event in _parse_sse(self._response.iter_lines()):
                self.events.put(event)
        except (httpx.HTTPError, RuntimeError) as exc:
            self.error = exc
        finally:
            self.opened.set()
            self.closed.set()

    def next_message(self, timeout: float = 15) -> dict[str, Any]:
        """The next RunEvent envelope (SSE `message` events), skipping stream control events."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no SSE message within {timeout} s")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event["event"] == "message":
                envelope = json.loads(event["data"])
                envelope["_sse_id"] = event.get("id")
                return envelope

    def messages_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        collected = []
        while True:
            envelope = self.next_message(timeout=max(0.01, deadline - time.monotonic()))
            collected.append(envelope)
            if predicate(envelope):
                return collected

    def drain(self, wait: float = 0.5) -> list[dict[str, Any]]:
        """Messages that arrive within `wait` seconds of quiet."""
        collected = []
        while True:
            try:
                collected.append(self.next_message(timeout=wait))
            except AssertionError:
                return collected

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._client.close()
        # A read blocked in the reader thread is not woken by close(); that daemon thread
        # ends when the server ends the stream or the test process exits.


def _parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    event: dict[str, Any] = {"event": "message", "data": []}
    for line in lines:
        if line == "":
            if event["data"] or event.get("id") or event["event"] != "message":
                yield {**event, "data": "\n".join(event["data"])}
            event = {"event": "message", "data": []}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            event["data"].append(value)
        elif field in ("event", "id"):
            event[field] = value

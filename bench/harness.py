"""What every benchmark here shares: the processes it starts and stops (RQ workers, fixture
servers), the throwaway database and Redis db, CPU and memory accounting of the workers and
of PostgreSQL, waiting for a run, and running one in this process.

Imported as `from bench import harness` with the project root on sys.path (each script puts it
there first). BENCH_PG (server URL), BENCH_DB (the throwaway database) and BENCH_REDIS (a db it
flushes) are read at import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def bench_stores(default_db: str, default_redis: str) -> tuple[str, str, str]:
    """(database name, database URL, Redis URL) of a benchmark: BENCH_DB and BENCH_REDIS,
    or the script's own defaults, so two scripts' defaults never share a store."""
    name = os.environ.get("BENCH_DB", default_db)
    return name, f"{PG_SERVER}/{name}", os.environ.get("BENCH_REDIS", default_redis)


DB_NAME, DATABASE_URL, REDIS_URL = bench_stores("intake_bench", "redis://127.0.0.1:6379/9")


# --- child processes -------------------------------------------------------------------------


class Children:
    """Every process this script starts, each in its own session; `stop_all` ends each one's
    whole tree (an RQ work horse sits in a session of its own, so a process group would miss
    it). Only pids started here are ever signalled."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        import psutil

        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)  # an RQ worker's warm shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        for child in reversed(tree):  # the work horse and the leader, if still there
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for _, proc in list(reversed(self.procs)):
            self.stop(proc, timeout=5)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DJANGO_SETTINGS_MODULE="project.settings",
        LOG_LEVEL=env.get("LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def busy_cpu(seconds: float = 1.0) -> float:
    """How busy the machine's CPUs are (percent of all cores) over `seconds`: other work on
    a shared machine skews every figure, so it is printed beside them."""
    import psutil

    return float(psutil.cpu_percent(interval=seconds))


def wait_idle(limit: float, threshold: float = 15.0) -> float:
    """With --wait-idle: wait up to `limit` seconds for the CPUs to be mostly idle (other
    sessions' test suites, say) before a timed phase; returns the busy percentage seen."""
    busy = busy_cpu()
    deadline = time.monotonic() + limit
    while busy > threshold and time.monotonic() < deadline:
        busy = busy_cpu(2.0)
    return busy


def raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- the database and Redis ------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    close_django_pool()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    migrate(child_env())


def migrate(env: dict[str, str]) -> None:
    """`manage.py migrate` on the database `env` names, in a child process."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )


def drop_database() -> None:
    import psycopg

    close_django_pool()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def close_django_pool() -> None:
    if "django" not in sys.modules:
        return
    from django.db import connections

    with contextlib.suppress(Exception):
        connections.close_all()
    conn = connections["default"]
    if hasattr(conn, "close_pool"):
        with contextlib.suppress(Exception):
            conn.close_pool()


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def server_version() -> str:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


# --- servers and workers ---------------------------------------------------------------------


def serve_until_stopped(server: Any, ready_file: str) -> None:
    """In a server process: write the FixtureServer's URL to `ready_file` (atomically, for
    start_server), then serve until SIGTERM or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Path(ready_file + ".tmp").write_text(server.base_url)
    os.replace(ready_file + ".tmp", ready_file)
    stop.wait()
    server.close()


def start_server(
    children: Children, name: str, argv: list[str], ready: Path, timeout: float = 30
) -> tuple[Any, str]:
    """Start a server process that announces its URL in `ready` (serve_until_stopped)."""
    proc = children.start(name, argv, child_env())
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} server did not start:\n{children.log_tail(name)}")
        time.sleep(0.05)
    return proc, ready.read_text()


def start_workers(children: Children, count: int, env: dict[str, str]) -> list[Any]:
    from redis import Redis
    from rq import Worker

    workers = [
        children.start(f"worker{i}", [sys.executable, "manage.py", "rqworker", "default"], env)
        for i in range(1, count + 1)
    ]
    connection = Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=connection)) < count:
        dead = [i for i, w in enumerate(workers, 1) if w.poll() is not None]
        if dead or time.monotonic() > deadline:
            name = f"worker{(dead or [1])[0]}"
            raise RuntimeError(f"{name} did not start:\n{children.log_tail(name)}")
        time.sleep(0.1)
    return workers


# --- CPU and memory --------------------------------------------------------------------------


class MemorySampler:
    """Max RSS of every process in the workers' trees (workers and their forked work horses),
    sampled every `interval` seconds in a background thread, per phase."""

    def __init__(self, roots: list[int], interval: float = 0.1) -> None:
        self.roots = roots
        self.interval = interval
        self.phase = "idle"
        self.peaks: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        # Straight from /proc: psutil's children() reads the stat of every process on the
        # machine to find them, and ten times a second that was CPU taken from the run
        # being measured.
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            total, single, horse = 0, 0, 0
            for leader in self.roots:
                for pid, is_child in [(leader, False)] + [(c, True) for c in _descendants(leader)]:
                    try:
                        with open(f"/proc/{pid}/statm") as statm:
                            rss = int(statm.read().split()[1]) * page
                    except (OSError, IndexError, ValueError):
                        continue
                    total += rss
                    single = max(single, rss)
                    if is_child:
                        horse = max(horse, rss)
            peaks = self.peaks.setdefault(self.phase, {"single": 0, "horse": 0, "total": 0})
            peaks["single"] = max(peaks["single"], single)
            peaks["horse"] = max(peaks["horse"], horse)
            peaks["total"] = max(peaks["total"], total)
            self._stop.wait(self.interval)


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (a worker's work horse), from /proc/PID/task/TID/children."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                kids = [int(kid) for kid in children.read().split()]
        except (OSError, ValueError):
            continue
        for kid in kids:
            found.append(kid)
            found.extend(_descendants(kid))
    return found


def postgres_cpu() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server's processes (the postmaster's
    children_* times count its backends that have exited), or None when it is not on this
    machine or not readable: the other half of what a posting costs."""
    import psutil

    total = 0.0
    found = False
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "postgres":
            continue
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            found = True
    return total if found else None


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these worker processes and their work horses, finished
    ones included (a worker waits for its horse, so the kernel adds the horse's time to the
    worker's children_* times). Less disturbed by other work on the machine than wall time."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            leader = psutil.Process(pid)
            times = leader.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in leader.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = child.cpu_times()
                    total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


# --- runs ------------------------------------------------------------------------------------


def wait_terminal(run_id: int, timeout: float) -> Any:
    from runs.models import IngestionRun

    deadline = time.monotonic() + timeout
    while True:
        run = IngestionRun.objects.get(pk=run_id)
        if run.is_terminal:
            return run
        if time.monotonic() > deadline:
            from runs import services as run_services

            with contextlib.suppress(Exception):
                run_services.run_request_abort(run)
            raise RuntimeError(f"run #{run_id} ({run.kind}) not terminal after {timeout:.0f} s")
        # Unhurried: the run's duration is read from its own finished_at, and polling the
        # database every 50 ms cost the measured run ~2 % of the machine.
        time.sleep(0.5)


def execute_in_process(run_id: int) -> None:
    """Execute run `run_id` in this process, its chunks one after another (the code the
    workers run, without the queue)."""
    from ingestion.models import WorkChunk
    from ingestion.pipeline.chunks import CHUNK_TASK
    from runs import tasks

    if tasks.execute_run(run_id) == "deferred":
        numbers = WorkChunk.objects.filter(run_id=run_id, number__gt=0).values_list(
            "number", flat=True
        )
        for number in list(numbers):
            tasks.execute_part(run_id, CHUNK_TASK, number)


# --- a benchmark's life ----------------------------------------------------------------------


def run_bench(
    children: Children, work: Path, body: Callable[[], None], *, keep_db: bool = False
) -> int:
    """Run `body`, then clean up whatever happened (clean_up); the exit status."""
    ok = False
    try:
        body()
        ok = True
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what was started", file=sys.stderr)
        return 130
    finally:
        clean_up(children, work, ok=ok, keep_db=keep_db)


def use_bench_environment(work: Path, **extra: str) -> None:
    """This process and every child talk to the throwaway database and Redis db."""
    os.environ.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        DJANGO_SETTINGS_MODULE="project.settings",
        INTAKE_VAR_DIR=str(work / "var"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        **extra,
    )


def clean_up(children: Children, work: Path, *, ok: bool, keep_db: bool = False) -> None:
    """Stop every process started, flush Redis, drop the database (unless `keep_db`), and
    remove the work folder, or on a failure keep the processes' logs (not the generated
    data) for the post-mortem."""
    import shutil

    children.stop_all()
    with contextlib.suppress(Exception):
        flush_redis()
    if not keep_db:
        with contextlib.suppress(Exception):
            drop_database()
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for data in (*work.glob("*.csv"), *work.glob("*.json")):
            data.unlink(missing_ok=True)
        print(f"logs kept in {work}", file=sys.stderr)

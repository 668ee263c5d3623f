#!/usr/bin/env python
"""Ingestion benchmark: postings/s of real preview and ingest runs on real RQ workers against
the machine's PostgreSQL, beside baselines measured in the same process.

    cd /work/main && .venv/bin/python bench/ingest.py                  # 50,000 postings
    .venv/bin/python bench/ingest.py --postings 50000 --sizes 10000,50000
    .venv/bin/python bench/ingest.py --quick                           # ~2,000: a smoke check
    .venv/bin/python bench/ingest.py --profile /tmp/intake-prof        # cProfile, in-process

For each size the run uses a fresh throwaway database (`intake_bench`, dropped at the end) and
Redis db 9 (flushed), and splits the postings between two sources of one owner: an uploaded
CSV file (`kind=file`) and a Greenhouse-shaped board served over HTTP by a separate process
(so serving does not steal the bench's or the workers' CPU). Descriptions are ~2 KB of varied
HTML. Then, timed from start to terminal status:

    preview   one run through `manage.py rqworker default` processes
    ingest    one run, new postings only, with 2 RQ worker processes (the machine has 2 cores)

and, in this process, over the same postings of the largest size (the job table emptied
before each):

    naive     per-row Job.objects.update_or_create (--naive-sample rows, extrapolated; all of
              them with --naive-sample 50000), the table analyzed as autovacuum would as it
              grows, untimed (this machine's PostgreSQL runs with autovacuum off)
    raw       psycopg executemany of INSERT … ON CONFLICT DO UPDATE, 1000 rows a transaction
              (and COPY into a staging table + INSERT … SELECT ON CONFLICT; the faster is the
              ceiling)
    upsert    ingestion.pipeline.jobrows.upsert_jobs (→ ingestion.store), batches of 1000 in a
              transaction each (into an empty table, so told every key is new, as the
              listing would: COPY)

Peak memory is the largest RSS of any worker process or forked work horse, sampled every
0.1 s over the workers' process trees. It prints a table and the ratios against targets;
nothing is asserted (machines are noisy). Every process it starts is stopped on exit, Ctrl-C
or failure.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_DB", "intake_bench")
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9")
BOARD_TOKEN = "benchboard"
FILE_COMPANY = "Acme Files"
BOARD_COMPANY = "Globex Board"
WRITE_BATCH = 1000  # rows per transaction in the write baselines, as the pipeline does

TARGETS = {
    "ingest_vs_naive": 10.0,  # ingest end to end ÷ naive per-row upsert, at least
    "upsert_vs_raw": 0.5,  # upsert step ÷ raw executemany, at least (within 2×)
    "preview_vs_naive": 20.0,  # preview end to end ÷ naive, at least
    "memory_growth": 1.25,  # peak RSS at the largest size ÷ at the smallest, at most
}


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


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- the database and Redis ------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    _close_django_pool()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=child_env(),
        check=True,
    )


def drop_database() -> None:
    import psycopg

    _close_django_pool()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def _close_django_pool() -> None:
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


# --- generated sources -----------------------------------------------------------------------


def write_postings_csv(count: int, path: Path) -> Path:
    """`count` postings (~2 KB of varied HTML each) as a CSV upload."""
    from tests.ingestion import pages

    if hasattr(pages, "generate_postings_file"):
        return pages.generate_postings_file(count, "csv", path=path)
    # Fallback for a tree without the file builders: the same columns, by hand.
    import csv

    from tests.ingestion.boards import description_html, job_title

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["external_id", "title", "url", "location", "description"])
        for n in range(1, count + 1):
            writer.writerow(
                [
                    f"F-{n:06d}",
                    job_title(n),
                    f"https://careers.acme.example/jobs/{n}",
                    "Berlin, DE",
                    description_html(n, size=2000),
                ]
            )
    return path


def write_board_json(count: int, path: Path) -> Path:
    """A Greenhouse board listing (GET /v1/boards/{token}/jobs?content=true) of `count` jobs,
    ~2 KB descriptions, rendered once to a file the board server streams: generating it on
    the fly would cost ~0.25 ms of CPU per job during the timed run."""
    from tests.ingestion.boards import _streamed_object, greenhouse_jobs

    reply = _streamed_object(
        "jobs",
        greenhouse_jobs(count, board=BOARD_TOKEN, size=2000),
        meta=lambda n: {"meta": {"total": n}},
    )
    with path.open("wb") as out:
        for chunk in reply.body:  # type: ignore[union-attr]
            out.write(chunk)
    return path


def serve_board(board_file: str, ready_file: str) -> None:
    """The board server process (`--serve-board`): a FixtureServer streaming the listing
    from its file, until SIGTERM."""
    from tests.fixture_server import FixtureServer, Reply, Request

    server = FixtureServer()

    def listing(request: Request) -> Reply:
        def chunks() -> Iterator[bytes]:
            with open(board_file, "rb") as handle:
                while chunk := handle.read(256 * 1024):
                    yield chunk

        return Reply(200, chunks(), {"Content-Type": "application/json"})

    server.route(f"/v1/boards/{BOARD_TOKEN}/jobs", handler=listing)
    serve_until_stopped(server, ready_file)


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


def start_board_server(children: Children, board_file: Path, work: Path) -> tuple[Any, str]:
    ready = work / f"board-{time.monotonic_ns()}.url"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-board", str(board_file)]
    return start_server(children, "board", [*argv, "--ready-file", str(ready)], ready)


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


# --- memory ----------------------------------------------------------------------------------


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


# --- one size: preview and ingest on real workers --------------------------------------------


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


def bench_size(
    size: int,
    args: argparse.Namespace,
    children: Children,
    work: Path,
    kinds: tuple[str, ...] = ("preview", "ingest"),
    file_share: float = 0.5,
) -> dict:
    """Fresh database, two sources holding `size` postings between them (`file_share` of
    them in the file), a preview run on a worker and an ingest run on `args.workers` workers
    (or only the `kinds` given). Returns the figures."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from ingestion import services as ingestion_services
    from runs.models import OutboxEvent

    file_count = round(size * file_share)
    board_count = size - file_count
    print(f"\n== {size:,} postings: file {file_count:,} + board {board_count:,}", flush=True)
    t = time.monotonic()
    csv_path = write_postings_csv(file_count, work / f"postings-{file_count}.csv")
    board_path = write_board_json(board_count, work / f"board-{board_count}.json")
    print(
        f"   generated {csv_path.stat().st_size / 1e6:.0f} MB CSV + "
        f"{board_path.stat().st_size / 1e6:.0f} MB board JSON in {time.monotonic() - t:.1f} s",
        flush=True,
    )
    recreate_database()
    flush_redis()

    owner = User.objects.create_user("bench", password="bench")
    with csv_path.open("rb") as upload:
        file_source = ingestion_services.source_create(
            owner=owner,
            kind="file",
            company=FILE_COMPANY,
            upload=upload,
            upload_name=csv_path.name,
        )
    board_source = ingestion_services.source_create(
        owner=owner, kind="greenhouse", company=BOARD_COMPANY, identifier=BOARD_TOKEN
    )
    source_ids = [file_source.pk, board_source.pk]

    board_proc, board_url = start_board_server(children, board_path, work)
    env = child_env(INTAKE_GREENHOUSE_URL=board_url, INTAKE_ALLOW_PRIVATE_NETWORK="1")
    workers = start_workers(children, args.workers, env)
    # The outbox relay, as `manage.py start` runs it: publishing the runs' events to the
    # stream while they go on is part of their cost (docs/events.md).
    relay = children.start("relay", [sys.executable, "manage.py", "relay_events"], env)
    timeout = max(120.0, size / 50)
    result: dict[str, Any] = {"size": size, "file": file_count, "board": board_count}
    try:
        with MemorySampler([w.pid for w in workers]) as sampler:
            for kind in kinds:
                sampler.phase = kind
                start = getattr(ingestion_services, f"{kind}_start")
                busy = wait_idle(args.wait_idle) if args.wait_idle else busy_cpu(0.5)
                cpu_before = tree_cpu([w.pid for w in workers])
                db_before = postgres_cpu()
                began = timezone.now()
                run = start(owner=owner, source_ids=source_ids)
                run = wait_terminal(run.pk, timeout)
                # From the service call to the worker's write of the terminal status.
                seconds = (run.finished_at - began).total_seconds()
                time.sleep(0.3)  # the horse of the last job exits and is waited for
                cpu = tree_cpu([w.pid for w in workers]) - cpu_before
                db_after = postgres_cpu()
                db_cpu = db_after - db_before if db_before is not None and db_after else None
                if run.status != "finished":
                    logs = "\n".join(children.log_tail(f"worker{i}") for i in (1, 2))
                    raise RuntimeError(
                        f"{kind} run #{run.pk} ended {run.status}: {run.error_message}\n{logs}"
                    )
                sources = {s["kind"]: s for s in run.summary.get("sources", [])}
                result[kind] = {
                    "run": run.pk,
                    "seconds": seconds,
                    "rate": size / seconds,
                    "counts": run.counts(),
                    "listing_seconds": {k: s.get("seconds") for k, s in sources.items()},
                    "busy_before": busy,
                    "worker_cpu": cpu,
                    "db_cpu": db_cpu,
                }
                if kind == "ingest":
                    result[kind]["stages"] = ingest_stages(run)
                result[kind]["events"] = OutboxEvent.objects.filter(run_id=run.pk).count()
                print(
                    f"   {kind:8} {seconds:7.1f} s  {size / seconds:8,.0f} postings/s  "
                    f"worker CPU {cpu:.1f} s ({cpu / size * 1000:.2f} ms/posting), "
                    + (
                        f"database CPU {db_cpu:.1f} s ({db_cpu / size * 1000:.2f} ms/posting), "
                        if db_cpu is not None
                        else ""
                    )
                    + f"counts {_short_counts(run.counts())} (CPUs {busy:.0f}% busy before), "
                    f"{result[kind]['events']} outbox events",
                    flush=True,
                )
            sampler.phase = "idle"
        result["memory"] = sampler.peaks
    finally:
        for proc in workers:
            children.stop(proc)
        children.stop(relay)
        children.stop(board_proc)
    return result


def _short_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)


def ingest_stages(run: Any) -> dict[str, float]:
    """Seconds of the ingest's stages: the listing (list + diff + upsert; chunk 0's span,
    while the other workers already process the chunks it queued) and the processing that
    was left when the listing ended."""
    from ingestion.models import WorkChunk
    from ingestion.pipeline.chunks import is_listing_chunk

    # The last of the listing chunks (one per group of sources listed at the same time).
    listed = max(
        (
            done_at
            for number, done_at in WorkChunk.objects.filter(run=run).values_list(
                "number", "done_at"
            )
            if is_listing_chunk(number) and done_at is not None
        ),
        default=None,
    )
    started = run.started_at
    out: dict[str, float] = {}
    if started and listed:
        out["listing"] = (listed - started).total_seconds()
    if listed and run.finished_at:
        out["after listing"] = (run.finished_at - listed).total_seconds()
    return out


# --- baselines in this process ---------------------------------------------------------------


def load_postings(owner: Any, run: Any) -> list[tuple[Any, Any, str]]:
    """(source, posting, content hash) of every posting of both sources, as the adapters
    read them (the listing, not the write, so none of this is timed)."""
    import ijson

    from ingestion import normalize
    from ingestion.adapters import get_adapter
    from ingestion.adapters.greenhouse import to_posting
    from ingestion.fetching import Fetcher
    from ingestion.models import Source

    rows: list[tuple[Any, Any, str]] = []
    file_source = Source.objects.get(owner=owner, kind="file")
    board_source = Source.objects.get(owner=owner, kind="greenhouse")
    with Fetcher(run_id=run.pk, store=False) as fetcher:
        for posting in get_adapter(file_source, fetcher).list_postings():
            rows.append((file_source, posting, normalize.content_hash(posting)))
    board_file = sorted(Path(run_work_dir).glob("board-*.json"), key=lambda p: p.stat().st_size)
    with board_file[-1].open("rb") as handle:
        for item in ijson.items(handle, "jobs.item"):
            posting = to_posting(item)
            rows.append((board_source, posting, normalize.content_hash(posting)))
    return rows


run_work_dir = ""  # set in main(): where the generated files are


def mixed_postings(owner: Any, run: Any) -> list[tuple[Any, Any, str]]:
    """load_postings with the two sources' rows interleaved, so every sample has both
    shapes."""
    rows = load_postings(owner, run)
    half = len(rows) // 2
    mixed = [r for pair in zip(rows[:half], rows[half:], strict=False) for r in pair]
    mixed += rows[2 * half :] if len(rows) % 2 else []
    return mixed


def truncate_jobs() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ingestion_job CASCADE")
        cursor.execute("ANALYZE ingestion_job")


_RAW_COLUMNS = (
    "owner_id", "source_id", "company", "external_id", "url", "title", "location", "remote",
    "workplace_type", "employment_type", "department", "raw_description", "needs_detail",
    "description", "description_text", "requirements", "posted_at", "valid_through",
    "salary_min", "salary_max", "salary_currency", "salary_period", "salary_text", "status",
    "content_hash", "raw_hash", "first_seen_at", "last_seen_at", "expired_at", "last_run_id",
    "error_message", "created_at", "updated_at",
)  # fmt: skip
_RAW_KEEP = {"owner_id", "company", "external_id", "first_seen_at", "created_at"}
_RAW_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in _RAW_COLUMNS if c not in _RAW_KEEP)
RAW_UPSERT = (
    f"INSERT INTO ingestion_job ({', '.join(_RAW_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_RAW_COLUMNS))}) "
    f"ON CONFLICT (owner_id, company, external_id) DO UPDATE SET {_RAW_SET} "
    "WHERE ingestion_job.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
)


def raw_tuples(rows: list[tuple[Any, Any, str]], owner_id: int, run_id: int) -> list[tuple]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return [
        (
            owner_id,
            source.pk,
            source.company,
            p.external_id.strip(),
            p.url,
            p.title.strip(),
            p.location,
            p.remote,
            p.workplace_type,
            p.employment_type,
            p.department,
            p.description_html,
            p.needs_detail,
            "",
            "",
            "",
            p.posted_at,
            p.valid_through,
            p.salary_min,
            p.salary_max,
            p.salary_currency,
            p.salary_period,
            p.salary_text,
            "pending",
            chash,
            "",
            now,
            now,
            None,
            run_id,
            "",
            now,
            now,
        )  # fmt: skip
        for source, p, chash in rows
    ]


def bench_raw_executemany(tuples: list[tuple]) -> float:
    import psycopg

    with psycopg.connect(DATABASE_URL) as conn:
        began = time.perf_counter()
        for start in range(0, len(tuples), WRITE_BATCH):
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(RAW_UPSERT, tuples[start : start + WRITE_BATCH])
        return time.perf_counter() - began


def bench_raw_copy(tuples: list[tuple]) -> float:
    import psycopg

    columns = ", ".join(_RAW_COLUMNS)
    with psycopg.connect(DATABASE_URL) as conn:
        conn.execute(
            f"CREATE TEMP TABLE bench_stage AS SELECT {columns} FROM ingestion_job WITH NO DATA"
        )
        conn.commit()
        began = time.perf_counter()
        for start in range(0, len(tuples), WRITE_BATCH):
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(f"COPY bench_stage ({columns}) FROM STDIN") as copy:
                    for row in tuples[start : start + WRITE_BATCH]:
                        copy.write_row(row)
                cursor.execute(
                    f"INSERT INTO ingestion_job ({columns}) SELECT {columns} FROM bench_stage "
                    f"ON CONFLICT (owner_id, company, external_id) DO UPDATE SET {_RAW_SET} "
                    "WHERE ingestion_job.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
                )
                cursor.execute("TRUNCATE bench_stage")
        return time.perf_counter() - began


def bench_upsert_jobs(rows: list[tuple[Any, Any, str]], run: Any, *, new: bool) -> float:
    """upsert_jobs over the rows as the listing calls it: `new` when the table is empty (the
    listing then knows every key is new: those go in by COPY), else as updates."""
    from django.db import transaction
    from django.utils import timezone

    from ingestion.pipeline.jobrows import upsert_jobs

    now = timezone.now()
    began = time.perf_counter()
    for start in range(0, len(rows), WRITE_BATCH):
        batch = rows[start : start + WRITE_BATCH]
        # One source per call, as SourceDiff does (batches never mix sources).
        by_source: dict[int, tuple[Any, list[tuple[Any, str]]]] = {}
        for source, posting, chash in batch:
            by_source.setdefault(source.pk, (source, []))[1].append((posting, chash))
        with transaction.atomic():
            for source, postings in by_source.values():
                keys = {p.external_id.strip() for p, _ in postings} if new else ()
                upsert_jobs(run, source, postings, now=now, new_keys=keys)
    return time.perf_counter() - began


def bench_naive(rows: list[tuple[Any, Any, str]], owner: Any, run: Any) -> float:
    from django.db import connection
    from django.utils import timezone

    from ingestion.models import Job

    now = timezone.now()
    began = time.perf_counter()
    analyzing = 0.0
    analyzed_at = 0
    for written, (source, p, chash) in enumerate(rows):
        if written >= 50 + analyzed_at * 1.1:
            # What autovacuum's analyze would do as the table grows (threshold 50 rows +
            # 10 %), in the background and so not timed: a server with autovacuum off (this
            # machine's) would otherwise plan half the loop's lookups on a wrong index.
            analyzed_at = written
            pause = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE ingestion_job")
            analyzing += time.perf_counter() - pause
        Job.objects.update_or_create(
            owner=owner,
            company=source.company,
            external_id=p.external_id.strip(),
            defaults={
                "source": source,
                "url": p.url,
                "title": p.title.strip(),
                "location": p.location,
                "remote": p.remote,
                "workplace_type": p.workplace_type,
                "employment_type": p.employment_type,
                "department": p.department,
                "raw_description": p.description_html,
                "needs_detail": p.needs_detail,
                "posted_at": p.posted_at,
                "valid_through": p.valid_through,
                "salary_min": p.salary_min,
                "salary_max": p.salary_max,
                "salary_currency": p.salary_currency,
                "salary_period": p.salary_period,
                "salary_text": p.salary_text,
                "status": "pending",
                "content_hash": chash,
                "first_seen_at": now,
                "last_seen_at": now,
                "last_run": run,
            },
        )
    return time.perf_counter() - began - analyzing


def bench_baselines(size: int, args: argparse.Namespace, ingest_run_id: int) -> dict:
    """The write baselines over the same postings, each into an empty job table."""
    from django.contrib.auth.models import User

    from runs.models import IngestionRun

    owner = User.objects.get(username="bench")
    run = IngestionRun.objects.get(pk=ingest_run_id)
    print(f"\n== baselines over the same {size:,} postings (this process)", flush=True)
    rows = mixed_postings(owner, run)
    out: dict[str, Any] = {"rows": len(rows)}

    sample = rows[: min(args.naive_sample, len(rows))]
    out["busy_before"] = wait_idle(args.wait_idle) if args.wait_idle else busy_cpu(0.5)
    truncate_jobs()
    cpu = time.process_time()
    seconds = bench_naive(sample, owner, run)
    out["naive"] = {"rows": len(sample), "seconds": seconds, "rate": len(sample) / seconds}
    out["naive"]["cpu"] = time.process_time() - cpu
    print(f"   naive     {len(sample):,} rows in {seconds:.1f} s: {len(sample) / seconds:,.0f}/s")

    tuples = raw_tuples(rows, owner.pk, run.pk)
    writers: list[tuple[str, Callable[[], float]]] = [
        ("raw", lambda: bench_raw_executemany(tuples)),
        ("raw_copy", lambda: bench_raw_copy(tuples)),
        ("upsert", lambda: bench_upsert_jobs(rows, run, new=True)),
    ]
    for name, func in writers:
        # Best of --repeat, each into an empty table: the figure least disturbed by others.
        best, best_cpu = float("inf"), 0.0
        for _ in range(args.repeat):
            truncate_jobs()
            cpu = time.process_time()
            seconds = func()
            if seconds < best:
                best, best_cpu = seconds, time.process_time() - cpu
        out[name] = {"rows": len(rows), "seconds": best, "rate": len(rows) / best}
        out[name]["cpu"] = best_cpu
        print(f"   {name:9} {len(rows):,} rows in {best:.2f} s: {len(rows) / best:,.0f}/s")
    # The same rows once more over the last upsert, unchanged: the WHERE guard skips them.
    cpu = time.process_time()
    seconds = bench_upsert_jobs(rows, run, new=False)
    out["upsert_unchanged"] = {"rows": len(rows), "seconds": seconds, "rate": len(rows) / seconds}
    out["upsert_unchanged"]["cpu"] = time.process_time() - cpu
    print(f"   upsert=   {len(rows):,} rows in {seconds:.2f} s: {len(rows) / seconds:,.0f}/s"
          " (same rows again, unchanged)")  # fmt: skip
    return out


# --- profile: the executors in this process ---------------------------------------------------


class SqlTimer:
    """Wall time and the database backend's CPU time spent in each statement (by its first
    words), so the profile says which queries the database time goes to: psycopg's cursor
    methods patched while it is active, so Django's cursors and ingestion.store's
    server-binding ones (and their COPYs) are all counted. The backend's CPU is read from
    /proc (the server is on this machine): its own process, so other load does not count."""

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = {}
        self._patched: list[tuple[str, Any]] = []

    @staticmethod
    def backend_cpu(pid: int) -> float:
        """CPU seconds used so far by the process `pid` (user + system), or 0 if unreadable."""
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _record(self, key: str, began: float, cpu_began: float, pid: int) -> None:
        entry = self.stats.setdefault(key, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - began
        entry[2] += self.backend_cpu(pid) - cpu_began

    def __enter__(self) -> SqlTimer:
        import psycopg

        timer = self

        def timed(name: str, original: Any) -> Any:
            def wrapper(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                text = query if isinstance(query, str) else str(getattr(query, "_obj", query))
                key = ("many " if name == "executemany" else "") + " ".join(text.split())[:110]
                pid = cursor.connection.info.backend_pid
                began, cpu_began = time.perf_counter(), timer.backend_cpu(pid)
                if name == "copy":
                    return timer._timed_copy(original(cursor, query, *args, **kwargs), key, pid)
                try:
                    return original(cursor, query, *args, **kwargs)
                finally:
                    timer._record(key, began, cpu_began, pid)

            return wrapper

        for name in ("execute", "executemany", "copy"):
            original = getattr(psycopg.Cursor, name)
            self._patched.append((name, original))
            setattr(psycopg.Cursor, name, timed(name, original))
        return self

    @contextlib.contextmanager
    def _timed_copy(self, copy: Any, key: str, pid: int) -> Iterator[Any]:
        began, cpu_began = time.perf_counter(), self.backend_cpu(pid)
        try:
            with copy as inner:
                yield inner
        finally:
            self._record(key, began, cpu_began, pid)

    def __exit__(self, *exc: object) -> None:
        import psycopg

        for name, original in self._patched:
            setattr(psycopg.Cursor, name, original)
        self._patched.clear()

    def report(self, total: float, size: int, top: int = 14) -> None:
        spent = sum(t for _, t, _ in self.stats.values())
        cpu = sum(c for _, _, c in self.stats.values())
        print(
            f"   SQL: {spent:.1f} s of {total:.1f} s; database CPU {cpu:.1f} s "
            f"({cpu / size * 1000:.3f} ms/posting); the heaviest by database CPU:"
        )
        ranked = sorted(self.stats.items(), key=lambda kv: -kv[1][2])[:top]
        for key, (count, seconds, cpu) in ranked:
            print(
                f"   {cpu:6.2f} s CPU {seconds:6.2f} s {int(count):6} × "
                f"{cpu / size * 1e6:5.0f} µs/posting  {key}"
            )


def compare_statements(
    timers: dict[str, SqlTimer], size: int, top: int = 14, width: int = 90
) -> None:
    """Database CPU per posting of each statement under each timer (same postings, e.g.
    the same ingest into two tables), the heaviest differences first: where the extra
    database CPU of the last against the first goes."""
    labels = list(timers)
    keys = {key for timer in timers.values() for key in timer.stats}

    def cpu(label: str, key: str) -> float:
        return timers[label].stats.get(key, [0, 0.0, 0.0])[2] / size * 1e6

    def calls(label: str, key: str) -> int:
        return int(timers[label].stats.get(key, [0, 0.0, 0.0])[0])

    first, last = labels[0], labels[-1]
    ranked = sorted(keys, key=lambda key: -abs(cpu(last, key) - cpu(first, key)))[:top]
    head = "".join(f"{label[:12]:>13}" for label in labels)
    print(f"   database CPU µs/posting{head}   difference  calls ({', '.join(labels)})")
    totals = "".join(f"{sum(cpu(label, key) for key in keys):13.0f}" for label in labels)
    total_gap = sum(cpu(last, key) - cpu(first, key) for key in keys)
    print(f"   {'all statements':<23}{totals}   {total_gap:+10.0f}")
    for key in ranked:
        values = "".join(f"{cpu(label, key):13.0f}" for label in labels)
        counts = "/".join(str(calls(label, key)) for label in labels)
        print(f"   {'':<23}{values}   {cpu(last, key) - cpu(first, key):+10.0f}  {counts}")
        print(f"      {key[:width]}")


def profile_size(size: int, args: argparse.Namespace, children: Children, work: Path) -> None:
    """Preview and ingest of `size` postings executed in this process under cProfile (the
    code a worker runs; the parts of the ingest are called one after another)."""
    from django.conf import settings
    from django.contrib.auth.models import User

    from ingestion import services as ingestion_services

    out_dir = Path(args.profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    file_count = round(size * args.file_share)
    csv_path = write_postings_csv(file_count, work / f"postings-{file_count}.csv")
    board_path = write_board_json(size - file_count, work / f"board-{size - file_count}.json")
    recreate_database()
    flush_redis()
    owner = User.objects.create_user("bench", password="bench")
    with csv_path.open("rb") as upload:
        file_source = ingestion_services.source_create(
            owner=owner, kind="file", company=FILE_COMPANY, upload=upload, upload_name="p.csv"
        )
    board_source = ingestion_services.source_create(
        owner=owner, kind="greenhouse", company=BOARD_COMPANY, identifier=BOARD_TOKEN
    )
    board_proc, board_url = start_board_server(children, board_path, work)
    settings.INTAKE_GREENHOUSE_URL = board_url
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    # In process, one listing after the other: the same code per posting as side by side.
    settings.INTAKE_LIST_SIDE_BY_SIDE = False
    ids = [file_source.pk, board_source.pk]
    helpers: list[Any] = []
    try:
        for kind in args.profile_kinds.split(","):
            run = getattr(ingestion_services, f"{kind}_start")(owner=owner, source_ids=ids)
            if kind == "preview" and args.profile_helpers:
                helpers = _start_helpers(children, args.profile_helpers, board_url)
            profiler = cProfile.Profile()
            timer = SqlTimer()
            helpers_cpu = tree_cpu([h.pid for h in helpers])
            began, cpu_began = time.perf_counter(), time.process_time()
            with timer:
                profiler.enable()
                execute_in_process(run.pk)
                profiler.disable()
            seconds = time.perf_counter() - began
            own_cpu = time.process_time() - cpu_began
            run.refresh_from_db()
            path = out_dir / f"{kind}-{size}.prof"
            profiler.dump_stats(path)
            print(
                f"\n== {kind} of {size:,} in-process: {run.status}, {seconds:.1f} s "
                f"({size / seconds:,.0f}/s), profile in {path}"
            )
            # This process's CPU (profiled, so inflated alike before and after a change): of
            # a preview with helpers, the listing's own share, which bounds its wall time.
            print(f"   this process: CPU {own_cpu:.1f} s ({own_cpu / size * 1000:.3f} ms/posting)")
            if helpers:
                time.sleep(0.3)  # the horse of the last map_batch exits and is waited for
                cpu = tree_cpu([h.pid for h in helpers]) - helpers_cpu
                print(
                    f"   {len(helpers)} helper worker(s): CPU {cpu:.1f} s "
                    f"({cpu / size * 1000:.2f} ms/posting), "
                    f"{_mapped_elsewhere(run)} batches mapped there"
                )
                for proc in helpers:
                    children.stop(proc)
                helpers = []
            timer.report(seconds, size)
            for sort in ("tottime", "cumulative"):
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats(sort).print_stats(args.top)
                print("\n".join(line for line in text.getvalue().splitlines()[6:] if line))
            flush_redis()  # the queued copies of what just ran in-process
    finally:
        for proc in helpers:
            children.stop(proc)
        children.stop(board_proc)


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


def _start_helpers(children: Children, count: int, board_url: str) -> list[Any]:
    """`count` rqworkers that help the in-process listing (ingestion.pipeline.mapping), so the
    profile is of the listing's own part, as on a worker among others. The run's queued copy
    is dropped first (this process executes it), and the listing counts itself among the
    live workers, as a worker would."""
    from ingestion.pipeline import diff
    from runs import queue

    queue.get_queue().empty()
    env = child_env(INTAKE_GREENHOUSE_URL=board_url, INTAKE_ALLOW_PRIVATE_NETWORK="1")
    helpers = start_workers(children, count, env)
    diff.live_workers = lambda: count + 1  # type: ignore[assignment]
    return helpers


def _mapped_elsewhere(run: Any) -> int:
    return sum(s.get("mappedElsewhere", 0) for s in run.summary.get("sources", []))


# --- report ----------------------------------------------------------------------------------


def report(results: dict) -> None:
    sizes = results["sizes"]
    base = results.get("baselines") or {}
    mb = 1024 * 1024
    print("\n" + "=" * 100)
    print(
        f"Intake ingestion benchmark — {results['machine']['cpus']} CPUs, "
        f"Python {results['machine']['python']}, PostgreSQL {results['machine']['postgres']}, "
        f"{results['workers']} RQ workers for ingest"
    )
    print(
        f"\n{'postings':>9} {'stage':<26} {'seconds':>8} {'postings/s':>11} "
        f"{'worker CPU ms/posting':>22} {'peak RSS MB':>12} {'horse MB':>9} {'all MB':>7}"
    )
    for r in sizes:
        for kind, label in (("preview", "preview end to end"), ("ingest", "ingest end to end")):
            m = r["memory"].get(kind, {})
            print(
                f"{r['size']:>9,} {label:<26} {r[kind]['seconds']:>8.1f} "
                f"{r[kind]['rate']:>11,.0f} "
                f"{r[kind].get('worker_cpu', 0) / r['size'] * 1000:>22.2f} "
                f"{m.get('single', 0) / mb:>12.0f} "
                f"{m.get('horse', 0) / mb:>9.0f} {m.get('total', 0) / mb:>7.0f}"
            )
        stages = r["ingest"].get("stages", {})
        for stage, seconds in stages.items():
            what = "list+diff+upsert" if stage == "listing" else "chunks after listing"
            print(
                f"{'':>9} {'  ingest: ' + what:<26} {seconds:>8.1f} "
                f"{r['size'] / seconds if seconds else 0:>11,.0f}"
            )
    if base:
        print(
            f"\n{'rows':>9} {'write baseline (this process)':<36} {'seconds':>8} "
            f"{'rows/s':>11} {'client CPU µs/row':>18}"
        )
        labels = {
            "naive": "naive update_or_create loop",
            "raw": "raw psycopg executemany upsert",
            "raw_copy": "raw COPY staging + INSERT SELECT",
            "upsert": "upsert_jobs (jobrows.py), new rows",
            "upsert_unchanged": "upsert_jobs, same rows unchanged",
        }
        for key, label in labels.items():
            if key in base:
                b = base[key]
                print(
                    f"{b['rows']:>9,} {label:<36} {b['seconds']:>8.2f} {b['rate']:>11,.0f} "
                    f"{b.get('cpu', 0) / b['rows'] * 1e6:>18.0f}"
                )

    main = max(sizes, key=lambda r: r["size"])
    print("\nratios (at {:,} postings)".format(main["size"]))
    ratios = results["ratios"] = {}
    if base:
        raw = max(base["raw"]["rate"], base["raw_copy"]["rate"])
        ratios["ingest_vs_naive"] = main["ingest"]["rate"] / base["naive"]["rate"]
        ratios["upsert_vs_raw"] = base["upsert"]["rate"] / raw
        ratios["preview_vs_naive"] = main["preview"]["rate"] / base["naive"]["rate"]
    if len(sizes) > 1:
        small = min(sizes, key=lambda r: r["size"])
        peak = lambda r: max(m.get("single", 0) for m in r["memory"].values())  # noqa: E731
        ratios["memory_growth"] = peak(main) / max(1, peak(small))
    lines = {
        "ingest_vs_naive": ("ingest end to end ÷ naive", ">="),
        "upsert_vs_raw": ("upsert step ÷ raw write limit", ">="),
        "preview_vs_naive": ("preview end to end ÷ naive", ">="),
        "memory_growth": (
            f"peak worker RSS {main['size'] // 1000}k ÷ {min(r['size'] for r in sizes) // 1000}k",
            "<=",
        ),
    }
    for key, (label, op) in lines.items():
        if key not in ratios:
            continue
        value, target = ratios[key], TARGETS[key]
        ok = value >= target if op == ">=" else value <= target
        print(f"   {label:<36} {value:8.2f}×   target {op} {target:g}   {'ok' if ok else 'MISSED'}")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="environment: BENCH_PG (the PostgreSQL server, default "
        "postgresql://postgres@127.0.0.1:5432), BENCH_DB (the throwaway database, default "
        "intake_bench), BENCH_REDIS (the Redis db it flushes, default "
        "redis://127.0.0.1:6379/9). See docs/performance.md.",
    )
    parser.add_argument("--postings", type=int, default=50_000, help="postings (default 50000)")
    parser.add_argument(
        "--sizes",
        default="",
        help="comma-separated sizes to run (memory is compared between the smallest and "
        "the largest); default: 10000 and --postings",
    )
    parser.add_argument(
        "--file-share",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="the uploaded file's share of the postings, the board's the rest (default 0.5: "
        "two equal listings side by side; 0.9: a big one and a small one)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke check: 1,000 and 2,000")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers for ingest")
    parser.add_argument("--naive-sample", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2, help="best of N for raw and upsert")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each timed phase wait up to this long for the CPUs to be idle "
        "(a shared machine); the busy percentage is printed either way",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave intake_bench behind")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="instead: run preview and ingest in this process under cProfile, dump to DIR",
    )
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    parser.add_argument(
        "--profile-helpers",
        type=int,
        default=0,
        metavar="N",
        help="with --profile: N rqworkers help the preview's listing (map_batch), so the "
        "profile is of its coordinator's own part; their CPU is printed beside",
    )
    parser.add_argument(
        "--profile-kinds",
        default="preview,ingest",
        metavar="KINDS",
        help="with --profile: the runs to profile, comma-separated (preview,ingest)",
    )
    parser.add_argument("--serve-board", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.postings = 2000
        args.naive_sample = min(args.naive_sample, 1000)
    if args.sizes:
        args.size_list = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    elif args.quick:
        args.size_list = [1000, 2000]
    else:
        args.size_list = sorted({min(10_000, args.postings), args.postings})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_board:
        serve_board(args.serve_board, args.ready_file)
        return 0

    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    global run_work_dir
    run_work_dir = str(work)
    use_bench_environment(work)
    children = Children(work)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": server_version(),
            "platform": platform.platform(),
        },
        "workers": args.workers,
        "sizes": [],
    }

    def body() -> None:
        recreate_database()  # before Django opens its pool on it
        import django

        django.setup()
        if args.profile:
            profile_size(args.postings, args, children, work)
            return
        for size in args.size_list:
            results["sizes"].append(
                bench_size(size, args, children, work, file_share=args.file_share)
            )
            if size == max(args.size_list):
                results["baselines"] = bench_baselines(
                    size, args, results["sizes"][-1]["ingest"]["run"]
                )
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))

    return run_bench(children, work, body, keep_db=args.keep_db)


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


if __name__ == "__main__":
    sys.exit(main())

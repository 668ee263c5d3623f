#!/usr/bin/env python
"""The pages at a million stored jobs, each against the same page at 10,000 (issue 15 §5:
"the jobs browser and admin list pages stay under 200 ms at that size").

    cd /work/main && BENCH_DB=intake_pages_1m .venv/bin/python bench/pages_1m.py
    .venv/bin/python bench/pages_1m.py --samples 9 --explain      # and each page's plans
    .venv/bin/python bench/pages_1m.py --large 200000 --reseed    # a quicker look

Two databases, kept between runs (seeding a million rows takes minutes; `--reseed` drops
them): `BENCH_DB` holds one owner with `--large` jobs and `BENCH_DB`_small the same owner
with `--small` jobs; each also holds 20 finished runs sharing as many run items as jobs.
The jobs vary as real ones do, with rare values for the filters to find (1 % errors,
0.1 % on-site, 0.1 % in Lisbon, ~100 per million "Rust Compiler Engineer"s, 2 % undated),
so a filter or search that walks an index until a page fills shows here; 60 % of the
jobs have a JobSeen stamp (found unchanged by a re-run). Each database is
migrated on every run, so a branch's new indexes apply to the kept data.

Every page is requested through Django's test client in this process (the server's own
time: no network, no browser), alternating between the two databases, and the median of
`--samples` is printed beside the page's SQL time (its queries' own durations) and the
ratio of the large to the small. The admin index, a page of no data, is the floor: on a
loaded machine everything is slower, the floor too. `--explain` prints EXPLAIN ANALYZE of
each page's slowest query at the large size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness, million  # noqa: E402  (the path above first; million: seed_jobs)

TARGET_PAGE_MS = 200.0
RUNS = 20
OWNER = "bench"

# Varied columns, as SQL expressions of the row number g (see million.seed_jobs).
VARIED = {
    "status": "CASE WHEN g %% 100 < 80 THEN 'ready' WHEN g %% 100 < 90 THEN 'skipped' "
    "WHEN g %% 100 < 97 THEN 'expired' WHEN g %% 100 < 99 THEN 'error' ELSE 'pending' END",
    "workplace_type": "CASE WHEN g %% 1000 = 999 THEN 'onsite' WHEN g %% 100 < 30 THEN 'remote' "
    "WHEN g %% 100 < 45 THEN 'hybrid' ELSE '' END",
    "remote": "CASE WHEN g %% 100 < 30 THEN true WHEN g %% 100 < 35 THEN false END",
    "employment_type": "CASE WHEN g %% 1000 = 998 THEN 'internship' WHEN g %% 10 = 0 "
    "THEN 'part_time' ELSE 'full_time' END",
    "location": "CASE WHEN g %% 1000 = 3 THEN 'Lisbon, PT' ELSE "
    "(ARRAY['Berlin, DE','Remote','New York, US','London, GB'])[1 + g %% 4] END",
    "title": "CASE WHEN g %% 9973 = 0 THEN 'Rust Compiler Engineer ' || g ELSE "
    "(ARRAY['Backend Engineer','Product Designer','Data Analyst',"
    "'Account Executive','Site Reliability Engineer'])[1 + g %% 5] || ' ' || (g %% 997) END",
    "posted_at": "CASE WHEN g %% 50 = 7 THEN NULL ELSE %(now)s - make_interval(mins => g) END",
}


def database_url(name: str) -> str:
    return f"{harness.PG_SERVER}/{name}"


def prepare(name: str, jobs: int, *, reseed: bool) -> None:
    """Create, migrate and seed database `name` unless it is already seeded."""
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reseed:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        if not exists or reseed:
            conn.execute(f"CREATE DATABASE {name}")
    env = harness.child_env() | {"DATABASE_URL": database_url(name)}
    began = time.monotonic()
    harness.migrate(env)
    migrated = time.monotonic() - began
    use(name)
    from django.contrib.auth.models import User

    if User.objects.filter(username=OWNER).exists():
        seen = seed_seen()  # a database seeded before the stamps were
        print(f"{name}: kept ({migrated:.0f} s to migrate, {seen:.0f} s to stamp)", flush=True)
        return
    owner = User.objects.create_superuser(OWNER, password=OWNER)
    seconds = million.seed_jobs(owner.pk, jobs, VARIED)
    seconds += seed_runs(owner.pk, jobs)
    seconds += seed_seen()
    print(f"{name}: seeded {jobs:,} jobs and run items in {seconds:.0f} s", flush=True)


def seed_runs(owner_id: int, items: int) -> float:
    """RUNS finished runs of the owner and `items` run items spread over them."""
    from django.db import connection
    from django.utils import timezone

    from ingestion.models import RunItem
    from runs.models import IngestionRun

    began = time.monotonic()
    now = timezone.now()
    runs = [
        IngestionRun.objects.create(
            owner_id=owner_id, kind="ingest", status="finished", started_at=now, finished_at=now
        ).pk
        for _ in range(RUNS)
    ]
    given = {
        "run_id": f"{runs[0]} + (g %% {RUNS})",
        "external_id": "'S-' || g",
        "title": "'Seeded posting ' || g",
        "url": "'https://seeded.example/jobs/' || g",
        "outcome": "CASE WHEN g %% 100 < 60 THEN 'unchanged' WHEN g %% 100 < 80 THEN 'updated' "
        "WHEN g %% 100 < 95 THEN 'new' WHEN g %% 1000 = 999 THEN 'error' ELSE 'expired' END",
        "job_status": "'ready'",
        "attempts": "1",
        "created_at": "%(now)s",
        "updated_at": "%(now)s",
    }
    columns, values = million.generated_columns(RunItem, given)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RunItem._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM generate_series(1, %(count)s) AS g",
            {"now": now, "count": items},
        )
        cursor.execute("VACUUM ANALYZE")
    return time.monotonic() - began


def seed_seen() -> float:
    """A JobSeen stamp for 60 % of the jobs (those a re-run found unchanged), as after a few
    runs; nothing when there are stamps already."""
    from django.db import connection

    from ingestion.models import JobSeen

    if JobSeen.objects.exists():
        return 0.0
    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JobSeen._meta.db_table} (job_id, last_seen_at) "
            "SELECT id, last_seen_at + interval '1 hour' FROM ingestion_job WHERE id % 10 < 6"
        )
        cursor.execute(f"VACUUM ANALYZE {JobSeen._meta.db_table}")
    return time.monotonic() - began


def use(name: str) -> None:
    """Point this process's Django connection at database `name` (its next query connects)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def page_urls() -> dict[str, str]:
    """The pages, by label; ids read from the database in use (the same at both sizes)."""
    from ingestion.models import Job, RunItem, Source
    from runs.models import IngestionRun

    source = Source.objects.filter(company="Seeded 07").values_list("pk", flat=True).first()
    run = IngestionRun.objects.order_by("pk").values_list("pk", flat=True).first()
    job = list(Job.objects.order_by("pk").values_list("pk", flat=True)[:501])[-1]
    item = list(RunItem.objects.order_by("pk").values_list("pk", flat=True)[:501])[-1]
    return {
        "admin index (floor)": "/admin/",
        "jobs browser": "/jobs/",
        "jobs, status ready": "/jobs/?status=ready",
        "jobs, status error (1 %)": "/jobs/?status=error",
        "jobs, one company": "/jobs/?company=Seeded+07",
        "jobs, hybrid (15 %)": "/jobs/?remote=hybrid",
        "jobs, on-site (0.1 %)": "/jobs/?remote=onsite",
        "jobs, location lisbon": "/jobs/?location=lisbon",
        "jobs, posted 1 day": "/jobs/?posted=1",
        "jobs, one source": f"/jobs/?source={source}",
        "jobs, search designer": "/jobs/?q=designer",
        "jobs, search rare": "/jobs/?q=rust+compiler",
        "jobs, search no match": "/jobs/?q=zyxwv",
        "jobs, page 40": "/jobs/?page=40",
        "jobs, page 190": "/jobs/?page=190",
        "api jobs, 40th cursor": "cursor:/api/v1/jobs?limit=50",
        "admin jobs": "/admin/ingestion/job/",
        "admin jobs, status error": "/admin/ingestion/job/?status__exact=error",
        "admin jobs, on-site": "/admin/ingestion/job/?workplace_type=onsite",
        "admin jobs, internship": "/admin/ingestion/job/?employment_type=internship",
        "admin jobs, remote no": "/admin/ingestion/job/?remote__exact=0",
        "admin jobs, search S-1234": "/admin/ingestion/job/?q=S-1234",
        "admin jobs, search rare": "/admin/ingestion/job/?q=rust+compiler",
        "admin jobs, search common": "/admin/ingestion/job/?q=designer",
        "admin job change": f"/admin/ingestion/job/{job}/change/",
        "admin runs": "/admin/runs/ingestionrun/",
        "admin run change": f"/admin/runs/ingestionrun/{run}/change/",
        "admin run items": "/admin/ingestion/runitem/",
        "admin items, one run": f"/admin/ingestion/runitem/?run__id__exact={run}",
        "admin items, error": "/admin/ingestion/runitem/?outcome__exact=error",
        "admin items, search": "/admin/ingestion/runitem/?q=S-1234",
        "admin item change": f"/admin/ingestion/runitem/{item}/change/",
    }


def backend_cpu() -> float:
    """CPU seconds so far of this connection's PostgreSQL backend (on this machine)."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def time_page(client: Any, url: str) -> tuple[float, float, int, str, float]:
    """(ms of the request, ms of its SQL, its query count, its slowest query, CPU ms of the
    request: this process's and its database backend's, which waiting for a busy machine's
    cores does not inflate as it does the wall time)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if url.startswith("cursor:"):
        # Time only the 40th page: fetch the 39 before it untimed.
        base = url.removeprefix("cursor:")
        cursor = None
        for _ in range(39):
            body = client.get(base + (f"&cursor={cursor}" if cursor else "")).json()
            cursor = body.get("next_cursor") or body.get("nextCursor")
        url = base + f"&cursor={cursor}"
    database = backend_cpu()
    cpu = time.process_time()
    began = time.perf_counter()
    response = client.get(url)
    ms = (time.perf_counter() - began) * 1000
    cpu_ms = (time.process_time() - cpu + backend_cpu() - database) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    # The paginator's estimate (an EXPLAIN of its own) is timed but never the one explained.
    queries = captured.captured_queries
    explainable = [q for q in queries if not q["sql"].startswith("EXPLAIN")]
    slowest = max(explainable, key=lambda q: float(q["time"]))["sql"] if explainable else ""
    return ms, sum(float(q["time"]) for q in queries) * 1000, len(queries), slowest, cpu_ms


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join("      " + row[0] for row in cursor.fetchall())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=1_000_000, help="jobs of the large size")
    parser.add_argument("--small", type=int, default=10_000, help="jobs of the baseline")
    parser.add_argument("--samples", type=int, default=5, help="requests per page and size")
    parser.add_argument("--reseed", action="store_true", help="drop and seed both databases")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest")
    parser.add_argument("--only", default="", help="only the pages whose label contains this")
    args = parser.parse_args(argv)

    large, small = harness.DB_NAME, f"{harness.DB_NAME}_small"
    work = Path(tempfile.mkdtemp(prefix="intake-pages-"))
    os.environ.update(
        DATABASE_URL=database_url(large),
        REDIS_URL=harness.REDIS_URL,
        DJANGO_SETTINGS_MODULE="project.settings",
        INTAKE_VAR_DIR=str(work / "var"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
    )
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection

    # One persistent connection, switched between the databases by use(): psycopg's pool
    # (the server's setting) would keep connecting to the first.
    connection.settings_dict["OPTIONS"].pop("pool", None)
    connection.settings_dict["CONN_MAX_AGE"] = None
    from django.test import Client

    prepare(large, args.large, reseed=args.reseed)
    prepare(small, args.small, reseed=args.reseed)
    urls = {}
    for name in (small, large):
        use(name)
        urls[name] = {k: v for k, v in page_urls().items() if args.only in k or "floor" in k}
    # Not setup_test_environment(): its instrumented template rendering would be timed too.
    clients = {}
    for name in (small, large):
        use(name)
        clients[name] = Client(HTTP_HOST="localhost")
        clients[name].force_login(User.objects.get(username=OWNER))

    print(
        f"\n{'page':<28} {args.small:>9,} ms {args.large:>9,} ms  ratio   SQL ms  queries"
        f"  CPU ms {'':>3} ratio   (median of {args.samples}; CPU: mean, web + database;"
        f" busy {harness.busy_cpu(0.5):.0f}% before)"
    )
    results: dict[str, dict[str, Any]] = {}
    for label in urls[large]:
        samples: dict[str, list[tuple[float, float, int, str, float]]] = {small: [], large: []}
        for name in (small, large):
            use(name)
            time_page(clients[name], urls[name][label])  # connects, warms the caches
            for _ in range(args.samples):
                samples[name].append(time_page(clients[name], urls[name][label]))
        ms = {name: statistics.median(s[0] for s in samples[name]) for name in samples}
        sql = statistics.median(s[1] for s in samples[large])
        # A mean: the backend's CPU is counted in the kernel's ticks (10 ms).
        cpu = {name: statistics.fmean(s[4] for s in samples[name]) for name in samples}
        results[label] = {"ms": ms[large], "small": ms[small], "slowest": samples[large][-1][3]}
        print(
            f"{label:<28} {ms[small]:12.1f} {ms[large]:12.1f} {ms[large] / ms[small]:6.2f}× "
            f"{sql:8.1f} {samples[large][-1][2]:8d} {cpu[large]:7.1f} "
            f"{cpu[large] / max(cpu[small], 0.1):6.2f}×",
            flush=True,
        )
        if args.explain and results[label]["slowest"]:
            use(large)
            print(explain(results[label]["slowest"]))
    pages = {k: v for k, v in results.items() if "floor" not in k}
    if not pages:
        return 0
    slowest = max(pages, key=lambda k: pages[k]["ms"])
    verdict = "ok" if pages[slowest]["ms"] <= TARGET_PAGE_MS else "MISSED"
    print(
        f"\nslowest page at {args.large:,}: {slowest} {pages[slowest]['ms']:.0f} ms "
        f"(floor {results['admin index (floor)']['ms']:.0f} ms)   "
        f"target <= {TARGET_PAGE_MS:.0f} ms   {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

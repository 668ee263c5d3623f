#!/usr/bin/env python
"""A million stored jobs: does an ingest, and do the pages, cost the same when the owner
already holds 1,000,000 jobs as when the table is nearly empty?

    cd /work/main && .venv/bin/python bench/million.py                 # 1,000,000 + 50,000
    .venv/bin/python bench/million.py --seed 200000 --postings 10000   # a quicker look

Two scenarios, each in a fresh throwaway database (`BENCH_DB`, as bench/harness.py) on real
`manage.py rqworker` processes:

    empty     one file source of `--postings` rows is ingested (untimed), then the same
              source's next file is ingested, timed: a third of its rows unchanged, a third
              changed, a third new, and the first file's last third gone (expired)
    million   the same, after seeding the owner with `--seed` jobs of 20 other sources
              (ready, with fingerprints, written by INSERT … SELECT in the server)

and prints the timed ingest's postings/s and CPU per posting in both (the workers' and the
bench database's own backends'), with the ratios (target: the million scenario's CPU per
posting within 1.2× of the empty one's). Then, at the million size, the
median server time of the jobs browser (several filters and pages) and the admin's job list,
rendered in this process through Django's test client (target: under 200 ms each).

    .venv/bin/python bench/million.py --seed-db intake_million_seed       # seeded once, kept
    .venv/bin/python bench/million.py --seed-db intake_million_seed --profile /tmp/prof

`--seed-db NAME` keeps the seeded database (seeding a million jobs takes ~10 minutes): the
first run seeds it, every run copies it (CREATE DATABASE … TEMPLATE) into `BENCH_DB` and
migrates the copy, so a branch's new migrations apply. `--profile DIR` runs both timed
ingests in this process instead of on workers (cProfile dumped to DIR; no pages) and prints
the database CPU of each statement into the empty table and into the million side by side,
the largest differences first (bench/sql_timer.py).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402  (the path above first)
from bench.rerun import DatabaseCpu  # noqa: E402  (the bench database's own backends' CPU)
from bench.sql_timer import SqlTimer, compare_statements  # noqa: E402

COMPANY = "Acme Files"
SEED_SOURCES = 20
TARGET_COST_RATIO = 1.2
TARGET_PAGE_MS = 200.0


def write_file(path: Path, start: int, count: int, *, changed_from: int | None = None) -> Path:
    """`count` postings numbered from `start`; rows numbered `changed_from` and above get a
    different description (so they read as updated against the previous file)."""
    from tests.ingestion import pages

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(pages.FILE_COLUMNS)
        for n in range(start, start + count):
            row = pages.posting_row(n)
            if changed_from is not None and n >= changed_from:
                row["description"] += f"<p>Updated: the team now counts {n % 40 + 3} people.</p>"
            writer.writerow([pages._cell(row[column]) for column in pages.FILE_COLUMNS])
    return path


def generated_columns(model: Any, given: dict[str, str]) -> tuple[list[str], list[str]]:
    """Every concrete column of `model` but its key, and its SQL expression: `given`'s by
    field name, else the field's empty value (so a column added later does not break a seed)."""
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(field.column)
        if field.attname in given:
            values.append(given[field.attname])
        elif field.null:
            values.append("NULL")
        elif field.get_internal_type() == "BooleanField":
            values.append("false")
        else:
            values.append("''")
    return columns, values


def seed_jobs(owner_id: int, count: int, columns: dict[str, str] | None = None) -> float:
    """`count` ready jobs of SEED_SOURCES other sources of the owner, with fingerprints,
    generated inside PostgreSQL; returns the seconds it took (untimed for the ratios).
    `columns`: SQL expressions of the row number `g` replacing the defaults below."""
    from django.db import connection
    from django.utils import timezone

    from ingestion.dedupe import company_key
    from ingestion.models import Job, JobFingerprint, Source

    began = time.monotonic()
    sources = [
        Source.objects.create(
            owner_id=owner_id,
            company=f"Seeded {i:02d}",
            kind="greenhouse",
            identifier=f"seeded{i:02d}",
        )
        for i in range(SEED_SOURCES)
    ]
    first_source = sources[0].pk
    # Every concrete column gets a value: the ones that matter are spelled out, the rest
    # take their field's empty value, so a column added later does not break the seed.
    given = {
        "owner_id": "%(owner)s",
        "source_id": f"{first_source} + (g %% {SEED_SOURCES})",
        "company": f"'Seeded ' || lpad((g %% {SEED_SOURCES})::text, 2, '0')",
        "external_id": "'S-' || g",
        "url": "'https://seeded.example/jobs/' || g",
        "title": "(ARRAY['Backend Engineer','Product Designer','Data Analyst',"
        "'Account Executive','Site Reliability Engineer'])[1 + g %% 5] || ' ' || (g %% 997)",
        "location": "(ARRAY['Berlin, DE','Remote','New York, US','London, GB'])[1 + g %% 4]",
        "description": "'<p>Seeded posting ' || g || ' of a large board.</p>'",
        "description_text": "'Seeded posting ' || g || ' of a large board.'",
        "posted_at": "%(now)s - make_interval(mins => g %% 500000)",
        "status": "'ready'",
        "simhash": "(hashtextextended(g::text, 7))",
        "content_hash": "md5(g::text)",
        "first_seen_at": "%(now)s",
        "last_seen_at": "%(now)s",
        "created_at": "%(now)s",
        "updated_at": "%(now)s",
    } | (columns or {})
    columns, values = generated_columns(Job, given)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Job._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM generate_series(1, %(count)s) AS g",
            {"owner": owner_id, "now": now, "count": count},
        )
        bands = ", ".join(f"((j.simhash >> {16 * band}) & 65535)::int" for band in range(4))
        # Each company's key as the lookup computes it (ingestion.dedupe.company_key).
        cursor.execute(
            f"SELECT DISTINCT company FROM {Job._meta.db_table} WHERE owner_id = %s", [owner_id]
        )
        companies = [company for (company,) in cursor.fetchall()]
        cursor.execute(
            f"INSERT INTO {JobFingerprint._meta.db_table} "
            "(job_id, owner_id, simhash, band0, band1, band2, band3, company_key) "
            f"SELECT j.id, j.owner_id, j.simhash, {bands}, c.key FROM {Job._meta.db_table} j "
            "JOIN unnest(%(companies)s::text[], %(keys)s::int[]) AS c(company, key) "
            "ON c.company = j.company "
            "WHERE j.owner_id = %(owner)s AND j.external_id LIKE 'S-%%'",
            {
                "owner": owner_id,
                "companies": companies,
                "keys": [company_key(company) for company in companies],
            },
        )
    # Autovacuum would have visited a table this size by the time anyone looks at it (its
    # visibility map lets counts read the indexes alone); this machine's server runs
    # without it, so do its work once here, untimed.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.monotonic() - began


def use_database(name: str) -> None:
    """Point this process's Django connection at database `name` (its next query connects)."""
    from django.db import connection

    harness.close_django_pool()  # a pool's connections stay on the database they opened
    connection.settings_dict["NAME"] = name


def clone_seeded(seed_db: str, seed: int) -> float:
    """Make `BENCH_DB` a copy of the kept database `seed_db` (its owner "bench" holding
    `seed` seeded jobs), seeding `seed_db` first if it does not exist; returns the seconds
    the seeding took (0 when kept)."""

    import psycopg

    server = f"{harness.PG_SERVER}/postgres"
    seeded = 0.0
    harness.close_django_pool()
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [seed_db]).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {seed_db}")
    if not exists:
        harness.migrate(harness.child_env(DATABASE_URL=f"{harness.PG_SERVER}/{seed_db}"))
        use_database(seed_db)
        from django.contrib.auth.models import User

        owner = User.objects.create_superuser("bench", password="bench")
        seeded = seed_jobs(owner.pk, seed)
        use_database(harness.DB_NAME)
    harness.close_django_pool()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {harness.DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {harness.DB_NAME} TEMPLATE {seed_db}")
    harness.migrate(harness.child_env())
    from django.db import connection

    from ingestion.models import Job

    with connection.cursor() as cursor:
        # A copy starts without the server's activity counters, which the pipeline reads
        # to decide whether the job table's statistics are stale: count again, untimed.
        cursor.execute("VACUUM ANALYZE")
    stored = Job.objects.count()
    if stored != seed:
        print(f"   note: {seed_db} holds {stored:,} jobs, not --seed {seed:,}", flush=True)
    return seeded


def timed_ingest(owner: Any, source_id: int, workers: list[Any], args: argparse.Namespace) -> dict:
    from django.utils import timezone

    from ingestion import services as ingestion_services

    busy = harness.wait_idle(args.wait_idle) if args.wait_idle else harness.busy_cpu(0.5)
    cpu_before = harness.tree_cpu([w.pid for w in workers])
    own_before = time.process_time()
    timer = SqlTimer()
    began = timezone.now()
    # The bench database's own backends: the whole server's CPU would count other
    # sessions' queries on a shared machine.
    with DatabaseCpu() as database:
        run = ingestion_services.ingest_start(owner=owner, source_ids=[source_id])
        if args.profile:
            profiler = cProfile.Profile()
            with timer:
                profiler.enable()
                harness.execute_in_process(run.pk)
                profiler.disable()
            profiler.dump_stats(Path(args.profile) / f"million-{owner.pk}-{run.pk}.prof")
            run.refresh_from_db()
        else:
            run = harness.wait_terminal(run.pk, max(300.0, args.postings / 20))
    seconds = (run.finished_at - began).total_seconds()
    time.sleep(0.3)
    cpu = harness.tree_cpu([w.pid for w in workers]) - cpu_before
    if args.profile:
        cpu = time.process_time() - own_before  # this process's, profiled
    if run.status != "finished":
        raise RuntimeError(f"ingest run #{run.pk} ended {run.status}: {run.error_message}")
    return {
        "seconds": seconds,
        "rate": args.postings / seconds,
        "worker_ms": cpu / args.postings * 1000,
        "db_ms": database.seconds / args.postings * 1000,
        "counts": run.counts(),
        "busy": busy,
        "timer": timer,
    }


def scenario(seed: int, args: argparse.Namespace, children: Any, work: Path) -> dict:
    from django.contrib.auth.models import User

    from ingestion import services as ingestion_services

    harness.flush_redis()
    if seed and args.seed_db:
        seeded = clone_seeded(args.seed_db, seed)
        owner = User.objects.get(username="bench")
    else:
        harness.recreate_database()
        owner = User.objects.create_superuser("bench", password="bench")
        seeded = seed_jobs(owner.pk, seed) if seed else 0.0
    third = args.postings // 3
    first = write_file(work / "first.csv", 1, args.postings)
    # Rows 1..third vanish (expired), third+1..2*third unchanged, 2*third+1..postings
    # changed, and postings+1..postings+third are new.
    second = write_file(work / "second.csv", third + 1, args.postings, changed_from=2 * third + 1)
    with first.open("rb") as upload:
        source = ingestion_services.source_create(
            owner=owner, kind="file", company=COMPANY, upload=upload, upload_name=first.name
        )
    workers = (
        [] if args.profile else harness.start_workers(children, args.workers, harness.child_env())
    )
    try:
        warm = ingestion_services.ingest_start(owner=owner, source_ids=[source.pk])
        if args.profile:
            harness.execute_in_process(warm.pk)
            warm.refresh_from_db()
        else:
            warm = harness.wait_terminal(warm.pk, max(300.0, args.postings / 20))
        if warm.status != "finished":
            raise RuntimeError(f"first ingest ended {warm.status}: {warm.error_message}")
        with second.open("rb") as upload:
            ingestion_services.source_update(source, upload=upload, upload_name=second.name)
        result = timed_ingest(owner, source.pk, workers, args)
    finally:
        for proc in workers:
            children.stop(proc)
    result["seed_seconds"] = seeded
    if args.profile:
        harness.flush_redis()  # the queued copies of what ran in this process
    print(
        f"   {seed:>9,} stored: {result['seconds']:6.1f} s {result['rate']:7,.0f} postings/s, "
        f"{'this process' if args.profile else 'worker'} {result['worker_ms']:.2f} ms/posting"
        + f", database {result['db_ms']:.2f} ms/posting"
        + f", counts {result['counts']} (seeded in {seeded:.0f} s, "
        f"CPUs {result['busy']:.0f}% busy before)",
        flush=True,
    )
    return result


def page_times(args: argparse.Namespace) -> dict[str, float]:
    """Median server time (ms) of each page at the million size, through the test client in
    this process (no network, no browser: the server's own cost)."""
    from django.contrib.auth.models import User
    from django.test import Client

    from ingestion.models import Job

    # Not setup_test_environment(): its instrumented template rendering would be timed too.
    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.get(username="bench"))
    company = Job.objects.filter(external_id="S-12345").values_list("company", flat=True).first()
    pages = {
        # The framework's own floor on this machine, at this moment: a page of no data.
        "admin index (floor)": "/admin/",
        "jobs browser": "/jobs/",
        "jobs, ready": "/jobs/?status=ready",
        "jobs, one company": f"/jobs/?company={company}",
        "jobs, search": "/jobs/?q=designer",
        "jobs, page 40": "/jobs/?page=40",
        "admin job list": "/admin/ingestion/job/",
        "admin job search": "/admin/ingestion/job/?q=S-12345",
    }
    times = {}
    for label, url in pages.items():
        samples = []
        for _ in range(args.page_samples + 1):
            began = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
        times[label] = statistics.median(samples[1:])  # the first warms the caches
        print(f"   {label:<20} {url:<40} {times[label]:7.1f} ms", flush=True)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1_000_000, help="jobs stored beforehand")
    parser.add_argument("--postings", type=int, default=50_000, help="rows of each file")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers for the ingest")
    parser.add_argument("--top", type=int, default=16, help="statements to print (--profile)")
    parser.add_argument("--page-samples", type=int, default=5, help="requests per page")
    parser.add_argument("--wait-idle", type=float, default=0.0, help="wait up to N s for idle CPUs")
    parser.add_argument(
        "--pages-only", action="store_true", help="seed, then time the pages; no ingest"
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--seed-db",
        metavar="NAME",
        help="a kept database of the seeded owner, copied for the million scenario (seeded "
        "into it first when it does not exist)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run the ingests in this process (cProfile to DIR) and print the database CPU "
        "of each statement, into the million against into the empty table; no pages",
    )
    parser.add_argument(
        "--reuse-db", action="store_true", help="with --pages-only: time a kept database's pages"
    )
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, harness.raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="intake-million-"))
    os.environ.update(
        DATABASE_URL=harness.DATABASE_URL,
        REDIS_URL=harness.REDIS_URL,
        DJANGO_SETTINGS_MODULE="project.settings",
        INTAKE_VAR_DIR=str(work / "var"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
    )
    children = harness.Children(work)
    try:
        if not args.reuse_db:
            harness.recreate_database()
        import django

        django.setup()
        if args.pages_only:
            if not args.reuse_db:
                from django.contrib.auth.models import User

                owner = User.objects.create_superuser("bench", password="bench")
                print(f"seeded {args.seed:,} jobs in {seed_jobs(owner.pk, args.seed):.0f} s")
            page_times(args)
            return 0
        print(f"== ingest of {args.postings:,} postings (a third each unchanged, changed, new)")
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
        empty = scenario(0, args, children, work)
        million = scenario(args.seed, args, children, work)
        if args.profile:
            print("\n== database CPU per statement (bench/sql_timer.py)")
            compare_statements(
                {"empty": empty["timer"], f"{args.seed:,} stored": million["timer"]},
                args.postings,
                top=args.top,
            )
        pages = {}
        if not args.profile:
            print(f"\n== pages at {args.seed:,} stored jobs (median of {args.page_samples})")
            pages = page_times(args)

        def cost(result: dict) -> float:
            return result["worker_ms"] + result["db_ms"]

        ratios = (
            ("worker + database CPU per posting", cost(million) / cost(empty)),
            ("worker CPU per posting", million["worker_ms"] / empty["worker_ms"]),
            ("database CPU per posting", million["db_ms"] / empty["db_ms"]),
            ("wall time per posting", empty["rate"] / million["rate"]),
        )
        print("\nratios")
        for label, value in ratios:
            verdict = "ok" if value <= TARGET_COST_RATIO else "MISSED"
            print(
                f"   {label + ',':<35} {args.seed:,} stored ÷ empty {value:6.2f}×   "
                f"target <= {TARGET_COST_RATIO}   {verdict}"
            )
        if not pages:
            return 0
        slowest = max((p for p in pages if "floor" not in p), key=pages.__getitem__)
        verdict = "ok" if pages[slowest] <= TARGET_PAGE_MS else "MISSED"
        print(
            f"   slowest page: {slowest} {pages[slowest]:.0f} ms   "
            f"target <= {TARGET_PAGE_MS:.0f} ms   {verdict}"
        )
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what was started", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        with contextlib.suppress(Exception):
            harness.flush_redis()
        if not args.keep_db:
            with contextlib.suppress(Exception):
                harness.drop_database()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

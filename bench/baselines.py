"""The write baselines the ingest is compared with, in the benchmark's own process, over the
same postings: the naive per-row `update_or_create` loop, a raw psycopg upsert (executemany,
and COPY into a staging table; the faster is the write ceiling) and `upsert_jobs` alone."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import DATABASE_URL, busy_cpu, wait_idle
from bench.postings import mixed_postings

WRITE_BATCH = 1000  # rows per transaction in the write baselines, as the pipeline does


def truncate_jobs() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ingestion_job CASCADE")
        cursor.execute("ANALYZE ingestion_job")


RAW_COLUMNS = (
    "owner_id", "source_id", "company", "external_id", "url", "title", "location", "remote",
    "workplace_type", "employment_type", "department", "raw_description", "needs_detail",
    "description", "description_text", "requirements", "posted_at", "valid_through",
    "salary_min", "salary_max", "salary_currency", "salary_period", "salary_text", "status",
    "content_hash", "raw_hash", "first_seen_at", "last_seen_at", "expired_at", "last_run_id",
    "error_message", "created_at", "updated_at",
)  # fmt: skip
RAW_KEEP = {"owner_id", "company", "external_id", "first_seen_at", "created_at"}
RAW_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in RAW_COLUMNS if c not in RAW_KEEP)
RAW_UPSERT = (
    f"INSERT INTO ingestion_job ({', '.join(RAW_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(RAW_COLUMNS))}) "
    f"ON CONFLICT (owner_id, company, external_id) DO UPDATE SET {RAW_SET} "
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

    columns = ", ".join(RAW_COLUMNS)
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
                    f"ON CONFLICT (owner_id, company, external_id) DO UPDATE SET {RAW_SET} "
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


def bench_baselines(size: int, args: argparse.Namespace, ingest_run_id: int, work: Path) -> dict:
    """The write baselines over the same postings, each into an empty job table."""
    from django.contrib.auth.models import User

    from runs.models import IngestionRun

    owner = User.objects.get(username="bench")
    run = IngestionRun.objects.get(pk=ingest_run_id)
    print(f"\n== baselines over the same {size:,} postings (this process)", flush=True)
    rows = mixed_postings(owner, run, work)
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

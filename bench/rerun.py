#!/usr/bin/env python
"""An unchanged re-run of a large uploaded file, end to end: rows/s of an ingest that finds
every row unchanged, beside the same re-run reading (mapping and content-hashing) every row
as it did before rows were told by their raw hash, in the same process.

    cd /work/main && .venv/bin/python bench/rerun.py                  # 20,000 rows, 2 workers
    .venv/bin/python bench/rerun.py --rows 5000 --repeat 1            # a quicker look

In a fresh throwaway database (`BENCH_DB`, as bench/ingest.py) on real `manage.py rqworker`
processes: one file source of `--rows` rows (~2 KB of HTML each) is ingested once, untimed;
then, `--repeat` times each, back to back:

    read all   every job's raw hash emptied first (untimed), so the listing maps and hashes
               every row again, finds it unchanged by content, and stores the raw hash again
    raw hash   the re-run as it is: rows told unchanged by their raw hash

It prints each run's rows/s (timed from the service call to the run's finished_at) and the
workers' CPU per row, the best of each, and the ratio (goal: the unchanged re-run at 20,000
rows/s or more).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest as harness  # noqa: E402  (bench/ingest.py: processes, database, workers)

COMPANY = "Acme Files"
GOAL_ROWS_PER_S = 20_000


def timed_ingest(owner: Any, source_id: int, workers: list[Any], rows: int) -> dict[str, Any]:
    from django.utils import timezone

    from ingestion import services as ingestion_services

    busy = harness.busy_cpu(0.5)
    cpu_before = harness.tree_cpu([w.pid for w in workers])
    began = timezone.now()
    run = ingestion_services.ingest_start(owner=owner, source_ids=[source_id])
    run = harness.wait_terminal(run.pk, max(300.0, rows / 20))
    seconds = (run.finished_at - began).total_seconds()
    time.sleep(0.3)
    cpu = harness.tree_cpu([w.pid for w in workers]) - cpu_before
    if run.status != "finished":
        raise RuntimeError(f"run #{run.pk} ended {run.status}: {run.error_message}")
    unchanged = run.outcome_counts.get("unchanged", 0)
    if unchanged != rows:
        raise RuntimeError(f"run #{run.pk}: {unchanged} of {rows} rows unchanged")
    return {
        "seconds": seconds,
        "rate": rows / seconds,
        "worker_ms": cpu / rows * 1000,
        "busy": busy,
    }


def forget_raw_hashes() -> None:
    from ingestion.models import Job

    Job.objects.update(raw_hash="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the file")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind")
    parser.add_argument("--keep-db", action="store_true", help="keep the database at the end")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, harness._raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="intake-rerun-"))
    harness.use_bench_environment(work)
    children = harness.Children(work)
    return harness.run_bench(
        children, work, lambda: bench(args, children, work), keep_db=args.keep_db
    )


def bench(args: argparse.Namespace, children: Any, work: Path) -> None:
    harness.recreate_database()
    harness.flush_redis()
    import django

    django.setup()
    from django.contrib.auth.models import User

    from ingestion import services as ingestion_services

    owner = User.objects.create_superuser("bench", password="bench")
    path = harness.write_postings_csv(args.rows, work / "rows.csv")
    with path.open("rb") as upload:
        source = ingestion_services.source_create(
            owner=owner, kind="file", company=COMPANY, upload=upload, upload_name=path.name
        )
    workers = harness.start_workers(children, args.workers, harness.child_env())
    first = ingestion_services.ingest_start(owner=owner, source_ids=[source.pk])
    first = harness.wait_terminal(first.pk, max(600.0, args.rows / 10))
    if first.status != "finished":
        raise RuntimeError(f"first ingest ended {first.status}: {first.error_message}")
    print(f"== unchanged re-runs of {args.rows:,} rows on {args.workers} workers")
    results: dict[str, list[dict[str, Any]]] = {"read all": [], "raw hash": []}
    for _ in range(args.repeat):
        for label in results:
            if label == "read all":
                forget_raw_hashes()
            result = timed_ingest(owner, source.pk, workers, args.rows)
            results[label].append(result)
            print(
                f"   {label:<9} {result['seconds']:6.2f} s {result['rate']:8,.0f} rows/s, "
                f"worker {result['worker_ms']:.3f} ms/row "
                f"(CPUs {result['busy']:.0f}% busy before)",
                flush=True,
            )
    best = {label: max(runs, key=lambda r: r["rate"]) for label, runs in results.items()}
    print("\nbest of each")
    for label, result in best.items():
        print(
            f"   {label:<9} {result['rate']:8,.0f} rows/s, "
            f"worker {min(r['worker_ms'] for r in results[label]):.3f} ms/row"
        )
    rate = best["raw hash"]["rate"]
    verdict = "ok" if rate >= GOAL_ROWS_PER_S else "MISSED"
    print(
        f"   raw hash ÷ read all {rate / best['read all']['rate']:5.2f}×   "
        f"goal >= {GOAL_ROWS_PER_S:,} rows/s   {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""An unchanged re-run of a large uploaded file, end to end: rows/s of an ingest that finds
every row unchanged, beside the same re-run reading (mapping and content-hashing) every row
as it did before rows were told by their raw hash, in the same process.

    cd /work/main && .venv/bin/python bench/rerun.py                  # 20,000 rows, 2 workers
    .venv/bin/python bench/rerun.py --rows 5000 --repeat 1            # a quicker look

In a fresh throwaway database (`BENCH_DB`, as bench/harness.py) on real `manage.py rqworker`
processes: one file source of `--rows` rows (~2 KB of HTML each) is ingested once, untimed;
then, `--repeat` times each, back to back, the tables vacuumed and analyzed (untimed) before
each timed run (`settle`):

    read all   every job's raw hash emptied first (untimed), so the listing maps and hashes
               every row again, finds it unchanged by content, and stores the raw hash again
    raw hash   the re-run as it is: rows told unchanged by their raw hash

It prints each run's rows/s (timed from the service call to the run's finished_at), the
workers' CPU per row and the database's (the bench database's backends, sampled while it
runs), the best of each, and the ratio. Then the issue's baseline, in this process:
django-import-export tuned with skip_unchanged re-importing the same rows into a job table
that holds them (`die_rerun`), and the best raw-hash re-run's ratio to it (goal: 20,000 rows/s
or more, and the ratio the issue's goal had to its baseline in the same run, 20,000 ÷ 2,788
= 7.17×, which holds on a faster or slower machine). Then, in this process, the CPU of
reading the file alone: a plain `csv.DictReader` over it, and the file adapter's records
(csv, a dict per row, its raw hash), with their ratio: the floor of a re-run that reads
every row.

    .venv/bin/python bench/rerun.py --profile /tmp/rerun-prof          # cProfile, in-process

With `--profile DIR`, instead: the first ingest and then one unchanged re-run executed in this
process under cProfile (`--workers` − 1 rqworkers help its listing, as on a worker among
others), printing the re-run's CPU per row, its statements by database CPU and the heaviest
functions, and writing the profile to DIR.
"""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402  (the path above first)
from bench.postings import file_postings, write_postings_csv  # noqa: E402
from bench.sql_timer import SqlTimer  # noqa: E402

COMPANY = "Acme Files"
GOAL_ROWS_PER_S = 20_000
# The goal beside its baseline of the same run (DIE tuned + skip_unchanged at 2,788
# rows/s): the ratio holds on a faster or slower machine, where rows/s alone does not.
GOAL_RATIO = GOAL_ROWS_PER_S / 2_788


def timed_ingest(owner: Any, source_id: int, workers: list[Any], rows: int) -> dict[str, Any]:
    from django.utils import timezone

    from ingestion import services as ingestion_services

    busy = harness.busy_cpu(0.5)
    cpu_before = harness.tree_cpu([w.pid for w in workers])
    began = timezone.now()
    with DatabaseCpu() as database:
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
        "db_ms": database.seconds / rows * 1000,
        "busy": busy,
    }


class DatabaseCpu:
    """CPU seconds of the bench database's backends while it runs, sampled every 0.1 s from
    their process titles ("postgres: user <db> ..."): the workers' work horses each open
    their own, which exit with the job, so a before/after pair would miss them; other
    sessions' databases on the same server do not count. A backend's last 0.1 s before it
    exits is lost."""

    def __init__(self) -> None:
        import threading

        from django.conf import settings

        self.marker = f" {settings.DATABASES['default']['NAME']} "
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        fresh = False  # backends already there when sampling starts count from then
        while True:
            for proc in psutil.process_iter(["name", "cmdline"]):
                if proc.info["name"] != "postgres":
                    continue
                if self.marker not in " ".join(proc.info["cmdline"] or ()) + " ":
                    continue
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                used = times.user + times.system
                self.first.setdefault(proc.pid, 0.0 if fresh else used)
                self.last[proc.pid] = used
            fresh = True
            if self.stop.wait(0.1):
                return

    def __enter__(self) -> DatabaseCpu:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def reading_cpu(source: Any, path: Path) -> dict[str, float]:
    """CPU seconds (this process) of a plain csv read of the file and of the file adapter's
    records (csv, a dict per row, its raw hash), best of 3."""
    from ingestion.adapters import get_adapter
    from ingestion.normalize import raw_hasher

    def plain() -> int:
        with path.open(newline="", encoding="utf-8") as handle:
            return sum(1 for _ in csv.DictReader(handle))

    def adapter() -> int:
        hasher = raw_hasher({"source": source.pk})
        return sum(1 for _ in get_adapter(source, None).records(hasher))  # type: ignore[arg-type]

    best = {}
    for label, read in (("plain csv", plain), ("records", adapter)):
        times = []
        for _ in range(3):
            began = time.process_time()
            read()
            times.append(time.process_time() - began)
        best[label] = min(times)
    return best


def settle() -> None:
    """Before each timed run, untimed: the tables the re-run reads and writes vacuumed and
    analyzed, as a database left alone between runs would have them. Back to back, the run
    before (and forgetting the raw hashes) leaves a dead version of every job row: the timed
    run would meet autovacuum, the finished ingest's own ANALYZE (after its finished_at) or
    the listing's stale-statistics check, which is not what a re-run of a settled table
    costs. VACUUM waits for an ANALYZE still running on the table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) ingestion_job, ingestion_jobseen, ingestion_runitem")


def die_rerun(owner: Any, source: Any, run: Any) -> dict[str, float]:
    """The issue's baseline, in this process: django-import-export tuned as bench/die.py
    tunes it (bulk, cached loader, ids as they are), with skip_unchanged (which needs its
    diff: skip_diff off, the HTML diff skipped) over the file's rows as the adapter maps
    them. The job table emptied and the rows imported once (untimed), then imported again:
    timed, every row found unchanged and skipped. The dataset is built untimed, as
    bench/die.py builds it: DIE reads no file here."""
    from bench.baselines import truncate_jobs
    from bench.die import dataset, resources

    rows = file_postings(source, run)
    _, tuned = resources()

    class SkipUnchanged(tuned):  # type: ignore[misc, valid-type]
        class Meta(tuned.Meta):  # type: ignore[name-defined]
            skip_diff = False
            skip_unchanged = True
            skip_html_diff = True
            report_skipped = False

    data = dataset(rows, owner, run)
    truncate_jobs()
    SkipUnchanged().import_data(data, dry_run=False, raise_errors=True)
    settle()
    began, cpu = time.perf_counter(), time.process_time()
    result = SkipUnchanged().import_data(data, dry_run=False, raise_errors=True)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    skipped = result.totals.get("skip", 0)
    if skipped != len(rows):
        raise RuntimeError(f"DIE skipped {skipped:,} of {len(rows):,} unchanged rows")
    return {"rate": len(rows) / seconds, "cpu_ms": cpu / len(rows) * 1000}


def forget_raw_hashes() -> None:
    from ingestion.models import Job

    Job.objects.update(raw_hash="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the file")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind")
    parser.add_argument("--keep-db", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="instead: one re-run in this process under cProfile, its profile written to DIR",
    )
    parser.add_argument("--top", type=int, default=30, help="with --profile: lines to print")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, harness.raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="intake-rerun-"))
    harness.use_bench_environment(work)
    children = harness.Children(work)
    body = profile if args.profile else bench
    return harness.run_bench(
        children, work, lambda: body(args, children, work), keep_db=args.keep_db
    )


def profile(args: argparse.Namespace, children: Any, work: Path) -> None:
    """The first ingest, then one unchanged re-run, executed in this process (the re-run
    under cProfile, `--workers` - 1 rqworkers helping its listing)."""
    import cProfile
    import io
    import pstats

    harness.recreate_database()
    harness.flush_redis()
    import django

    django.setup()
    from django.contrib.auth.models import User

    from ingestion import services as ingestion_services
    from ingestion.models import WorkChunk
    from ingestion.pipeline import diff
    from ingestion.pipeline.chunks import CHUNK_TASK
    from runs import queue, tasks

    def execute(run_id: int) -> None:
        if tasks.execute_run(run_id) == "deferred":
            numbers = WorkChunk.objects.filter(run_id=run_id, number__gt=0).values_list(
                "number", flat=True
            )
            for number in list(numbers):
                tasks.execute_part(run_id, CHUNK_TASK, number)
        queue.get_queue().empty()  # the queued copy of what ran here

    owner = User.objects.create_superuser("bench", password="bench")
    path = write_postings_csv(args.rows, work / "rows.csv")
    with path.open("rb") as upload:
        source = ingestion_services.source_create(
            owner=owner, kind="file", company=COMPANY, upload=upload, upload_name=path.name
        )
    execute(ingestion_services.ingest_start(owner=owner, source_ids=[source.pk]).pk)
    run = ingestion_services.ingest_start(owner=owner, source_ids=[source.pk])
    # Emptied before the helpers start: a helper started first could take the run's job.
    queue.get_queue().empty()
    helpers = []
    if args.workers > 1:
        helpers = harness.start_workers(children, args.workers - 1, harness.child_env())
        diff.live_workers = lambda: args.workers  # type: ignore[assignment]
    profiler = cProfile.Profile()
    timer = SqlTimer()
    helpers_cpu = harness.tree_cpu([h.pid for h in helpers])
    began, cpu_began = time.perf_counter(), time.process_time()
    with timer:
        profiler.enable()
        execute(run.pk)
        profiler.disable()
    seconds = time.perf_counter() - began
    own_cpu = time.process_time() - cpu_began
    time.sleep(0.3)
    cpu = harness.tree_cpu([h.pid for h in helpers]) - helpers_cpu
    run.refresh_from_db()
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(out / f"rerun-{args.rows}.prof")
    print(
        f"== unchanged re-run of {args.rows:,} rows in-process: {run.status}, "
        f"{run.outcome_counts.get('unchanged', 0):,} unchanged, {seconds:.2f} s "
        f"({args.rows / seconds:,.0f} rows/s, profiled), profile in {out}"
    )
    print(
        f"   this process: CPU {own_cpu:.2f} s ({own_cpu / args.rows * 1000:.3f} ms/row); "
        f"{len(helpers)} helper worker(s): CPU {cpu:.2f} s ({cpu / args.rows * 1000:.3f} ms/row)"
    )
    timer.report(seconds, args.rows)
    for sort in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(sort).print_stats(args.top)
        print("\n".join(line for line in text.getvalue().splitlines()[6:] if line))


def bench(args: argparse.Namespace, children: Any, work: Path) -> None:
    harness.recreate_database()
    harness.flush_redis()
    import django

    django.setup()
    from django.contrib.auth.models import User

    from ingestion import services as ingestion_services

    owner = User.objects.create_superuser("bench", password="bench")
    path = write_postings_csv(args.rows, work / "rows.csv")
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
            settle()
            result = timed_ingest(owner, source.pk, workers, args.rows)
            results[label].append(result)
            print(
                f"   {label:<9} {result['seconds']:6.2f} s {result['rate']:8,.0f} rows/s, "
                f"worker {result['worker_ms']:.3f} ms/row, "
                f"database {result['db_ms']:.3f} ms/row "
                f"(CPUs {result['busy']:.0f}% busy before)",
                flush=True,
            )
    best = {label: max(runs, key=lambda r: r["rate"]) for label, runs in results.items()}
    print("\nbest of each")
    for label, result in best.items():
        print(
            f"   {label:<9} {result['rate']:8,.0f} rows/s, "
            f"worker {min(r['worker_ms'] for r in results[label]):.3f} ms/row, "
            f"database {min(r['db_ms'] for r in results[label]):.3f} ms/row"
        )
    rate = best["raw hash"]["rate"]
    print(f"   raw hash ÷ read all {rate / best['read all']['rate']:5.2f}×")
    die = die_rerun(owner, source, first)
    ratio = rate / die["rate"]
    print(
        f"   DIE tuned + skip_unchanged, this process {die['rate']:8,.0f} rows/s, "
        f"CPU {die['cpu_ms']:.3f} ms/row"
    )
    verdict = "ok" if rate >= GOAL_ROWS_PER_S and ratio >= GOAL_RATIO else "MISSED"
    print(
        f"   raw hash ÷ DIE {ratio:5.2f}×   goal >= {GOAL_ROWS_PER_S:,} rows/s and "
        f">= {GOAL_RATIO:.2f}× DIE   {verdict}"
    )
    reading = reading_cpu(source, path)
    print(f"\nreading the file alone, in this process (CPU, best of 3), {args.rows:,} rows")
    for label, seconds in reading.items():
        print(f"   {label:<9} {seconds * 1e6 / args.rows:6.1f} us/row")
    print(f"   records ÷ plain csv {reading['records'] / reading['plain csv']:5.2f}×")


if __name__ == "__main__":
    sys.exit(main())

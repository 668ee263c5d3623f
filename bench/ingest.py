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
import cProfile
import io
import json
import os
import platform
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import bench_baselines  # noqa: E402  (the path above first)
from bench.harness import (  # noqa: E402
    Children,
    MemorySampler,
    busy_cpu,
    child_env,
    execute_in_process,
    flush_redis,
    postgres_cpu,
    raise_on_sigterm,
    recreate_database,
    run_bench,
    server_version,
    start_workers,
    tree_cpu,
    use_bench_environment,
    wait_idle,
    wait_terminal,
)
from bench.postings import (  # noqa: E402
    BOARD_COMPANY,
    BOARD_TOKEN,
    FILE_COMPANY,
    start_board_server,
    write_board_json,
    write_postings_csv,
)
from bench.sql_timer import SqlTimer  # noqa: E402

TARGETS = {
    "ingest_vs_naive": 10.0,  # ingest end to end ÷ naive per-row upsert, at least
    "upsert_vs_raw": 0.5,  # upsert step ÷ raw executemany, at least (within 2×)
    "preview_vs_naive": 20.0,  # preview end to end ÷ naive, at least
    "memory_growth": 1.25,  # peak RSS at the largest size ÷ at the smallest, at most
}


# --- one size: preview and ingest on real workers --------------------------------------------


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


# --- profile: the executors in this process ---------------------------------------------------


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
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
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
                    size, args, results["sizes"][-1]["ingest"]["run"], work
                )
        report(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))

    return run_bench(children, work, body, keep_db=args.keep_db)


if __name__ == "__main__":
    sys.exit(main())

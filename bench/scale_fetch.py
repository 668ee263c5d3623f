#!/usr/bin/env python
"""Scale-out benchmark: one ingest run over 1, 2 and 4 real RQ workers, and the speed-up.

    cd /work/main && .venv/bin/python bench/scale_fetch.py            # 2,000 + 20,000 postings
    .venv/bin/python bench/scale_fetch.py --workers 1,4 --postings 500 --cpu-postings 0
    .venv/bin/python bench/scale_fetch.py --workers "" --cpu-postings 0 --fetch-cost 400

Two variants, each a fresh owner with one Greenhouse-shaped board served by a separate
process (a threaded FixtureServer, so serving does not run in the workers):

    fetch   --postings (2,000) listed without their content, so every posting's detail page
            is fetched; each detail page answers after --delay (50 ms). Bound by the fetches.
    cpu     --cpu-postings (20,000) listed with ~2 KB descriptions: no fetch after the
            listing, bound by the workers' CPU (on 2 cores, 4 workers cannot go past ~2×).

Each run is timed from the service call to the terminal status the last worker writes. It
prints postings/s and the speed-up against the 1-worker run of the same variant (the first
--workers entry), the idle tail (from the first worker running out of chunks to the end of
the run) and the workers' CPU per posting. Needs the machine's PostgreSQL and Redis like
bench/ingest.py (`BENCH_PG`, `BENCH_REDIS`; the throwaway database is `BENCH_DB`, default
intake_scale_fetch, dropped at the end). Nothing is asserted: machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_DB", "intake_scale_fetch")

from bench.harness import (  # noqa: E402  (BENCH_DB is read at import)
    Children,
    busy_cpu,
    child_env,
    flush_redis,
    raise_on_sigterm,
    recreate_database,
    run_bench,
    serve_until_stopped,
    start_server,
    start_workers,
    tree_cpu,
    use_bench_environment,
    wait_terminal,
)

FETCH_BOARD = "fetchboard"
CPU_BOARD = "cpuboard"


# --- the board server (its own process) -------------------------------------------------------


def serve_boards(fetch_count: int, cpu_count: int, delay: float, ready_file: str) -> None:
    """`--serve`: the fetch-bound board (listing without content, detail pages answering after
    `delay`) and the CPU-bound one (listing with content), until SIGTERM."""
    from tests.fixture_server import FixtureServer, Reply, Request
    from tests.ingestion.boards import greenhouse_jobs, mount_greenhouse

    server = FixtureServer()
    jobs = list(greenhouse_jobs(fetch_count, board=FETCH_BOARD, size=2000))
    mount_greenhouse(server, FETCH_BOARD, jobs, listing_content=False)
    for job in jobs:
        path = f"/v1/boards/{FETCH_BOARD}/jobs/{job['id']}"
        body = json.dumps(job).encode()

        def detail(request: Request, body: bytes = body) -> Reply:
            time.sleep(delay)
            return Reply(200, body, {"Content-Type": "application/json"})

        server.route(path, handler=detail)
    if cpu_count:
        mount_greenhouse(server, CPU_BOARD, list(greenhouse_jobs(cpu_count, board=CPU_BOARD)))
    serve_until_stopped(server, ready_file)


def start_board_server(children: Children, args: argparse.Namespace, work: Path) -> str:
    ready = work / "boards.url"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve", str(ready)]
    argv += ["--postings", str(args.postings), "--cpu-postings", str(args.cpu_postings)]
    argv += ["--delay", str(args.delay)]
    return start_server(children, "boards", argv, ready, timeout=120)[1]


# --- runs ------------------------------------------------------------------------------------


def one_run(variant: str, workers: int, count: int, worker_pids: list[int]) -> dict[str, Any]:
    """A fresh owner ingests the variant's board once; the figures of that run."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from ingestion import services as ingestion_services
    from ingestion.models import WorkChunk

    owner = User.objects.create_user(f"bench-{variant}-{workers}-{time.monotonic_ns()}")
    source = ingestion_services.source_create(
        owner=owner,
        kind="greenhouse",
        company=f"Board {variant}",
        identifier=FETCH_BOARD if variant == "fetch" else CPU_BOARD,
    )
    busy = busy_cpu(0.5)
    cpu_before = tree_cpu(worker_pids)
    began = timezone.now()
    run = ingestion_services.ingest_start(owner=owner, source_ids=[source.pk])
    run = wait_terminal(run.pk, timeout=max(300.0, count / 5))
    seconds = (run.finished_at - began).total_seconds()
    time.sleep(0.3)  # the last work horse exits and is waited for
    cpu = tree_cpu(worker_pids) - cpu_before
    if run.status != "finished" or run.jobs_ready + run.jobs_skipped != count:
        raise RuntimeError(
            f"{variant} run #{run.pk} ended {run.status} with {run.counts()}: {run.error_message}"
        )
    done = WorkChunk.objects.filter(run=run).exclude(number=0)
    chunks = done.count()
    # The tail: from the moment the first worker ran out of chunks to the end of the run
    # (every worker busy to the end: ~0).
    last_by_worker: dict[str, Any] = {}
    for name, done_at in done.values_list("claimed_by", "done_at"):
        if done_at is not None:
            last_by_worker[name] = max(done_at, last_by_worker.get(name, done_at))
    idle_tail = (
        (run.finished_at - min(last_by_worker.values())).total_seconds()
        if len(last_by_worker) >= workers
        else seconds  # a worker got no chunk at all
    )
    return {
        "variant": variant,
        "workers": workers,
        "postings": count,
        "seconds": seconds,
        "rate": count / seconds,
        "chunks": chunks,
        "idle_tail": idle_tail,
        "worker_cpu": cpu,
        "cpu_ms_per_posting": cpu * 1000 / count,
        "busy_before": busy,
    }


def fetch_cost(count: int, board_url: str) -> dict[str, float]:
    """`--fetch-cost`: worker CPU per detail fetch, in this process, on 4 pool threads as a
    chunk fetches: the chunk's way (records buffered and stored a batch at a time, requests
    reserved in blocks) against one record INSERT and one quota INCR per fetch (the way
    every fetch went before), alternated twice. The fixture server is another process."""
    from django.contrib.auth.models import User

    from ingestion.adapters.readers import ordered_parallel
    from ingestion.fetching import Fetcher
    from ingestion.fetching.payloads import PayloadBuffer
    from ingestion.quota import quota_take_request, take_request_for

    owner = User.objects.create_user(f"bench-cost-{time.monotonic_ns()}")
    urls = [f"{board_url}/v1/boards/{FETCH_BOARD}/jobs/{n}" for n in range(1, count + 1)]

    def one_each() -> str | None:
        quota_take_request(owner.pk)
        return None

    def measure(batched: bool) -> float:
        buffer = PayloadBuffer() if batched else None
        hook = take_request_for(owner.pk) if batched else one_each
        with Fetcher(on_request=hook, payloads=buffer) as fetcher:
            list(
                ordered_parallel(lambda url: fetcher.get_json(url, page=True), urls[:20], threads=4)
            )
            began = time.process_time()
            list(ordered_parallel(lambda url: fetcher.get_json(url, page=True), urls, threads=4))
            if buffer is not None:
                buffer.flush()
            return (time.process_time() - began) * 1000 / len(urls)

    each, batched = [], []
    for _ in range(2):
        each.append(measure(batched=False))
        batched.append(measure(batched=True))
    figures = {"each_ms": min(each), "batched_ms": min(batched)}
    print(
        f"\nCPU per detail fetch ({count} fetches, 4 threads, best of 2): one record and one "
        f"quota INCR each {figures['each_ms']:.2f} ms; records a batch at a time and requests "
        f"in blocks {figures['batched_ms']:.2f} ms "
        f"({figures['each_ms'] / figures['batched_ms']:.2f}× less)"
    )
    return figures


def report(rows: list[dict[str, Any]], baseline_rate: float | None) -> None:
    print(
        "\nvariant  workers  postings  seconds  postings/s  speed-up  chunks  idle tail s  "
        "worker CPU s  ms/posting (CPUs busy before)"
    )
    first: dict[str, float] = {}
    for row in rows:
        base = first.setdefault(row["variant"], row["rate"])
        row["speedup"] = row["rate"] / base
        print(
            f"{row['variant']:8} {row['workers']:7d} {row['postings']:9,d} {row['seconds']:8.1f} "
            f"{row['rate']:11.1f} {row['speedup']:8.2f}× {row['chunks']:7d} "
            f"{row['idle_tail']:12.1f} {row['worker_cpu']:13.1f} "
            f"{row['cpu_ms_per_posting']:11.2f} ({row['busy_before']:.0f}%)"
        )
    fetch_one = next((r for r in rows if r["variant"] == "fetch"), None)
    if baseline_rate and fetch_one is not None:
        print(
            f"\nfetch, {fetch_one['workers']} worker(s): {fetch_one['rate']:.1f} postings/s = "
            f"{fetch_one['rate'] / baseline_rate:.2f}× the given baseline {baseline_rate:g}/s "
            "(goal ≥ 3.5×)"
        )
    print("goals: fetch ≥ 1.8× at 2 workers, ≥ 3.2× at 4")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="worker counts, first = baseline")
    parser.add_argument("--postings", type=int, default=2000, help="fetch-bound run size")
    parser.add_argument(
        "--cpu-postings", type=int, default=20000, help="CPU-bound run size (0: skip it)"
    )
    parser.add_argument("--delay", type=float, default=0.05, help="detail page latency, s")
    parser.add_argument(
        "--baseline-rate",
        type=float,
        help="postings/s of the fetch-bound 1-worker run on the old code, to print the ratio",
    )
    parser.add_argument(
        "--fetch-cost",
        type=int,
        default=0,
        metavar="N",
        help="also measure CPU per detail fetch over N fetches in this process (e.g. 400)",
    )
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve_boards(args.postings, args.cpu_postings, args.delay, args.serve)
        return 0
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="intake-scale-"))
    use_bench_environment(work, INTAKE_ALLOW_PRIVATE_NETWORK="1")
    children = Children(work)
    rows: list[dict[str, Any]] = []

    def body() -> None:
        recreate_database()
        import django

        django.setup()
        flush_redis()
        board_url = start_board_server(children, args, work)
        env = child_env(INTAKE_GREENHOUSE_URL=board_url, INTAKE_ALLOW_PRIVATE_NETWORK="1")
        if args.fetch_cost:
            rows.append({"variant": "fetch-cost", **fetch_cost(args.fetch_cost, board_url)})
        variants = [("fetch", args.postings)]
        if args.cpu_postings:
            variants.append(("cpu", args.cpu_postings))
        for count in args.worker_counts:
            procs = start_workers(children, count, env)
            try:
                for variant, size in variants:
                    row = one_run(variant, count, size, [p.pid for p in procs])
                    rows.append(row)
                    print(
                        f"   {variant:5} {count} worker(s): {row['seconds']:6.1f} s "
                        f"{row['rate']:8.1f} postings/s, {row['chunks']} chunks",
                        flush=True,
                    )
            finally:
                for proc in procs:
                    children.stop(proc)
        rows.sort(key=lambda r: (r["variant"] != "fetch", r.get("workers", 0)))
        runs = [r for r in rows if "workers" in r]
        if runs:
            report(runs, args.baseline_rate)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))

    return run_bench(children, work, body)


if __name__ == "__main__":
    sys.exit(main())

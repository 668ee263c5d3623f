"""Live feed benchmark: N SSE watchers on one live run, event -> client latency.

Starts the web server with `manage.py start`'s own command line (bench/web.py), opens N
watchers of `/runs/<id>/stream/` from client processes (bench/sse_watchers.py: cheap
watchers on the same cores as the server, so the server is what is measured), then
publishes events on that
run through runs.transitions.publish_event at a set rate, as a worker does. Each event carries
its publish time; each client notes when it arrived. Printed: latency p50/p99/max (for a burst,
max is how far behind the watchers fell), events lost, duplicated and reordered over all
watchers, and the web processes' threads, RSS and CPU while it ran.

    .venv/bin/python bench/live_feed.py                       # 100 watchers, 10 events/s, 10 s
    .venv/bin/python bench/live_feed.py --watchers 1000 --seconds 20
    .venv/bin/python bench/live_feed.py --watchers 500 --burst  # ~200 events/s for 5 s
    .venv/bin/python bench/live_feed.py --watchers 500 --burst --batch-events  # ?batch=1
    .venv/bin/python bench/live_feed.py --web-workers 2 ...   # override start's web processes
    .venv/bin/python bench/live_feed.py --pushpin --watchers 5000  # Pushpin holds the streams

With --pushpin, a private Pushpin (Debian's `pushpin`, tests/pushpin.py) stands in front of
the web server in GRIP mode (runs/grip.py): the watchers connect to Pushpin, the web server
answers each stream request once, and every event is published to Pushpin's control API,
which writes it to the watchers. Pushpin's own processes' CPU and RSS are printed too.

Environment: see bench/web.py (BENCH_PG, BENCH_DB, BENCH_REDIS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import web  # noqa: E402
from bench.sse_watchers import raise_open_files_limit  # noqa: E402


class ProcessTree:
    """A process and its children, for web.Sampler (Pushpin's runner and its services)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def processes(self) -> list[Any]:
        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        return []


# --- the bench -------------------------------------------------------------------------------


def publish(run: Any, rate: float, seconds: float) -> tuple[int, float]:
    """Publish `rate` events a second for `seconds`, as a worker would; returns how many and
    the rate reached."""
    from runs import transitions

    count = int(rate * seconds)
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        transitions.publish_event(run, type="bench.tick", payload={"t": time.time()})
    took = time.monotonic() - start
    return count, count / took if took else float("inf")


def publish_burst(run: Any, rate: float, seconds: float, batch: int) -> tuple[int, float]:
    """A run emitting per-item events fast (thousands of invalid rows, say): `batch` events
    per transaction, written as runs.transitions.publish_event writes them (the run row locked
    while their seqs are taken, broadcast after commit), so the database's commit rate does
    not cap the burst below what a busy run emits."""
    from django.db import transaction
    from django.db.models import F

    from runs import feed
    from runs.models import IngestionRun, RunEvent

    count = int(rate * seconds)
    start = time.monotonic()
    for first in range(0, count, batch):
        delay = start + first / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        size = min(batch, count - first)
        with transaction.atomic():
            IngestionRun.objects.filter(pk=run.pk).update(last_event_seq=F("last_event_seq") + size)
            fresh = IngestionRun.objects.get(pk=run.pk)
            snapshot = fresh.snapshot()
            now = time.time()
            rows = RunEvent.objects.bulk_create(
                RunEvent(
                    run_id=run.pk,
                    seq=fresh.last_event_seq - size + 1 + i,
                    type="bench.tick",
                    payload={"t": now},
                    snapshot=snapshot,
                )
                for i in range(size)
            )
            envelopes = [row.envelope() for row in rows]
            transaction.on_commit(lambda e=envelopes: [feed.broadcast(x) for x in e])
    took = time.monotonic() - start
    return count, count / took if took else float("inf")


def collect(clients: list[Any], drain: float, client_cpu: list[float]) -> list[dict[str, Any]]:
    """Every client's watchers, once they saw the end event; after `drain` seconds the
    clients are told to stop and report what they have (the rest counts as lost)."""
    import selectors

    selector = selectors.DefaultSelector()
    for proc in clients:
        selector.register(proc.stdout, selectors.EVENT_READ, proc)
    deadline = time.monotonic() + drain
    results: list[dict[str, Any]] = []
    pending = len(clients)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for proc in clients:
                with contextlib.suppress(OSError):
                    proc.stdin.write("stop\n")
                    proc.stdin.flush()
            remaining = deadline = float("inf")
        for key, _ in selector.select(timeout=min(remaining, 1.0)):
            line = web.read_line(key.data)
            results.extend(line["watchers"])
            client_cpu.append(line["cpu"])
            selector.unregister(key.fileobj)
            pending -= 1
    return results


def record_broadcasts() -> dict[int, float]:
    """When each event went out on Redis (seq -> time), from this process's feed.broadcast:
    the latency from there is the web tier's part, without the database write before it."""
    from runs import feed

    sent: dict[int, float] = {}
    original = feed.broadcast

    def timed(envelope: dict[str, Any]) -> None:
        sent[int(envelope["seq"])] = time.time()
        original(envelope)

    feed.broadcast = timed
    return sent


def analyse(
    results: list[dict[str, Any]], first_seq: int, last_seq: int, sent: dict[int, float]
) -> dict[str, Any]:
    expected = set(range(first_seq, last_seq + 1))
    lost = duplicates = reorders = 0
    latencies: list[float] = []
    from_broadcast: list[float] = []
    errors = []
    for watcher in results:
        seqs = watcher["seqs"]
        seen: set[int] = set()
        previous = 0
        for seq in seqs:
            if seq in seen:
                duplicates += 1
            elif seq < previous:
                reorders += 1
            seen.add(seq)
            previous = max(previous, seq)
        lost += len(expected - seen)
        latencies.extend(watcher["lat"])
        # Arrival = the payload's time + latency; from the broadcast = arrival - broadcast.
        for seq, lat, t in zip(seqs, watcher["lat"], watcher["t"], strict=True):
            if seq in sent:
                from_broadcast.append((t + lat - sent[seq]) * 1000)
        if watcher["error"]:
            errors.append(watcher["error"])
    ms = [x * 1000 for x in latencies]
    return {
        "deliveries": len(ms),
        "p50_ms": round(web.percentile(ms, 50), 1),
        "p99_ms": round(web.percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else None,
        "from_broadcast_p50_ms": round(web.percentile(from_broadcast, 50), 1),
        "from_broadcast_p99_ms": round(web.percentile(from_broadcast, 99), 1),
        "from_broadcast_max_ms": round(max(from_broadcast), 1) if from_broadcast else None,
        "lost": lost,
        "duplicates": duplicates,
        "reorders": reorders,
        "errors": sorted(set(errors))[:3],
        "watchers_with_errors": len(errors),
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    web.setup_django()
    run, cookie = web.owner_with_live_run()
    after = run.events.order_by("-id").values_list("id", flat=True).first() or 0
    first_seq = run.last_event_seq + 1
    log_dir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    proxy = None
    port = None
    grip_env: dict[str, str] = {}
    if args.pushpin:
        from django.conf import settings

        from tests import pushpin

        if not pushpin.available():
            raise SystemExit("--pushpin needs Debian's pushpin: apt-get install -y pushpin")
        raise_open_files_limit()
        port = web.free_port()
        rate = args.burst_rate if args.burst else args.rate
        proxy = pushpin.Pushpin(
            f"127.0.0.1:{port}",
            directory=log_dir / "pushpin",
            # Pushpin's default; condure 1.9.1 panicked (server.rs:1684) with 1,000 watchers
            # under a limit of 1,100.
            max_connections=max(50_000, args.watchers * 4),
            message_rate=args.pushpin_message_rate or max(2500, int(args.watchers * rate * 2)),
        )
        grip_env = {"INTAKE_GRIP_URL": proxy.control_url, "INTAKE_GRIP_KEY": pushpin.SIG_KEY}
        # This process publishes the events: to Pushpin too.
        settings.INTAKE_GRIP_URL = proxy.control_url
        settings.INTAKE_GRIP_KEY = pushpin.SIG_KEY
    try:
        server = web.Web(log_dir, web_workers=args.web_workers, port=port, env=grip_env)
    except BaseException:
        if proxy is not None:
            proxy.stop()
        raise
    connect_port = proxy.port if proxy is not None else server.port
    clients: list[Any] = []
    try:
        per = [args.watchers // args.clients + (i < args.watchers % args.clients) for i in
               range(args.clients)]  # fmt: skip
        path = f"/runs/{run.pk}/stream/?after={after}" + ("&batch=1" if args.batch_events else "")
        rate = args.burst_rate if args.burst else args.rate
        seconds = args.burst_seconds if args.burst else args.seconds
        for n in per:
            clients += web.spawn_clients(
                "sse_watchers.py",
                1,
                ["127.0.0.1", str(connect_port), path, cookie, str(n), str(args.open_at_once)],
            )
        opened = sum(web.read_line(proc)["ready"] for proc in clients)
        sent = record_broadcasts()
        idle = web.Sampler(server).start()
        time.sleep(1.0)
        idle_stats = idle.stop()
        busy = web.busy_cpu(0.5)
        sampler = web.Sampler(server).start()
        proxy_sampler = (
            web.Sampler(ProcessTree(proxy.popen.pid)).start()  # type: ignore[arg-type]
            if proxy is not None
            else None
        )
        if args.burst:
            count, reached = publish_burst(run, rate, seconds, args.batch)
        else:
            count, reached = publish(run, rate, seconds)
        from runs import transitions

        transitions.publish_event(run, type="bench.end", payload={"t": time.time()})
        client_cpu: list[float] = []
        results = collect(clients, args.drain, client_cpu)
        stats = sampler.stop()
        web_cpu = sampler.cpu_seconds
        proxy_stats = proxy_sampler.stop() if proxy_sampler is not None else None
    finally:
        for proc in clients:
            if proc.poll() is None:
                proc.kill()
        server.stop()
        if proxy is not None:
            proxy.stop()
    figures = analyse(results, first_seq, first_seq + count, sent)
    # CPU per delivery holds up under a busy machine, where the latencies are the scheduler's.
    per_delivery = web_cpu / figures["deliveries"] * 1e6 if figures["deliveries"] else None
    return {
        "watchers": args.watchers,
        "opened": opened,
        "web_workers": args.web_workers,
        "web_argv": " ".join(server.argv[2:]),
        "mode": ("burst" if args.burst else "steady")
        + (" via Pushpin" if args.pushpin else "")
        + (", ?batch=1" if args.batch_events else ""),
        "sse_events": sum(w["frames"] for w in results),
        "pushpin": proxy_stats,
        "events": count + 1,
        "rate_asked": rate,
        "rate_reached": round(reached, 1),
        "cpu_busy_before_percent": busy,
        "idle": idle_stats,
        **figures,
        **stats,
        "web_cpu_seconds": round(web_cpu, 2),
        "web_cpu_us_per_delivery": round(per_delivery, 1) if per_delivery else None,
        "client_cpu_seconds": round(sum(client_cpu), 1),
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"{result['watchers']} watchers ({result['opened']} opened), {result['mode']}: "
        f"{result['events']} events at {result['rate_reached']}/s "
        f"(asked {result['rate_asked']}/s); web: {result['web_argv']}"
    )
    print(
        f"  event -> client: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms over {result['deliveries']} deliveries in "
        f"{result['sse_events']} SSE events (from the publish call, the database write "
        "included)"
    )
    print(
        f"  broadcast -> client: p50 {result['from_broadcast_p50_ms']} ms, "
        f"p99 {result['from_broadcast_p99_ms']} ms, max {result['from_broadcast_max_ms']} ms "
        "(from the Redis publish after commit: the web tier's part)"
    )
    print(
        f"  lost {result['lost']}, duplicates {result['duplicates']}, "
        f"reorders {result['reorders']}, watchers with errors {result['watchers_with_errors']} "
        f"{result['errors'] or ''}"
    )
    idle = result["idle"]
    print(
        f"  web processes: {result['threads']} threads, {result['rss_mb']} MB RSS, "
        f"{result['cpu_percent_of_a_core']} % of a core while publishing "
        f"({result['web_cpu_seconds']} s, {result['web_cpu_us_per_delivery']} us per delivery) "
        f"(idle with the watchers open: {idle['threads']} threads, {idle['rss_mb']} MB); "
        f"CPUs {result['cpu_busy_before_percent']} % busy before; the client processes "
        f"used {result['client_cpu_seconds']} s of CPU in all"
    )
    if result["pushpin"]:
        proxy = result["pushpin"]
        print(
            f"  Pushpin's processes: {proxy['threads']} threads, {proxy['rss_mb']} MB RSS, "
            f"{proxy['cpu_percent_of_a_core']} % of a core while publishing"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="events/s (steady)")
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time (steady)")
    parser.add_argument("--burst", action="store_true", help="a burst instead")
    parser.add_argument("--burst-rate", type=float, default=200.0)
    parser.add_argument("--burst-seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=50, help="events per transaction (burst)")
    parser.add_argument(
        "--batch-events",
        action="store_true",
        help="watch with ?batch=1 (as the run page does): coalesced events come as one",
    )
    parser.add_argument(
        "--pushpin", action="store_true", help="watchers connect to a Pushpin in GRIP mode"
    )
    parser.add_argument(
        "--pushpin-message-rate",
        type=int,
        default=0,
        help="Pushpin's [handler] message_rate (default: twice watchers × events/s)",
    )
    parser.add_argument(
        "--open-at-once",
        type=int,
        default=None,
        help="streams each client process opens at a time (default: 100 with --pushpin, "
        "else no limit)",
    )
    parser.add_argument(
        "--drain", type=float, default=60.0, help="seconds to wait for the last event"
    )
    web.add_common_options(parser)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.open_at_once is None:
        args.open_at_once = 100 if args.pushpin else 0
    result = bench(args)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

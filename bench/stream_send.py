"""CPU per delivery of the web process's SSE path, in one process: N streams of one run
(runs.stream.stream_run_events behind the web process's ASGI handler, as uvicorn drives it) and
E events fanned out to them as the Redis listener does. No server, sockets or database (the
replay is stubbed out), so the figure is the Python work per delivery that the code in
runs/stream.py decides, and holds up on a busy machine where bench/live_feed.py's
latencies are the scheduler's. Its `send` is no server's: every delivery goes through the
streams' own path, not the direct writes fan_out makes under uvicorn (bench/live_feed.py
measures those). uvloop and the web process's gc settings, as in production.

    .venv/bin/python bench/stream_send.py                  # 1,000 streams x 100 events
    .venv/bin/python bench/stream_send.py --streams 100 --events 1000

Needs Redis (the streams start the web process's listener): BENCH_REDIS, default
redis://127.0.0.1:6379/10. Works in a checkout from before runs/stream.py too (runs.feed
then), to measure "before" with the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def measure(streams: int, events: int) -> tuple[int, float]:
    from django.core.handlers.asgi import ASGIHandler
    from django.http import StreamingHttpResponse
    from django_eventstream.views import get_listener_manager

    try:
        from runs import stream as path
    except ImportError:  # before runs/stream.py
        from runs import feed as path  # type: ignore[no-redef]

    path._replay = lambda run_id, after_id: ([], 0)
    # The web process's handler (project/asgi.py), where there is one of its own.
    handler = getattr(path, "StreamingASGIHandler", ASGIHandler)()
    sent = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += 1

    # A run id no database here has: pub/sub channels are server-wide, so events of another
    # process's run 1 (any Redis db) would reach these streams too.
    run_id = random.randrange(10**12, 10**13)
    channel = f"run-{run_id}"
    tasks = []
    for _ in range(streams):
        body = path.stream_run_events(run_id, after_id=0, user_id=1)
        if hasattr(path, "EventStreamResponse"):
            response = path.EventStreamResponse(body)
        else:
            response = StreamingHttpResponse(body, content_type="text/event-stream")
        tasks.append(asyncio.create_task(handler.send_response(response, send)))
    manager = get_listener_manager()
    # Every stream open and the listener subscribed: its first subscription wakes every
    # stream to re-read the database, which must not fall inside the measurement.
    deadline = time.monotonic() + 30
    while not getattr(manager.redis_listener, "connected", True):
        if time.monotonic() > deadline:
            raise SystemExit("the listener did not subscribe to Redis")
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    gc.collect()
    gc.freeze()  # as project/asgi.py's tune_gc
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    before = sent
    start = time.process_time()
    for seq in range(1, events + 1):
        data = (
            f'{{"id":{seq},"runId":{run_id},"seq":{seq},"type":"bench.tick","payload":{{"t":1.0}},'
            '"run":{"terminal":false,"status":"running"}}'
        )
        event = path.LiveEvent(channel, seq, seq, data, False)
        path.fan_out(manager, channel, path.Delivery([event]))
        for _ in range(4):  # the wakes run, then the streams, then their sends
            await asyncio.sleep(0)
    deadline = time.monotonic() + 30
    while sent - before < streams * events and time.monotonic() < deadline:
        await asyncio.sleep(0)
    cpu = time.process_time() - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sent - before, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")
    import django
    import uvloop

    django.setup()
    deliveries, cpu = uvloop.run(measure(args.streams, args.events))
    expected = args.streams * args.events
    print(
        f"{args.streams} streams x {args.events} events: {deliveries} deliveries "
        f"(expected {expected}), {cpu * 1e6 / max(deliveries, 1):.1f} us of CPU per delivery"
    )
    return 0 if deliveries == expected else 1


if __name__ == "__main__":
    sys.exit(main())

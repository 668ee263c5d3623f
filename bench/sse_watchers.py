"""The watcher processes of bench/live_feed.py: each opens N SSE streams of one run
(asyncio protocols on uvloop, each read parsed in its socket's callback and timestamped as it
comes off the socket, so a watcher costs the client little on the same cores as the server),
prints one JSON line when they are open and one with every watcher's sequence numbers and
latencies at the end.

    python bench/sse_watchers.py --client HOST PORT PATH COOKIE N OPEN_AT_ONCE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import web  # noqa: E402

FRAME = re.compile(rb'"seq":(\d+),.*?"type":"([a-z.]+)".*?"payload":\{"t":([0-9.]+)')


class Watcher:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.frames = 0  # SSE events carrying run events (a batch counts once)
        self.latencies: list[float] = []
        self.sent: list[float] = []
        self.ended = False
        self.error = ""


class WatchProtocol(asyncio.Protocol):
    """One watcher, read in the event loop's callback for its socket: each read is
    timestamped as it comes off the socket, and parsed there and then, with no task, stream
    reader or wake-up per watcher per event (which cost the clients, on the same cores as the
    server, more CPU per delivery than the server spent, and queued each watcher's timestamp
    behind the other watchers' parsing)."""

    def __init__(
        self, watcher: Watcher, request: bytes, opened: Any, finished: asyncio.Future[None]
    ) -> None:
        self.watcher = watcher
        self.request = request
        self.opened = opened
        self.finished = finished
        self.answered: asyncio.Future[None] = finished.get_loop().create_future()
        self.transport: Any = None
        self.head = b""
        self.in_body = False
        self.raw = b""  # chunked transfer encoding not yet undone
        self.rest = b""  # the start of an SSE event not yet complete

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        watcher = self.watcher
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[: end + 4], self.head[end + 4 :]
            self.in_body = True
            self._answered()
            if not head.startswith(b"HTTP/1.1 200"):
                watcher.error = head.split(b"\r\n", 1)[0].decode()
                self._finish()
                return
            if not data:
                return
        if watcher.ended:
            return
        if self.opened is not None and b"stream-open" in data:
            self.opened.release()
            self.opened = None
        # Undo the chunked transfer encoding: complete chunks only.
        raw = self.raw + data if self.raw else data
        body = [self.rest]
        while (nl := raw.find(b"\r\n")) >= 0:
            size = int(raw[:nl], 16)
            if len(raw) < nl + 4 + size:
                break
            body.append(raw[nl + 2 : nl + 2 + size])
            raw = raw[nl + 4 + size :]
        self.raw = raw
        data = b"".join(body)
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self.rest = data
            return
        whole, self.rest = data[: cut + 2], data[cut + 2 :]
        watcher.frames += whole.count(b"event: message\n") + whole.count(b"event: batch\n")
        for seq, kind, sent in FRAME.findall(whole):
            watcher.seqs.append(int(seq))
            watcher.latencies.append(now - float(sent))
            watcher.sent.append(float(sent))
            if kind == b"bench.end":
                watcher.ended = True
        if watcher.ended:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.watcher.ended:
            self.watcher.error = self.watcher.error or (repr(exc) if exc else "closed")
        self._answered()
        self._finish()

    def _answered(self) -> None:
        if not self.answered.done():
            self.answered.set_result(None)

    def _finish(self) -> None:
        if self.opened is not None:
            self.opened.release()
            self.opened = None
        if self.transport is not None:
            self.transport.close()
        if not self.finished.done():
            self.finished.set_result(None)


async def watch(
    host: str, port: int, request: bytes, watcher: Watcher, opened: Any, opening: Any
) -> None:
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    try:
        async with opening:
            _, protocol = await loop.create_connection(
                lambda: WatchProtocol(watcher, request, opened, finished), host, port
            )
            await protocol.answered
    except OSError as exc:
        watcher.error = repr(exc)
        opened.release()
        return
    await finished


def raise_open_files_limit() -> None:
    """A watcher is a socket: thousands of them need more than the usual 1,024 descriptors
    (Pushpin's processes inherit the limit from here)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_loop() -> Any:
    """uvloop's event loop when installed (uvicorn's own choice): its per-read callbacks
    cost less than asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def client_main(args: argparse.Namespace) -> None:
    raise_open_files_limit()
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\nCookie: {args.cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    watchers = [Watcher() for _ in range(args.n)]
    opened = asyncio.Semaphore(0)
    # Streams being opened at once (0: no limit); Pushpin answered 500 and 502 to part of
    # 5,000 opened together.
    opening: Any = asyncio.Semaphore(args.open_at_once) if args.open_at_once else nullcontext()
    tasks = []
    for watcher in watchers:
        tasks.append(
            asyncio.create_task(watch(args.host, args.port, request, watcher, opened, opening))
        )
        await asyncio.sleep(0)  # let it connect before the next one (no SYN flood)
    for _ in watchers:
        await opened.acquire()
    print(json.dumps({"ready": sum(1 for w in watchers if not w.error)}), flush=True)
    # Until every watcher saw the end event, or the bench says stop (a line on stdin).
    stop = asyncio.ensure_future(
        asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    )
    await asyncio.wait([asyncio.gather(*tasks), stop], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    cpu = os.times()
    print(
        json.dumps(
            {
                "cpu": cpu.user + cpu.system,
                "watchers": [
                    {
                        "seqs": w.seqs,
                        "frames": w.frames,
                        "lat": [round(x, 5) for x in w.latencies],
                        "t": w.sent,
                        "error": w.error,
                    }
                    for w in watchers
                ],
            }
        ),
        flush=True,
    )


def main() -> int:
    args = web.client_args(("host", "port", "path", "cookie", "n", "open_at_once"))
    args.port, args.n, args.open_at_once = int(args.port), int(args.n), int(args.open_at_once)
    with asyncio.Runner(loop_factory=client_loop()) as runner:
        runner.run(client_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

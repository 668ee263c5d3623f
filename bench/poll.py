"""Status-poll benchmark: requests/s and latency of `/runs/<id>/status/` (the page's poll) and
of `/api/v1/runs/<id>` (the JSON API's, with a bearer token) under concurrency, beside a
static file and the login page on the same server (the framework's own ceiling).

Starts the web server with `manage.py start`'s own command line (bench/web.py), signs an
owner in with one live run, then for each concurrency (10 and 50 by default) and each target
keeps that many HTTP/1.1 keep-alive connections busy for `--seconds` from client processes
(plain asyncio sockets, so the server is what saturates; the clients' CPU is printed beside
the server's to show it). Each poll is measured twice: plain, and revalidating with
If-None-Match as a browser (or a client of the API) does once it has the ETag (304 when
nothing changed).

Before the HTTP phases, `--cpu-requests` requests per target are sent straight to the ASGI
application inside this process (no sockets, no server): the web CPU each one costs, through
Django's handler and through the status poll's fast path (runs.status_poll), beside the static
file (through Django, and in front of it: project.static_files). The fast path remembers the
run for a second (runs.status_poll.RUN_RECHECK_SECONDS), so most of these polls, and of the
HTTP phases', are answered from memory, as many pages polling one run are. CPU time per
request, measured back to back in one process, is what a loaded machine disturbs least; the
HTTP figures show what it buys end to end.

    .venv/bin/python bench/poll.py
    .venv/bin/python bench/poll.py --concurrency 10,50 --seconds 5 --web-workers 1
    .venv/bin/python bench/poll.py --cpu-requests 2000 --seconds 0   # the CPU figures only
    .venv/bin/python bench/poll.py --only api,static              # targets naming these

Environment: see bench/web.py (BENCH_PG, BENCH_DB, BENCH_REDIS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import web  # noqa: E402

STATIC_PATH = "/static/css/intake.css"


# --- client process --------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers


async def connection(args: argparse.Namespace, latencies: list[float], codes: dict) -> None:
    reader, writer = await asyncio.open_connection(args.host, args.port)
    base = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
    base += "".join(f"{name}: {value}\r\n" for name, value in json.loads(args.headers).items())
    etag = b""
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    while time.time() < args.end_at:
        extra = f"If-None-Match: {etag.decode()}\r\n" if args.etag and etag else ""
        started = time.perf_counter()
        writer.write((base + extra + "\r\n").encode())
        status, headers = await read_response(reader)
        latencies.append(time.perf_counter() - started)
        codes[status] = codes.get(status, 0) + 1
        etag = headers.get(b"etag", etag)
    writer.close()


async def client_main(args: argparse.Namespace) -> None:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    cpu0 = os.times()
    tasks = [asyncio.create_task(connection(args, latencies, codes)) for _ in range(args.n)]
    done, _ = await asyncio.wait(tasks)
    errors = [repr(t.exception()) for t in done if t.exception()]
    cpu1 = os.times()
    print(
        json.dumps(
            {
                "lat": latencies,
                "codes": codes,
                "errors": errors[:3],
                "cpu": cpu1.user + cpu1.system - cpu0.user - cpu0.system,
            }
        ),
        flush=True,
    )


# --- CPU per request, in process -------------------------------------------------------------


def asgi_scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    raw = [(b"host", b"127.0.0.1")]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": raw, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def asgi_get(app: Any, scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes]]:
    """One request to the ASGI application `app`, as a server would make it."""
    pending = [{"type": "http.request", "body": b"", "more_body": False}]
    status = 0
    headers: dict[bytes, bytes] = {}

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # connected until the app is done (it cancels this)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update((k.lower(), v) for k, v in message["headers"])

    await app(scope, receive, send)
    return status, headers


async def cpu_per_request(
    app: Any, path: str, headers: dict[str, str], *, requests: int, concurrency: int, etag: bool
) -> dict[str, Any]:
    """Web CPU per request (this process's CPU time over `requests` requests kept
    `concurrency` at a time), and the status codes."""
    headers = dict(headers)
    if etag:
        _, first = await asgi_get(app, asgi_scope(path, headers))
        headers["If-None-Match"] = first[b"etag"].decode()
    scope = asgi_scope(path, headers)
    codes: dict[int, int] = {}
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, _ = await asgi_get(app, dict(scope))
            codes[status] = codes.get(status, 0) + 1

    await asgi_get(app, dict(scope))  # warm
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_ms": round(1000 * cpu / requests, 3), "wall_s": round(wall, 2), "codes": codes}


class Target:
    """One thing to request: its path and the headers that sign its client in."""

    def __init__(self, name: str, path: str, headers: dict[str, str]) -> None:
        self.name, self.path, self.headers = name, path, headers


def targets_for(run_pk: int, cookie: str, token: str) -> list[Target]:
    session = {"Cookie": cookie}
    return [
        Target("status poll", f"/runs/{run_pk}/status/", {**session, "HX-Request": "true"}),
        Target("API run", f"/api/v1/runs/{run_pk}", {"Authorization": f"Bearer {token}"}),
        Target("static file", STATIC_PATH, session),
        Target("login page", "/login/", session),
    ]


def wanted(name: str, args: argparse.Namespace) -> bool:
    return not args.only or any(word in name.lower() for word in args.only)


def cpu_bench(targets: list[Target], args: argparse.Namespace) -> list[dict[str, Any]]:
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()
    poll, api, static, login = targets
    rows: list[tuple[str, Any, Target, bool]] = []
    try:
        from runs.status_poll import StatusPoll
    except ImportError:  # a checkout from before the fast path (to measure "before")
        fast = None
    else:
        fast = StatusPoll(django_app)
    for target in (poll, api):
        for etag in (False, True):
            label = target.name + (" If-None-Match" if etag else "")
            rows.append((f"{label}, through Django", django_app, target, etag))
            if fast is not None:
                rows.append((f"{label}, fast path", fast, target, etag))
    rows.append(("static file (WhiteNoise, through Django)", django_app, static, False))
    try:
        from project.static_files import StaticFiles
    except ImportError:  # a checkout from before it
        pass
    else:
        front = StaticFiles(django_app)
        rows.append(("static file, in front of Django", front, static, False))
    rows.append(("login page", django_app, login, False))
    results = []
    for name, app, target, etag in rows:
        if not wanted(name, args) and not name.startswith("static file (W"):
            continue
        row = asyncio.run(
            cpu_per_request(
                app,
                target.path,
                target.headers,
                requests=args.cpu_requests,
                concurrency=10,
                etag=etag,
            )
        )
        results.append({"target": name, **row})
    static_ms = next(r["cpu_ms"] for r in results if r["target"].startswith("static file (W"))
    for row in results:
        row["vs_static_file"] = round(row["cpu_ms"] / static_ms, 2)
        print(
            f"  {row['target']:<46} {row['cpu_ms']:>7} ms CPU/request  "
            f"{row['vs_static_file']:>5}x the static file  codes {row['codes']}"
        )
    return results


# --- the bench -------------------------------------------------------------------------------


def phase(
    server: web.Web,
    target: Target,
    concurrency: int,
    args: argparse.Namespace,
    etag: bool,
) -> dict[str, Any]:
    start_at = time.time() + 1.5  # the client processes start and connect meanwhile
    end_at = start_at + args.seconds
    per = [concurrency // args.clients + (i < concurrency % args.clients) for i in
           range(args.clients)]  # fmt: skip
    clients = []
    for n in per:
        clients += web.spawn_clients(
            "poll.py",
            1,
            ["127.0.0.1", str(server.port), target.path, json.dumps(target.headers), str(n),
             str(start_at), str(end_at), "1" if etag else "0"],
        )  # fmt: skip
    time.sleep(max(0.0, start_at - time.time()))
    sampler = web.Sampler(server).start()
    results = [web.read_line(proc) for proc in clients]
    for proc in clients:
        proc.wait(30)
    stats = sampler.stop()
    latencies = [x * 1000 for r in results for x in r["lat"]]
    codes: dict[str, int] = {}
    for r in results:
        for code, count in r["codes"].items():
            codes[code] = codes.get(code, 0) + count
    return {
        "target": target.name,
        "path": target.path,
        "concurrency": concurrency,
        "if_none_match": etag,
        "requests_per_second": round(len(latencies) / args.seconds, 1),
        "p50_ms": round(web.percentile(latencies, 50), 2),
        "p99_ms": round(web.percentile(latencies, 99), 2),
        "codes": codes,
        "errors": [e for r in results for e in r["errors"]][:3],
        "client_cpu_percent_of_a_core": round(
            100 * sum(r["cpu"] for r in results) / args.seconds, 1
        ),
        "web_cpu_percent_of_a_core": stats["cpu_percent_of_a_core"],
        "web_cpu_ms_per_request": round(1000 * sampler.cpu_seconds / max(1, len(latencies)), 3),
        "web_threads": stats["threads"],
    }


def api_token(run: Any) -> str:
    """A bearer token of the run's owner."""
    from api import tokens

    return tokens.token_create(owner=run.owner, name="bench")[1]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    web.setup_django()
    run, cookie = web.owner_with_live_run()
    targets = targets_for(run.pk, cookie, api_token(run))
    busy = web.busy_cpu(0.5)
    result: dict[str, Any] = {"cpu_busy_before_percent": busy}
    if args.cpu_requests:
        print(f"in process, {args.cpu_requests} requests per target, 10 at a time:")
        result["cpu_rows"] = cpu_bench(targets, args)
    if not args.seconds:
        return result
    server = web.Web(Path(tempfile.mkdtemp(prefix="bench-poll-")), web_workers=args.web_workers)
    rows = []
    poll, api, static, login = targets
    phases = [(poll, False), (poll, True), (api, False), (api, True), (static, False),
              (login, False)]  # fmt: skip
    try:
        for concurrency in args.concurrency:
            for target, etag in phases:
                if not wanted(target.name + (" If-None-Match" if etag else ""), args):
                    continue
                rows.append(phase(server, target, concurrency, args, etag))
                report_row(rows[-1])
    finally:
        server.stop()
    return {**result, "web_argv": " ".join(server.argv[2:]), "rows": rows}


def report_row(row: dict[str, Any]) -> None:
    name = row["target"] + (" (If-None-Match)" if row["if_none_match"] else "")
    print(
        f"  c={row['concurrency']:<3} {name:<30} {row['requests_per_second']:>8} req/s  "
        f"p50 {row['p50_ms']:>7} ms  p99 {row['p99_ms']:>7} ms  codes {row['codes']}  "
        f"web CPU {row['web_cpu_percent_of_a_core']} % "
        f"({row['web_cpu_ms_per_request']} ms/request)  client CPU "
        f"{row['client_cpu_percent_of_a_core']} %  threads {row['web_threads']}"
        + (f"  errors {row['errors']}" if row["errors"] else "")
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--concurrency", type=lambda raw: [int(x) for x in raw.split(",")], default=[10, 50]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per HTTP measurement (0: none)")
    parser.add_argument(
        "--cpu-requests", type=int, default=1000, help="per in-process target (0: none)"
    )
    parser.add_argument(
        "--only",
        type=lambda raw: [x.strip().lower() for x in raw.split(",") if x.strip()],
        default=[],
        help="only the targets whose names contain one of these words (e.g. api,static)",
    )
    web.add_common_options(parser)
    return parser.parse_args(argv)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        args = web.client_args(
            ("host", "port", "path", "headers", "n", "start_at", "end_at", "etag")
        )
        args.port, args.n = int(args.port), int(args.n)
        args.start_at, args.end_at = float(args.start_at), float(args.end_at)
        args.etag = args.etag == "1"
        asyncio.run(client_main(args))
        return 0
    args = parse_args()
    result = bench(args)
    web_argv = result.get("web_argv", "(no HTTP phases)")
    print(f"web: {web_argv}; CPUs {result['cpu_busy_before_percent']} % busy before")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

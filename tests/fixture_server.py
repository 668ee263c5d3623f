"""A real local HTTP server for source fixtures (never the internet): tests register routes
that answer in each public API's shape, and can change them between runs (a board that
changed), fail them (503 twice then 200), slow them (a hanging server) or count hits.

    server.route("/v1/boards/acme/jobs", json={...})
    server.route("/slow", handler=lambda request: time.sleep(5) or Reply(200, b"late"))
    server.url("/v1/boards/acme/jobs")  # http://127.0.0.1:PORT/v1/boards/acme/jobs
"""

from __future__ import annotations

import gzip
import json as jsonlib
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[0]


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Gzip the body on the wire (Content-Encoding: gzip).
    gzip: bool = False


Handler = Callable[[Request], Reply]


class FixtureServer:
    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body go out in two writes: with Nagle's algorithm the body
            # waits for the client's delayed ACK of the headers, ~40 ms an answer on a
            # kept-alive connection, which no real board adds.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._serve(self, "GET")

            def do_HEAD(self) -> None:
                server._serve(self, "HEAD")

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gives up (a timeout, a size cap) resets its connection: quiet.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A short poll interval: close() waits up to one interval for the loop to notice.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # --- routes ------------------------------------------------------------------------

    def route(
        self,
        path: str,
        *,
        json: Any = None,
        body: bytes | str | None = None,
        status: int = 200,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        handler: Handler | None = None,
    ) -> None:
        """Answer GET `path` (query string ignored unless the handler reads it)."""
        if handler is None:
            if json is not None:
                payload = jsonlib.dumps(json).encode()
                ctype = content_type or "application/json"
            else:
                payload = body.encode() if isinstance(body, str) else (body or b"")
                ctype = content_type or "text/html; charset=utf-8"
            fixed = Reply(status, payload, {"Content-Type": ctype, **(headers or {})})

            def handler(request: Request) -> Reply:
                return fixed

        with self._lock:
            self._routes[path] = handler

    def sequence(self, path: str, replies: list[Reply]) -> None:
        """Answer `path` with each reply in turn, then keep answering with the last one."""
        remaining = list(replies)

        def handler(request: Request) -> Reply:
            with self._lock:
                return remaining.pop(0) if len(remaining) > 1 else remaining[0]

        self.route(path, handler=handler)

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- serving -------------------------------------------------------------------------

    def _serve(self, http: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(http.path)
        request = Request(method, parts.path, parse_qs(parts.query), dict(http.headers.items()))
        with self._lock:
            self.hits[parts.path] += 1
            self.requests.append(request)
            handler = self._routes.get(parts.path)
        reply = handler(request) if handler else Reply(404, b'{"error": "not found"}')
        chunks = [reply.body] if isinstance(reply.body, bytes) else reply.body
        try:
            http.send_response(reply.status)
            headers = dict(reply.headers)
            if isinstance(reply.body, bytes):
                data = gzip.compress(reply.body) if reply.gzip else reply.body
                if reply.gzip:
                    headers["Content-Encoding"] = "gzip"
                headers["Content-Length"] = str(len(data))
                for key, value in headers.items():
                    http.send_header(key, value)
                http.end_headers()
                if method != "HEAD":
                    http.wfile.write(data)
                return
            # A streamed body (iterable of chunks): chunked transfer encoding.
            headers["Transfer-Encoding"] = "chunked"
            for key, value in headers.items():
                http.send_header(key, value)
            http.end_headers()
            for chunk in chunks:
                if chunk:
                    http.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    http.wfile.flush()
            http.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

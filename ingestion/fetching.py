"""Every outbound HTTP request of Intake goes through here (adapters never call httpx).

What every fetch guarantees, whoever calls it:

* SSRF guard. Only http(s), no `user:pass@`, and no address in the networks of
  `_BLOCKED_NETWORKS` (loopback, private, link-local, CGNAT, multicast, reserved, documentation,
  cloud metadata, and the IPv4 ones embedded in IPv6), unless INTAKE_ALLOW_PRIVATE_NETWORK is on
  (cloud-metadata addresses stay refused even then). The host is resolved once, every address
  it resolves to must pass, and the socket is opened to one of those vetted addresses (not to
  the name again), so DNS rebinding between check and connect is impossible. Redirects are
  followed here, hop by hop, so each hop goes through the same guard.
* Time. Connect and read timeouts per socket operation, and a total deadline
  (INTAKE_FETCH_DEADLINE) per call: tries, back-off sleeps and the whole body read, including a
  stream() the caller consumes slowly. A server that trickles a byte a second still ends.
* Retries. INTAKE_FETCH_TRIES tries on network errors, 429 and 5xx, with exponential back-off
  and jitter, honouring Retry-After up to INTAKE_FETCH_MAX_RETRY_AFTER. Other 4xx are final.
  stream() retries only before its body is handed over.
* Size. At most INTAKE_FETCH_MAX_BYTES (a board's listing) or, with `page=True`,
  INTAKE_FETCH_PAGE_MAX_BYTES (an HTML page or one posting's detail), or `max_bytes=`, of
  *decompressed* body: we ask for gzip/deflate only and inflate ourselves in bounded steps, so
  a gzip bomb never gets far.
* Memory. A body read whole (get(), not stream()) counts, as it arrives, against
  INTAKE_FETCH_MEMORY_BUDGET, shared by every fetch of the process: parallel fetches cannot
  multiply the cap. A call that would pass it stops with FetchError.
* Politeness. At most INTAKE_FETCH_PER_HOST requests in flight per host, across every Fetcher
  and thread of the process.
* A hook. `Fetcher(on_request=...)` is asked before each request attempt; a run's Fetcher
  counts its owner's daily request quota there.
* A record. The outcome of each call (after its tries) is stored as a RawPayload, in its own
  transaction, unless `store=False`; failing to store it is logged, never raised.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx
from django.conf import settings
from django.db import connection, transaction

from ingestion import safejson

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Body pieces are at most this big once inflated, so the size cap is checked often enough.
CHUNK_SIZE = 64 * 1024
ALLOWED_SCHEMES = frozenset({"http", "https"})


class FetchError(Exception):
    """A fetch that failed for good; `message` is for the user. `status` is the HTTP status
    when the server answered (404: the board does not exist), None for network errors,
    timeouts, SSRF refusals and oversized bodies."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


@dataclass
class FetchResponse:
    url: str  # final URL after redirects
    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.content_type), errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not, or nests deeper than
        safejson.MAX_DEPTH."""
        return safejson.loads(self.content)


class StreamedResponse:
    """A response whose body is read as it arrives (a 100 MB board is never held whole).

    The body comes decompressed; reading it raises FetchError when it crosses the size cap,
    passes the deadline or the connection breaks."""

    def __init__(self, response: httpx.Response, chunks: Iterator[bytes] | None = None) -> None:
        self._response = response
        self._chunks = chunks if chunks is not None else response.iter_bytes()
        self.url = str(response.url)
        self.status_code = response.status_code
        self.headers = response.headers

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def iter_bytes(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        buffer = bytearray()
        for chunk in self._chunks:
            buffer += chunk
            while len(buffer) >= chunk_size:
                yield bytes(buffer[:chunk_size])
                del buffer[:chunk_size]
        if buffer:
            yield bytes(buffer)

    def reader(self) -> _IteratorReader:
        """A binary file-like object over the body (for ijson, csv)."""
        return _IteratorReader(self._chunks)


class _IteratorReader:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


# --- SSRF guard -----------------------------------------------------------------------------

# Python 3.11.7's ipaddress.is_private/is_global predate the fix for CVE-2024-4032, so the
# guard relies on this explicit list only.
_METADATA_ADDRESSES = {
    ipaddress.ip_address(address): "a cloud metadata address"
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address reachable from every Azure VM)
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS DNS over IPv6
    )
}
_BLOCKED_NETWORKS: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = [
    (ipaddress.ip_network(network), label)
    for network, label in (
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved (IETF protocol) address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved (6to4 relay) address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a reserved (benchmarking) address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),  # includes 255.255.255.255 (broadcast)
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "a reserved (IPv4-compatible) address"),
        ("64:ff9b:1::/48", "a reserved (local NAT64) address"),
        ("100::/64", "a reserved (discard) address"),
        ("2001::/23", "a reserved (IETF protocol, Teredo) address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a reserved (site-local) address"),
        ("ff00::/8", "a multicast address"),
    )
]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _blocked_reason(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why `ip` may not be fetched from, or None. Cloud-metadata addresses are refused even
    when private networks are allowed: no job board lives there."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(int(ip))  # drop a %scope, which would defeat `in`
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = _blocked_reason(embedded, allow_private=allow_private)
            return f"{reason} ({embedded} inside {ip})" if reason else None
    if ip in _METADATA_ADDRESSES:
        return _METADATA_ADDRESSES[ip]
    if allow_private:
        return None
    for network, label in _BLOCKED_NETWORKS:
        if ip.version == network.version and ip in network:
            return label
    return None


class _Refused(Exception):
    """An SSRF refusal raised from inside httpx (the connection was never opened)."""


def _check_url(url: httpx.URL) -> None:
    """Refuse what can be refused without DNS: schemes, userinfo, literal addresses."""
    if url.scheme not in ALLOWED_SCHEMES:
        shown = f"{url.scheme}:" if url.scheme else "a URL without a scheme"
        raise _Refused(f"Refused to fetch {url}: only http and https are allowed, not {shown}")
    if url.userinfo:
        raise _Refused(
            f"Refused to fetch {url.copy_with(username=None, password=None)}: "
            "URLs with a user name or password are not allowed"
        )
    if not url.host:
        raise _Refused(f"Refused to fetch {url}: it has no host")
    with contextlib.suppress(ValueError):
        _check_address(url.host, ipaddress.ip_address(url.host))


def _check_address(host: str, ip: IPAddress) -> None:
    allow_private = settings.INTAKE_ALLOW_PRIVATE_NETWORK
    reason = _blocked_reason(ip, allow_private=allow_private)
    if reason:
        where = str(ip) if host == str(ip) else f"{host} ({ip})"
        # The setting lifts the refusal of every address but the metadata ones: name it only
        # when it would help.
        if _blocked_reason(ip, allow_private=True):
            why = "cloud metadata addresses are always refused, whatever the settings"
        else:
            why = "private networks are refused unless INTAKE_ALLOW_PRIVATE_NETWORK is on"
        raise _Refused(f"Refused to fetch from {where}: {reason}, not a public one; {why}.")


def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to. Tests replace this to stand in for DNS."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _connect_tcp(
    address: str, port: int, timeout: float | None, socket_options: Iterable[Any] | None
) -> httpcore.NetworkStream:
    """Open a TCP connection to a vetted numeric address (no DNS happens here). Tests replace
    this to route a public-looking address to the local fixture server."""
    return httpcore.SyncBackend().connect_tcp(
        address, port, timeout=timeout, socket_options=socket_options
    )


# --- Deadline -------------------------------------------------------------------------------
# The deadline of the call in progress on this thread: every socket operation's timeout is
# clamped to what is left of it. Body reads of stream() happen on the caller's thread, so
# they set it around each read as well.
_local = threading.local()


class _DeadlinePassed(Exception):
    pass


@contextlib.contextmanager
def _deadline_scope(deadline: float) -> Iterator[None]:
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


def _clamp(timeout: float | None) -> float | None:
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlinePassed
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network layer: resolve, vet every address, connect to a vetted one.

    httpcore still does TLS with the URL's host name (SNI, certificate check) and httpx sends
    it in the Host header: only the address the socket goes to is pinned."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _clamp(timeout)
        try:
            addresses = [ipaddress.ip_address(address) for address in _resolve(host, port)]
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for ip in addresses:  # all of them: the one we do not check is the one we'd get
            _check_address(host, ip)
        failure: Exception | None = None
        for ip in addresses:
            try:
                return _DeadlineStream(_connect_tcp(str(ip), port, _clamp(timeout), socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise _Refused("Unix sockets are never fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx.HTTPTransport has no way to pass a network backend to its httpcore pool, so
        # the pool is replaced by one that has ours (same settings as httpx's defaults).
        # No proxy support on purpose: through a proxy the guard would vet the proxy only.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(),
        )


# --- Per-host limit -------------------------------------------------------------------------

_host_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_host_slots_lock = threading.Lock()


def _host_slot(host: str) -> threading.BoundedSemaphore:
    """The process-wide semaphore for `host` (keyed by the limit too, so a changed setting
    takes effect for new requests)."""
    limit = settings.INTAKE_FETCH_PER_HOST
    with _host_slots_lock:
        slot = _host_slots.get((host, limit))
        if slot is None:
            slot = _host_slots[(host, limit)] = threading.BoundedSemaphore(limit)
        return slot


# --- Memory budget --------------------------------------------------------------------------


class _MemoryBudget:
    """Bytes of response bodies being read whole by the fetches of this process (a work horse
    reads up to jsonld.FETCH_THREADS pages at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold `size` more bytes, or False when that would pass INTAKE_FETCH_MEMORY_BUDGET."""
        with self._lock:
            if self.held + size > settings.INTAKE_FETCH_MEMORY_BUDGET:
                return False
            self.held += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size


_memory_budget = _MemoryBudget()


# --- Decompression --------------------------------------------------------------------------


class _DecodeError(Exception):
    pass


def _inflate(chunks: Iterator[bytes], *, gzip: bool) -> Iterator[bytes]:
    """Inflate in steps of at most CHUNK_SIZE output bytes (zlib's max_length), so a small
    compressed chunk never becomes a huge one in memory before the cap is checked."""
    decompressor: Any = None
    for data in chunks:
        while data:
            if decompressor is None:
                if gzip:
                    wbits = 16 + zlib.MAX_WBITS
                else:  # "deflate" is zlib-wrapped by the RFC, raw by some servers
                    zlib_header = (
                        len(data) > 1
                        and data[0] & 0x0F == 8
                        and int.from_bytes(data[:2], "big") % 31 == 0
                    )
                    wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
                decompressor = zlib.decompressobj(wbits)
            try:
                out = decompressor.decompress(data, CHUNK_SIZE)
            except zlib.error as exc:
                raise _DecodeError(
                    f"the {'gzip' if gzip else 'deflate'} body is corrupt: {exc}"
                ) from exc
            if out:
                yield out
            if decompressor.eof:
                # Another gzip member may follow; anything after a deflate stream is junk.
                data = decompressor.unused_data if gzip else b""
                decompressor = None
            elif decompressor.unconsumed_tail:
                data = decompressor.unconsumed_tail
            elif len(out) == CHUNK_SIZE:
                data = b""
                # Output may be pending with no input left: drain it.
                while True:
                    out = decompressor.decompress(b"", CHUNK_SIZE)
                    if out:
                        yield out
                    if len(out) < CHUNK_SIZE:
                        break
            else:
                data = b""
    if decompressor is not None and not decompressor.eof:
        tail = decompressor.flush()
        if tail:
            yield tail


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    chunks: Iterator[bytes] = response.iter_raw(CHUNK_SIZE)
    encodings = [
        value.strip().lower()
        for value in response.headers.get("content-encoding", "").split(",")
        if value.strip()
    ]
    # Applied in the reverse of the order listed. We only ask for gzip and deflate; anything
    # else is passed through as httpx would.
    for encoding in reversed(encodings):
        if encoding in ("gzip", "x-gzip"):
            chunks = _inflate(chunks, gzip=True)
        elif encoding == "deflate":
            chunks = _inflate(chunks, gzip=False)
    return chunks


# --- Retry timing ---------------------------------------------------------------------------


def _retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date; None if absent or junk."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _backoff(attempt: int) -> float:
    """Exponential back-off with jitter: about BACKOFF, 2×, 4× ... (±50 %), so many fetchers
    failing together do not come back together."""
    return settings.INTAKE_FETCH_BACKOFF * 2 ** (attempt - 1) * (0.5 + random.random())


def _retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


# --- Raw payload record ---------------------------------------------------------------------


@dataclass
class _Record:
    url: str
    started: float = field(default_factory=time.monotonic)
    status_code: int | None = None
    content_type: str = ""
    size: int = 0
    sample: bytearray = field(default_factory=bytearray)
    complete: bool = False
    attempts: int = 0
    error: str = ""

    def start_attempt(self) -> None:
        self.attempts += 1
        self.status_code = None
        self.content_type = ""
        self.size = 0
        self.sample.clear()
        self.complete = False

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = settings.INTAKE_PAYLOAD_MAX_BYTES - len(self.sample)
        if room > 0:
            self.sample += chunk[:room]


def _save_payload(fields: dict[str, Any]) -> None:
    from ingestion.models import RawPayload

    RawPayload.objects.create(**fields)


def _save_payload_on_own_connection(fields: dict[str, Any]) -> None:
    # Runs on a thread of its own, hence on a database connection of its own (autocommit).
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Never wait on the caller's locks (it waits for us): fail and log instead.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
            _save_payload(fields)
    except Exception:
        logger.exception("Could not store the raw payload of %s", fields.get("url"))
    finally:
        connection.close()


def _store_payload(fields: dict[str, Any]) -> None:
    """Store one RawPayload without touching the caller's transaction semantics; failures are
    logged. Outside a transaction it is a plain autocommit INSERT. Inside one, PostgreSQL
    writes it on another connection (so it stays even if the caller rolls back, and a failed
    INSERT cannot poison the caller's transaction); SQLite cannot (the caller holds the only
    write lock: IMMEDIATE transactions), so there it is written once the caller commits."""
    try:
        if not connection.in_atomic_block:
            _save_payload(fields)
        elif connection.vendor == "sqlite":
            transaction.on_commit(lambda: _store_payload(fields))
        else:
            writer = threading.Thread(
                target=_save_payload_on_own_connection, args=(fields,), daemon=True
            )
            writer.start()
            writer.join(timeout=10)
    except Exception:
        logger.exception("Could not store the raw payload of %s", fields.get("url"))


# --- The fetcher ----------------------------------------------------------------------------


class _Call:
    """One call of get() or stream(): its tries, its deadline, its record, and once open,
    the response and the host slot it holds."""

    def __init__(
        self,
        fetcher: Fetcher,
        url: str,
        params: dict[str, Any] | None,
        max_bytes: int | None,
        page: bool = False,
    ) -> None:
        self.fetcher = fetcher
        self.url = url
        self.params = params
        if max_bytes is not None:
            self.max_bytes, self.cap_name = max_bytes, "max_bytes"
        elif page:
            self.max_bytes = settings.INTAKE_FETCH_PAGE_MAX_BYTES
            self.cap_name = "INTAKE_FETCH_PAGE_MAX_BYTES"
        else:
            self.max_bytes, self.cap_name = (
                settings.INTAKE_FETCH_MAX_BYTES,
                "INTAKE_FETCH_MAX_BYTES",
            )
        self.deadline_seconds = settings.INTAKE_FETCH_DEADLINE
        self.deadline = time.monotonic() + self.deadline_seconds
        self.record = _Record(url=url)
        self.response: httpx.Response | None = None
        self.headers = httpx.Headers()  # the last answer's
        self._slot: threading.BoundedSemaphore | None = None

    # Errors ------------------------------------------------------------------------------

    def error(self, message: str, status: int | None = None) -> FetchError:
        return FetchError(message, url=self.url, status=status)

    def deadline_error(self) -> FetchError:
        return self.error(
            f"{self.record.url} did not finish within the {self.deadline_seconds:g} s deadline "
            "(INTAKE_FETCH_DEADLINE)"
        )

    def network_error(self, exc: Exception) -> FetchError:
        if isinstance(exc, _DeadlinePassed) or time.monotonic() >= self.deadline:
            return self.deadline_error()
        if isinstance(exc, httpx.TimeoutException):
            what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for data"
            return self.error(f"Could not fetch {self.record.url}: timed out {what}")
        detail = str(exc) or type(exc).__name__
        return self.error(f"Could not fetch {self.record.url}: {detail}")

    # Opening -----------------------------------------------------------------------------

    def _release(self) -> None:
        if self.response is not None:
            with contextlib.suppress(Exception), _deadline_scope(time.monotonic() + 1):
                self.response.close()
            self.response = None
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def _ask_on_request(self) -> None:
        """Let the Fetcher's on_request hook (the run owner's request quota) refuse this
        attempt; a refusal fails the call with the hook's reason."""
        if self.fetcher.on_request is None:
            return
        refusal = self.fetcher.on_request()
        if refusal:
            raise self.error(f"{refusal} Not fetched: {self.record.url}")

    def _send_following_redirects(self) -> httpx.Response:
        """One try: GET, following redirects ourselves so that each hop is vetted. Returns
        the final response with its body unread and its host slot held."""
        client = self.fetcher._client
        target: httpx.URL | str = self.url
        for hop in range(MAX_REDIRECTS + 1):
            try:
                request = client.build_request(
                    "GET",
                    target,
                    params=self.params if hop == 0 else None,
                    # From the settings of the moment, like every other limit here.
                    timeout=httpx.Timeout(
                        settings.INTAKE_FETCH_READ_TIMEOUT,
                        connect=settings.INTAKE_FETCH_CONNECT_TIMEOUT,
                    ),
                )
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError, ValueError) as exc:
                raise _Refused(f"Refused to fetch {target}: not a valid URL ({exc})") from None
            self.record.url = str(request.url)
            _check_url(request.url)
            self._ask_on_request()
            slot = _host_slot(request.url.host)
            if not slot.acquire(timeout=max(0.0, self.deadline - time.monotonic())):
                raise _DeadlinePassed
            self._slot = slot
            self.response = client.send(request, stream=True)
            self.record.status_code = self.response.status_code
            self.headers = self.response.headers
            self.record.content_type = self.response.headers.get("content-type", "")[:200]
            location = self.response.headers.get("location")
            if self.response.status_code not in REDIRECT_STATUSES or not location:
                return self.response
            self._release()
            try:
                target = request.url.join(location)
            except httpx.InvalidURL as exc:
                raise _Refused(f"Refused to follow a redirect to {location!r}: {exc}") from None
        raise self.error(f"{self.url} redirected more than {MAX_REDIRECTS} times")

    def open(self, *, read: bool) -> bytes | None:
        """Try until a 2xx answers, then return its body when `read` (size-capped), else
        leave it open for the caller (self.response). Raises FetchError for good."""
        tries = settings.INTAKE_FETCH_TRIES
        for attempt in range(1, tries + 1):
            self.record.start_attempt()
            try:
                with _deadline_scope(self.deadline):
                    response = self._send_following_redirects()
                    if response.is_success:
                        return self.read_all() if read else None
                    self._sample_error_body()
                status = response.status_code
                failure = self.error(f"{self.record.url} answered {status}", status=status)
                if not _retryable_status(status) or attempt == tries:
                    raise failure
                wait = self._wait_before_retry(attempt, response, failure)
            except _Refused as exc:
                raise self.error(str(exc)) from None
            except _DecodeError as exc:
                raise self.error(f"Could not read {self.record.url}: {exc}") from None
            except _DeadlinePassed:
                raise self.deadline_error() from None
            except httpx.TransportError as exc:
                failure = self.network_error(exc)
                if attempt == tries or time.monotonic() >= self.deadline:
                    raise failure from exc
                wait = _backoff(attempt)
            finally:
                if self.response is None or not self.response.is_success or read:
                    self._release()
            if time.monotonic() + wait >= self.deadline:
                raise self.error(
                    f"{failure}; gave up after {attempt} of {tries} tries: another would not "
                    f"finish within the {self.deadline_seconds:g} s deadline",
                    status=failure.status,
                )
            time.sleep(wait)
        raise AssertionError("unreachable")  # the last try returns or raises

    def _wait_before_retry(
        self, attempt: int, response: httpx.Response, failure: FetchError
    ) -> float:
        retry_after = _retry_after_seconds(response.headers.get("retry-after"))
        if retry_after is None:
            return _backoff(attempt)
        cap = settings.INTAKE_FETCH_MAX_RETRY_AFTER
        if retry_after > cap:
            raise self.error(
                f"{failure}, asking to retry after {retry_after:.0f} s: longer than the "
                f"{cap:g} s we wait (INTAKE_FETCH_MAX_RETRY_AFTER); try again later",
                status=failure.status,
            )
        return max(retry_after, _backoff(attempt))

    # Reading -----------------------------------------------------------------------------

    def _sample_error_body(self) -> None:
        """Keep the start of an error answer for the record (no more than that is read)."""
        assert self.response is not None
        with contextlib.suppress(
            httpx.TransportError, httpx.StreamError, _DecodeError, _DeadlinePassed
        ):
            for chunk in _decoded(self.response):
                self.record.add(chunk)
                if self.record.size > settings.INTAKE_PAYLOAD_MAX_BYTES:
                    return
            self.record.complete = True

    def _check_declared_size(self) -> None:
        assert self.response is not None
        declared = self.response.headers.get("content-length", "")
        encoded = self.response.headers.get("content-encoding", "identity") != "identity"
        if declared.isdigit() and not encoded and int(declared) > self.max_bytes:
            raise self.error(
                f"{self.record.url} is {int(declared)} bytes, more than the "
                f"{self.max_bytes} byte cap ({self.cap_name}); not read"
            )

    def body_chunks(self) -> Iterator[bytes]:
        """The decompressed body, counted against the cap and recorded; raises FetchError."""
        assert self.response is not None
        self._check_declared_size()
        for chunk in _decoded(self.response):
            self.record.add(chunk)
            if self.record.size > self.max_bytes:
                raise self.error(
                    f"{self.record.url} sent more than the {self.max_bytes} byte cap "
                    f"({self.cap_name}, counted decompressed); stopped reading"
                )
            yield chunk
        self.record.complete = True

    def read_all(self) -> bytes:
        """The whole body, its bytes held against the process's memory budget meanwhile."""
        body = bytearray()
        try:
            for chunk in self.body_chunks():
                if not _memory_budget.take(len(chunk)):
                    raise self.error(
                        f"{self.record.url}: stopped reading after {len(body)} bytes: the "
                        "fetches of this process are holding their memory budget "
                        f"({settings.INTAKE_FETCH_MEMORY_BUDGET} bytes, "
                        "INTAKE_FETCH_MEMORY_BUDGET) already"
                    )
                body += chunk
            return bytes(body)
        finally:
            _memory_budget.give(len(body))

    def streamed_chunks(self) -> Iterator[bytes]:
        """body_chunks() for a caller reading at its own pace on its own thread: each read
        keeps to the deadline, and every failure is a FetchError (no retries any more)."""
        chunks = self.body_chunks()
        while True:
            try:
                with _deadline_scope(self.deadline):
                    chunk = next(chunks)
            except StopIteration:
                return
            except _DeadlinePassed:
                raise self.deadline_error() from None
            except _DecodeError as exc:
                raise self.error(f"Could not read {self.record.url}: {exc}") from None
            except (httpx.TransportError, httpx.StreamError) as exc:
                raise self.network_error(exc) from exc
            yield chunk

    # Record ------------------------------------------------------------------------------

    def finish(self, error: BaseException | None) -> None:
        self._release()
        if not self.fetcher.store:
            return
        record = self.record
        if isinstance(error, FetchError):
            record.error = str(error)
        elif error is not None:
            record.error = f"The reader stopped: {type(error).__name__}: {error}"
        _store_payload(
            {
                "run_id": self.fetcher.run_id,
                "source_id": self.fetcher.source_id,
                "url": record.url[:2000],
                "method": "GET",
                "status_code": record.status_code,
                "content_type": record.content_type,
                "size": record.size,
                "body": bytes(record.sample),
                "truncated": not record.complete or record.size > len(record.sample),
                "attempts": record.attempts,
                "duration_ms": int((time.monotonic() - record.started) * 1000),
                "error": record.error,
            }
        )


class Fetcher:
    """One per run (or per command): shares connections, records RawPayloads against
    `run_id`/`source_id` (unless `store` is False). Safe to use from several threads at once.

    `on_request`, when given, is asked before each request attempt (every try and every
    redirect hop): a reason it returns refuses the attempt, and the call fails with a
    FetchError carrying that reason. A run passes its owner's daily request quota
    (`ingestion.quota.take_request_for`).

    Beware holding a stream() open while fetching from the same host on the same thread: with
    INTAKE_FETCH_PER_HOST=1 the second request waits for the first until the deadline."""

    def __init__(
        self,
        *,
        run_id: int | None = None,
        source_id: int | None = None,
        store: bool = True,
        on_request: Callable[[], str | None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.source_id = source_id
        self.store = store
        self.on_request = on_request
        self._client = httpx.Client(
            transport=_GuardedTransport(),
            timeout=httpx.Timeout(
                settings.INTAKE_FETCH_READ_TIMEOUT, connect=settings.INTAKE_FETCH_CONNECT_TIMEOUT
            ),
            follow_redirects=False,  # followed by _Call, so every hop is vetted
            trust_env=False,  # no proxies from the environment: they would bypass the guard
            headers={
                "User-Agent": settings.INTAKE_FETCH_USER_AGENT,
                # Only what _decoded inflates in bounded steps (no br/zstd).
                "Accept-Encoding": "gzip, deflate",
            },
        )

    def for_source(self, source_id: int | None) -> Fetcher:
        """The same client, recording payloads against another source."""
        clone = Fetcher.__new__(Fetcher)
        clone.__dict__.update(self.__dict__)
        clone.source_id = source_id
        return clone

    def get(
        self,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        max_bytes: int | None = None,
        page: bool = False,
    ) -> FetchResponse:
        """GET `url`; FetchError for any non-2xx answer or failure. The body is capped at
        INTAKE_FETCH_MAX_BYTES, or INTAKE_FETCH_PAGE_MAX_BYTES with `page` (an HTML page, one
        posting's detail), or `max_bytes`."""
        call = _Call(self, url, params, max_bytes, page)
        error: BaseException | None = None
        try:
            content = call.open(read=True)
            assert content is not None and call.record.status_code is not None
            return FetchResponse(call.record.url, call.record.status_code, call.headers, content)
        except BaseException as exc:
            error = exc
            raise
        finally:
            call.finish(error)

    def get_json(
        self,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        max_bytes: int | None = None,
        page: bool = False,
    ) -> Any:
        response = self.get(url, params=params, max_bytes=max_bytes, page=page)
        try:
            return response.json()
        except ValueError as exc:
            raise FetchError(f"{url} did not answer with valid JSON: {exc}", url=url) from exc

    @contextlib.contextmanager
    def stream(
        self, url: str, *, params: dict[str, Any] | None = None, max_bytes: int | None = None
    ) -> Iterator[StreamedResponse]:
        """GET `url` and read its body as it arrives (decompressed, capped at `max_bytes` or
        INTAKE_FETCH_MAX_BYTES, within the deadline). Retried only until the body is handed
        over; reading it raises FetchError on any failure."""
        call = _Call(self, url, params, max_bytes)
        error: BaseException | None = None
        try:
            call.open(read=False)
            assert call.response is not None
            yield StreamedResponse(call.response, call.streamed_chunks())
        except BaseException as exc:
            error = exc
            raise
        finally:
            call.finish(error)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

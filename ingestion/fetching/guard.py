"""The SSRF guard: which URLs and addresses may be fetched, and the network layer that enforces it.

Only http(s), no `user:pass@`, and no address in the networks of `_BLOCKED_NETWORKS`
(loopback, private, link-local, CGNAT, multicast, reserved, documentation, cloud metadata, and
the IPv4 ones embedded in IPv6), unless INTAKE_ALLOW_PRIVATE_NETWORK is on (cloud-metadata
addresses stay refused even then). The host is resolved once, every address it resolves to
must pass, and the socket is opened to one of those vetted addresses (not to the name again),
so DNS rebinding between check and connect is impossible. The fetcher follows redirects itself,
hop by hop, and calls `check_url` on each, so every hop goes through the same guard.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from django.conf import settings

from ingestion.fetching.deadline import DeadlineStream, clamp

ALLOWED_SCHEMES = frozenset({"http", "https"})

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

# A host name as DNS can resolve it (IDNA-encoded; underscores occur in real names), or an IP
# literal; httpx percent-encodes anything else ("exa mple.com" becomes "exa%20mple.com").
_HOST_NAME = re.compile(rb"[A-Za-z0-9_.-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")


class Refused(Exception):
    """An SSRF refusal, raised before any connection is opened (also from inside httpx)."""


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


def check_url(url: httpx.URL) -> None:
    """Refuse what can be refused without DNS: schemes, userinfo, literal addresses."""
    if url.scheme not in ALLOWED_SCHEMES:
        shown = f"{url.scheme}:" if url.scheme else "a URL without a scheme"
        raise Refused(f"Refused to fetch {url}: only http and https are allowed, not {shown}")
    if url.userinfo:
        raise Refused(
            f"Refused to fetch {url.copy_with(username=None, password=None)}: "
            "URLs with a user name or password are not allowed"
        )
    if not url.host:
        raise Refused(f"Refused to fetch {url}: it has no host")
    if not _HOST_NAME.fullmatch(url.raw_host):
        raise Refused(f"Refused to fetch {url}: {url.host!r} is not a valid host name")
    with contextlib.suppress(ValueError):
        _check_address(url.host, ipaddress.ip_address(url.host))


def url_refusal(url: str) -> str:
    """Why the fetcher would refuse `url` before looking its host up ("" when it would not):
    the same check and message, for a URL Intake is given to fetch later (a source when it
    is added). Loopback and private host *names* are only found after DNS, by the fetcher."""
    try:
        check_url(httpx.URL(url))
    except httpx.InvalidURL as exc:
        return f"{url!r} is not a valid URL: {exc}"
    except Refused as exc:
        return str(exc)
    return ""


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
        raise Refused(f"Refused to fetch from {where}: {reason}, not a public one; {why}.")


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
        timeout = clamp(timeout)
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
                return DeadlineStream(_connect_tcp(str(ip), port, clamp(timeout), socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise Refused("Unix sockets are never fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


_ssl_context: ssl.SSLContext | None = None
_ssl_context_lock = threading.Lock()


def ssl_context() -> ssl.SSLContext:
    """The TLS settings of every fetch (httpx's defaults: certifi's CAs, certificates and
    host names verified), made once per process: loading the CA bundle is most of what a
    new Fetcher costs, and each chunk of a run makes one in its own work horse (the worker
    makes this before it forks them: ingestion.tasks.warm_up). A context is shared safely
    between clients, threads and connections; nothing in it changes once made."""
    global _ssl_context
    with _ssl_context_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context(trust_env=False)
        return _ssl_context


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the guarded network layer under its connection pool."""

    def __init__(self) -> None:
        super().__init__(verify=ssl_context(), trust_env=False)
        # httpx.HTTPTransport has no way to pass a network backend to its httpcore pool, so
        # the pool is replaced by one that has ours (same settings as httpx's defaults).
        # No proxy support on purpose: through a proxy the guard would vet the proxy only.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(),
        )

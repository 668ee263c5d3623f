"""The total deadline of a fetch (INTAKE_FETCH_DEADLINE): tries, back-off sleeps and the whole
body read, including a stream() the caller consumes slowly. A server that trickles a byte a
second still ends.

The deadline of the call in progress is kept per thread, and every socket operation's timeout
is clamped to what is left of it (`DeadlineStream`). Body reads of a stream() happen on the
caller's thread, so the fetcher sets the deadline around each of those reads as well.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpcore

_local = threading.local()


class DeadlinePassed(Exception):
    """The call's deadline passed during a socket operation (or before it began)."""


@contextlib.contextmanager
def deadline_scope(deadline: float) -> Iterator[None]:
    """Socket operations on this thread keep to `deadline` (a time.monotonic() value)."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


def clamp(timeout: float | None) -> float | None:
    """`timeout`, shortened to what is left of this thread's deadline; DeadlinePassed when
    nothing is left."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write keeps to the thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, clamp(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

"""What a fetch hands back: a body read whole, a body read as it arrives, or a FetchError."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ingestion import safejson
from ingestion.fetching.decoding import READ_BLOCK, charset


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
        return self.content.decode(charset(self.content_type), errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not, or nests deeper than
        safejson.MAX_DEPTH."""
        return safejson.loads(self.content)


class StreamedResponse:
    """A response whose body is read as it arrives (a board's listing is never held whole).

    The body comes decompressed; reading it raises FetchError when it crosses the size cap,
    passes the deadline or the connection breaks."""

    def __init__(self, response: httpx.Response, blocks: Iterator[bytes] | None = None) -> None:
        self._response = response
        self._blocks = blocks if blocks is not None else response.iter_bytes()
        self.url = str(response.url)
        self.status_code = response.status_code
        self.headers = response.headers

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def iter_bytes(self, block_size: int = READ_BLOCK) -> Iterator[bytes]:
        """The body in pieces of `block_size` bytes (the last one shorter)."""
        buffer = bytearray()
        for block in self._blocks:
            buffer += block
            while len(buffer) >= block_size:
                yield bytes(buffer[:block_size])
                del buffer[:block_size]
        if buffer:
            yield bytes(buffer)

    def reader(self) -> _IteratorReader:
        """A binary file-like object over the body (for ijson, csv)."""
        return _IteratorReader(self._blocks)


class _IteratorReader:
    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._blocks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

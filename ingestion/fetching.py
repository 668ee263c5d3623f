"""Every outbound HTTP request of Intake goes through here (adapters never call httpx).

MINIMAL FIRST VERSION: the API below is the contract; the hardening (retries with backoff
and Retry-After, total deadline, size cap on decompressed bytes, per-host limit, SSRF guard,
RawPayload storage) is being filled in behind it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings


class FetchError(Exception):
    """A fetch that failed for good; `message` is for the user. `status` is the HTTP status
    when the server answered (404: the board does not exist), None for network errors,
    timeouts, SSRF refusals and oversized bodies."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


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
        return json.loads(self.content)


class StreamedResponse:
    """A response whose body is read as it arrives (a 100 MB board is never held whole)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.url = str(response.url)
        self.status_code = response.status_code
        self.headers = response.headers

    def iter_bytes(self, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        yield from self._response.iter_bytes(chunk_size)

    def reader(self) -> _IteratorReader:
        """A binary file-like object over the body (for ijson, csv)."""
        return _IteratorReader(self.iter_bytes())


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


class Fetcher:
    """One per run (or per command): shares connections, records RawPayloads against
    `run_id`/`source_id`. Safe to use from several threads at once."""

    def __init__(
        self, *, run_id: int | None = None, source_id: int | None = None, store: bool = True
    ) -> None:
        self.run_id = run_id
        self.source_id = source_id
        self.store = store
        self._client = httpx.Client(
            timeout=httpx.Timeout(
                settings.INTAKE_FETCH_READ_TIMEOUT, connect=settings.INTAKE_FETCH_CONNECT_TIMEOUT
            ),
            follow_redirects=True,
            headers={"User-Agent": settings.INTAKE_FETCH_USER_AGENT},
        )

    def for_source(self, source_id: int | None) -> Fetcher:
        """The same client, recording payloads against another source."""
        clone = Fetcher.__new__(Fetcher)
        clone.__dict__.update(self.__dict__)
        clone.source_id = source_id
        return clone

    def get(self, url: str, *, params: dict[str, Any] | None = None) -> FetchResponse:
        """GET `url`; FetchError for any non-2xx answer or failure."""
        try:
            response = self._client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise FetchError(f"Could not fetch {url}: {exc}", url=url) from exc
        if not response.is_success:
            raise FetchError(
                f"{url} answered {response.status_code}", url=url, status=response.status_code
            )
        return FetchResponse(
            str(response.url), response.status_code, response.headers, response.content
        )

    def get_json(self, url: str, *, params: dict[str, Any] | None = None) -> Any:
        response = self.get(url, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise FetchError(f"{url} did not answer with valid JSON: {exc}", url=url) from exc

    @contextlib.contextmanager
    def stream(
        self, url: str, *, params: dict[str, Any] | None = None
    ) -> Iterator[StreamedResponse]:
        """GET `url` and read its body as it arrives."""
        try:
            with self._client.stream("GET", url, params=params) as response:
                if not response.is_success:
                    raise FetchError(
                        f"{url} answered {response.status_code}",
                        url=url,
                        status=response.status_code,
                    )
                yield StreamedResponse(response)
        except httpx.HTTPError as exc:
            raise FetchError(f"Could not fetch {url}: {exc}", url=url) from exc

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

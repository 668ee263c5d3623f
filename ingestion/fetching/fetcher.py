"""The Fetcher: one GET from the first try to the stored record, keeping every guarantee of
the package (ingestion/fetching/__init__.py) on the way.

`_Call` is one call of get() or stream(): it follows redirects itself so that each hop is
vetted (guard), tries again when it may (retry), holds a host slot while a response is open
and counts a body read whole against the memory budget (limits), reads the body decompressed
and capped (decoding) within the call's deadline (deadline), and leaves a RawPayload
(payloads).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from django.conf import settings

from ingestion.fetching.deadline import DeadlinePassed, deadline_scope
from ingestion.fetching.decoding import DecodeError, decoded
from ingestion.fetching.guard import GuardedTransport, Refused, check_url
from ingestion.fetching.limits import host_slot, memory_budget
from ingestion.fetching.payloads import PayloadBuffer, PayloadRecord, store_payload
from ingestion.fetching.responses import FetchError, FetchResponse, StreamedResponse
from ingestion.fetching.retry import backoff, retry_after_seconds, retryable_status

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


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
        if fetcher.ends_at is not None:
            left = fetcher.ends_at - time.monotonic()
            self.deadline_seconds = max(0.0, min(self.deadline_seconds, left))
        self.deadline = time.monotonic() + self.deadline_seconds
        self.record = PayloadRecord(url=url)
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
        if isinstance(exc, DeadlinePassed) or time.monotonic() >= self.deadline:
            return self.deadline_error()
        if isinstance(exc, httpx.TimeoutException):
            what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for data"
            return self.error(f"Could not fetch {self.record.url}: timed out {what}")
        detail = str(exc) or type(exc).__name__
        return self.error(f"Could not fetch {self.record.url}: {detail}")

    # Opening -----------------------------------------------------------------------------

    def _release(self) -> None:
        if self.response is not None:
            with contextlib.suppress(Exception), deadline_scope(time.monotonic() + 1):
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
                raise Refused(f"Refused to fetch {target}: not a valid URL ({exc})") from None
            self.record.url = str(request.url)
            check_url(request.url)
            self._ask_on_request()
            slot = host_slot(request.url.host)
            if not slot.acquire(timeout=max(0.0, self.deadline - time.monotonic())):
                raise DeadlinePassed
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
                raise Refused(f"Refused to follow a redirect to {location!r}: {exc}") from None
        raise self.error(f"{self.url} redirected more than {MAX_REDIRECTS} times")

    def open(self, *, read: bool) -> bytes | None:
        """Try until a 2xx answers, then return its body when `read` (size-capped), else
        leave it open for the caller (self.response). Raises FetchError for good."""
        tries = settings.INTAKE_FETCH_TRIES
        for attempt in range(1, tries + 1):
            self.record.start_attempt()
            try:
                with deadline_scope(self.deadline):
                    response = self._send_following_redirects()
                    if response.is_success:
                        return self.read_all() if read else None
                    self._sample_error_body()
                status = response.status_code
                failure = self.error(f"{self.record.url} answered {status}", status=status)
                if not retryable_status(status) or attempt == tries:
                    raise failure
                wait = self._wait_before_retry(attempt, response, failure)
            except Refused as exc:
                raise self.error(str(exc)) from None
            except DecodeError as exc:
                raise self.error(f"Could not read {self.record.url}: {exc}") from None
            except DeadlinePassed:
                raise self.deadline_error() from None
            except httpx.TransportError as exc:
                failure = self.network_error(exc)
                if attempt == tries or time.monotonic() >= self.deadline:
                    raise failure from exc
                wait = backoff(attempt)
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
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if retry_after is None:
            return backoff(attempt)
        cap = settings.INTAKE_FETCH_MAX_RETRY_AFTER
        if retry_after > cap:
            raise self.error(
                f"{failure}, asking to retry after {retry_after:.0f} s: longer than the "
                f"{cap:g} s we wait (INTAKE_FETCH_MAX_RETRY_AFTER); try again later",
                status=failure.status,
            )
        return max(retry_after, backoff(attempt))

    # Reading -----------------------------------------------------------------------------

    def _sample_error_body(self) -> None:
        """Keep the start of an error answer for the record (no more than that is read)."""
        assert self.response is not None
        with contextlib.suppress(
            httpx.TransportError, httpx.StreamError, DecodeError, DeadlinePassed
        ):
            for block in decoded(self.response):
                self.record.add(block)
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

    def body_blocks(self) -> Iterator[bytes]:
        """The decompressed body, counted against the cap and recorded; raises FetchError."""
        assert self.response is not None
        self._check_declared_size()
        for block in decoded(self.response):
            self.record.add(block)
            if self.record.size > self.max_bytes:
                raise self.error(
                    f"{self.record.url} sent more than the {self.max_bytes} byte cap "
                    f"({self.cap_name}, counted decompressed); stopped reading"
                )
            yield block
        self.record.complete = True

    def read_all(self) -> bytes:
        """The whole body, its bytes held against the process's memory budget meanwhile."""
        body = bytearray()
        try:
            for block in self.body_blocks():
                if not memory_budget.take(len(block)):
                    raise self.error(
                        f"{self.record.url}: stopped reading after {len(body)} bytes: the "
                        "fetches of this process are holding their memory budget "
                        f"({settings.INTAKE_FETCH_MEMORY_BUDGET} bytes, "
                        "INTAKE_FETCH_MEMORY_BUDGET) already"
                    )
                body += block
            return bytes(body)
        finally:
            memory_budget.give(len(body))

    def streamed_blocks(self) -> Iterator[bytes]:
        """body_blocks() for a caller reading at its own pace on its own thread: each read
        keeps to the deadline, and every failure is a FetchError (no retries any more)."""
        blocks = self.body_blocks()
        while True:
            try:
                with deadline_scope(self.deadline):
                    block = next(blocks)
            except StopIteration:
                return
            except DeadlinePassed:
                raise self.deadline_error() from None
            except DecodeError as exc:
                raise self.error(f"Could not read {self.record.url}: {exc}") from None
            except (httpx.TransportError, httpx.StreamError) as exc:
                raise self.network_error(exc) from exc
            yield block

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
        fields = record.fields(run_id=self.fetcher.run_id, source_id=self.fetcher.source_id)
        if self.fetcher.payloads is not None:
            self.fetcher.payloads.add(fields)
        else:
            store_payload(fields)


class Fetcher:
    """One per run (or per command): shares connections, records RawPayloads against
    `run_id`/`source_id` (unless `store` is False). Safe to use from several threads at once.

    `on_request`, when given, is asked before each request attempt (every try and every
    redirect hop): a reason it returns refuses the attempt, and the call fails with a
    FetchError carrying that reason. A run passes its owner's daily request quota
    (`ingestion.quota.take_request_for`).

    Beware holding a stream() open while fetching from the same host on the same thread: with
    INTAKE_FETCH_PER_HOST=1 the second request waits for the first until the deadline.

    `payloads`, when given, collects the records instead of storing each at once; its owner
    flushes it (a chunk does after each batch's fetches)."""

    def __init__(
        self,
        *,
        run_id: int | None = None,
        source_id: int | None = None,
        store: bool = True,
        on_request: Callable[[], str | None] | None = None,
        ends_at: float | None = None,
        payloads: PayloadBuffer | None = None,
    ) -> None:
        # `ends_at` (a time.monotonic() value): no call goes on past it, whatever is left of
        # its own INTAKE_FETCH_DEADLINE; a page waiting on the answer (a connection test)
        # sets it.
        self.ends_at = ends_at
        self.run_id = run_id
        self.source_id = source_id
        self.store = store
        self.on_request = on_request
        self.payloads = payloads
        self._client = httpx.Client(
            transport=GuardedTransport(),
            timeout=httpx.Timeout(
                settings.INTAKE_FETCH_READ_TIMEOUT, connect=settings.INTAKE_FETCH_CONNECT_TIMEOUT
            ),
            follow_redirects=False,  # followed by _Call, so every hop is vetted
            trust_env=False,  # no proxies from the environment: they would bypass the guard
            headers={
                "User-Agent": settings.INTAKE_FETCH_USER_AGENT,
                # Only what decoding inflates in bounded steps (no br/zstd).
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
            yield StreamedResponse(call.response, call.streamed_blocks())
        except BaseException as exc:
            error = exc
            raise
        finally:
            call.finish(error)

    def close(self) -> None:
        self._client.close()
        # A hook holding something back for its requests (the quota's RequestAllowance
        # gives back the requests it reserved and did not send).
        release = getattr(self.on_request, "close", None)
        if callable(release):
            release()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

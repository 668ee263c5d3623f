"""Every outbound HTTP request of Intake goes through here (adapters never call httpx).

What every fetch guarantees, whoever calls it, and the module that keeps the promise:

* SSRF guard (`guard`). Only http(s), no `user:pass@`, no loopback, private, link-local,
  CGNAT, multicast, reserved, documentation or cloud-metadata address, unless
  INTAKE_ALLOW_PRIVATE_NETWORK is on (cloud-metadata addresses stay refused even then); every
  address a host resolves to is vetted, the socket goes to a vetted one, and every redirect
  hop is vetted again.
* Time (`deadline`). Connect and read timeouts per socket operation, and a total deadline
  (INTAKE_FETCH_DEADLINE) per call: tries, back-off sleeps and the whole body read, including
  a stream() the caller consumes slowly.
* Retries (`retry`). INTAKE_FETCH_TRIES tries on network errors, 429 and 5xx, with
  exponential back-off and jitter, honouring Retry-After up to INTAKE_FETCH_MAX_RETRY_AFTER.
  Other 4xx are final. stream() retries only before its body is handed over.
* Size (`decoding`). At most INTAKE_FETCH_MAX_BYTES (a board's listing) or, with `page=True`,
  INTAKE_FETCH_PAGE_MAX_BYTES (an HTML page or one posting's detail), or `max_bytes=`, of
  *decompressed* body: we ask for gzip/deflate only and inflate ourselves in bounded steps,
  so a gzip bomb never gets far.
* Memory and politeness (`limits`). A body read whole (get(), not stream()) counts against
  INTAKE_FETCH_MEMORY_BUDGET, shared by every fetch of the process; a call that would pass it
  stops with FetchError. At most INTAKE_FETCH_PER_HOST requests in flight per host, across
  every Fetcher and thread of the process.
* A record (`payloads`). The outcome of each call (after its tries) is stored as a
  RawPayload, in its own transaction, unless `store=False`; a Fetcher given a PayloadBuffer
  (a chunk's) collects them and stores many in one INSERT. Failing to store them is logged,
  never raised.
* A hook (`Fetcher(on_request=...)`). Asked before each request attempt; a run's Fetcher
  counts its owner's daily request quota there (reserved in blocks; close() calls the hook's
  own close(), if it has one, to give back the unsent).

`fetcher` holds the Fetcher that puts them together; `responses` what it hands back.
"""

from ingestion.fetching.decoding import READ_BLOCK
from ingestion.fetching.fetcher import Fetcher
from ingestion.fetching.guard import url_refusal
from ingestion.fetching.responses import FetchError, FetchResponse, StreamedResponse

__all__ = [
    "READ_BLOCK",
    "FetchError",
    "FetchResponse",
    "Fetcher",
    "StreamedResponse",
    "url_refusal",
]

"""The record each fetch leaves: a RawPayload row with the outcome of the call after its tries
(URL, status, content type, decompressed size, the first INTAKE_PAYLOAD_MAX_BYTES of the body,
tries, duration, error).

It is stored in a transaction of its own, so that it stays when the caller rolls back and a
failed INSERT cannot poison the caller's transaction; failing to store it is logged, never
raised. A Fetcher given a PayloadBuffer keeps its records there instead, and they are stored
together (one INSERT) when the buffer fills or its owner flushes it: a chunk fetching its
detail pages from pool threads would otherwise open a database connection and commit once
per fetch. The expired ones are deleted by ingestion.services.payload_delete_expired.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from ingestion import store
from ingestion.models import RawPayload

logger = logging.getLogger(__name__)

# A PayloadBuffer stores its records once this many wait, or once their samples add up to
# this many bytes (each may hold up to INTAKE_PAYLOAD_MAX_BYTES): few INSERTs, bounded memory.
PAYLOAD_BUFFER_ROWS = 200
PAYLOAD_BUFFER_BYTES = 8 * 1024 * 1024


@dataclass
class PayloadRecord:
    """What one call has seen so far; each try starts it afresh but for its count."""

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

    def add(self, block: bytes) -> None:
        """Count a block of the (decompressed) body, keeping its start as the sample."""
        self.size += len(block)
        room = settings.INTAKE_PAYLOAD_MAX_BYTES - len(self.sample)
        if room > 0:
            self.sample += block[:room]

    def fields(self, *, run_id: int | None, source_id: int | None) -> dict[str, Any]:
        """The RawPayload row's fields."""
        return {
            "run_id": run_id,
            "source_id": source_id,
            "url": self.url[:2000],
            "method": "GET",
            "status_code": self.status_code,
            "content_type": self.content_type,
            "size": self.size,
            "body": bytes(self.sample),
            "truncated": not self.complete or self.size > len(self.sample),
            "attempts": self.attempts,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
            "error": self.error,
        }


def _save_payloads_on_own_connection(rows: list[dict[str, Any]]) -> None:
    # Runs on a thread of its own, hence on a database connection of its own (autocommit).
    try:
        with transaction.atomic():
            # Never wait on the caller's locks (it waits for us): fail and log instead.
            store.limit_lock_wait(2)
            RawPayload.objects.bulk_create([RawPayload(**fields) for fields in rows])
    except Exception:
        logger.exception("Could not store the raw payloads of %s", _urls(rows))
    finally:
        connection.close()


def _urls(rows: list[dict[str, Any]]) -> str:
    first = str(rows[0].get("url")) if rows else ""
    return first if len(rows) == 1 else f"{first} and {len(rows) - 1} more"


def store_payloads(rows: list[dict[str, Any]]) -> None:
    """Store RawPayloads (one INSERT) without touching the caller's transaction semantics;
    failures are logged. Outside a transaction it is a plain autocommit INSERT. Inside one,
    PostgreSQL writes them on another connection (so they stay even if the caller rolls back,
    and a failed INSERT cannot poison the caller's transaction); SQLite cannot (the caller
    holds the only write lock: IMMEDIATE transactions), so there they are written once the
    caller commits."""
    if not rows:
        return
    try:
        if not connection.in_atomic_block:
            RawPayload.objects.bulk_create([RawPayload(**fields) for fields in rows])
        elif not store.concurrent_writers():
            transaction.on_commit(lambda: store_payloads(rows))
        else:
            writer = threading.Thread(
                target=_save_payloads_on_own_connection, args=(rows,), daemon=True
            )
            writer.start()
            writer.join(timeout=10)
    except Exception:
        logger.exception("Could not store the raw payloads of %s", _urls(rows))


class PayloadBuffer:
    """Records of many fetches (from any thread) stored together by store_payloads(): when
    PAYLOAD_BUFFER_ROWS or PAYLOAD_BUFFER_BYTES of them wait, by the thread adding the last
    one, and whatever waits at flush(), which its owner calls when its fetches are over
    (whether they succeeded or not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._bytes = 0

    def add(self, fields: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(fields)
            self._bytes += len(fields.get("body") or b"")
            full = len(self._rows) >= PAYLOAD_BUFFER_ROWS or self._bytes >= PAYLOAD_BUFFER_BYTES
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._rows, self._bytes = self._rows, [], 0
        store_payloads(rows)

    def __len__(self) -> int:
        return len(self._rows)


def store_payload(fields: dict[str, Any]) -> None:
    """Store one RawPayload, as store_payloads() does."""
    store_payloads([fields])

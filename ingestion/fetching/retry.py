"""When to try a fetch again, and how long to wait first.

INTAKE_FETCH_TRIES tries on network errors, 429 and 5xx, with exponential back-off and jitter,
honouring Retry-After up to INTAKE_FETCH_MAX_RETRY_AFTER. Other 4xx are final.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from django.conf import settings


def retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def backoff(attempt: int) -> float:
    """Exponential back-off with jitter: about BACKOFF, 2×, 4× ... (±50 %), so many fetchers
    failing together do not come back together."""
    return settings.INTAKE_FETCH_BACKOFF * 2 ** (attempt - 1) * (0.5 + random.random())


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
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

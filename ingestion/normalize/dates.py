"""Datetimes as boards send them (ISO 8601, RFC 2822, epoch seconds or milliseconds) as
aware UTC datetimes."""

from __future__ import annotations

import email.utils
import math
import re
from datetime import UTC, date, datetime, time
from typing import Any

# Outside these years a date is junk (epoch 0, "9999-12-31" meaning "no end date").
MIN_YEAR = 1990
MAX_YEAR = 2100
_EPOCH_MS_THRESHOLD = 100_000_000_000  # as seconds that is the year 5138: so it is ms
_NUMERIC_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")
_LONG_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


def _sane(value: datetime) -> datetime | None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return value if MIN_YEAR <= value.year <= MAX_YEAR else None


def _from_epoch(number: float) -> datetime | None:
    if math.isnan(number) or math.isinf(number):
        return None
    if abs(number) >= _EPOCH_MS_THRESHOLD:
        number /= 1000
    try:
        return _sane(datetime.fromtimestamp(number, tz=UTC))
    except (OverflowError, OSError, ValueError):
        return None


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from what boards send: ISO 8601 with or without a zone
    (naive means UTC; a date alone is midnight UTC), RFC 2822, epoch seconds or milliseconds
    as a number or a string of digits (Lever's createdAt is epoch ms), a datetime or a date.
    None for anything else, and for years outside MIN_YEAR..MAX_YEAR."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return _sane(value)
    if isinstance(value, date):
        return _sane(datetime.combine(value, time.min))
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if _NUMERIC_RE.match(text):
        return _from_epoch(float(text))
    iso = _LONG_FRACTION_RE.sub(r"\1", text)
    if iso[-1:] in "zZ":
        iso = iso[:-1] + "+00:00"
    try:
        return _sane(datetime.fromisoformat(iso))
    except ValueError:
        pass
    try:
        return _sane(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        return None

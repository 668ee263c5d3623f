"""The content hash: whether a posting changed since it was stored."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from hashlib import blake2b

from ingestion.adapters.base import Posting


def _canonical(value: object) -> str:
    # Values that compare equal hash equal whichever way they arrived: Decimal("1.50") and
    # Decimal("1.5"); a datetime in any zone (naive is UTC, as parse_datetime reads it).
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    return str(value)


_HASHED_FIELDS = (
    "title",
    "url",
    "location",
    "remote",
    "workplace_type",
    "employment_type",
    "department",
    "description_html",
    "requirements_html",
    "posted_at",
    "valid_through",
    "salary_min",
    "salary_max",
    "salary_currency",
    "salary_period",
    "salary_text",
)


def content_hash(posting: Posting) -> str:
    """32 hex characters (blake2b, 16 bytes) over a posting's content fields as the source
    gave them. Equal postings hash equal; any edit to a content field changes the hash. Each
    field is length-prefixed, so no shift of text between fields can collide."""
    parts = []
    for field in _HASHED_FIELDS:
        value = getattr(posting, field)
        # Most fields are plain strings: skip the conversions (a hot path of every listing).
        text = value if type(value) is str else _canonical(value)
        parts.append(f"{len(text)}:{text}")
    return blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

"""The content hash: whether a posting changed since it was stored; and the raw hash: whether
the record it was read from changed, told before reading it."""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import blake2b, sha256
from pathlib import Path
from typing import Any

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
_hashed_values = operator.attrgetter(*_HASHED_FIELDS)


def content_hash(posting: Posting) -> str:
    """32 hex characters (blake2b, 16 bytes) over a posting's content fields as the source
    gave them. Equal postings hash equal; any edit to a content field changes the hash. Each
    field is length-prefixed, so no shift of text between fields can collide."""
    parts = []
    # Most fields are plain strings, the rest mostly None: both skip _canonical (a hot path
    # of every listing), the fields read in one call.
    for value in _hashed_values(posting):
        text = value if type(value) is str else "\x00" if value is None else _canonical(value)
        parts.append(f"{len(text)}:{text}")
    return blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# Bump when what a raw record reads as changes in a way the code digest below cannot see
# (a library the reading relies on, a setting's meaning): every stored raw hash then differs
# and each row is read again once.
RAW_HASH_VERSION = 1
# The modules that turn a raw record into a Posting and its content hash: an edit of any of
# them (a fix to a date parser, a new alias of a column) changes every raw hash, so no row is
# kept "unchanged" by a reading the code no longer does.
_READING_MODULES = (
    "adapters/base.py",
    "adapters/file_rows.py",
    "adapters/files.py",
    "adapters/files_scan.py",
    "adapters/readers.py",
    "normalize/hashing.py",
    "htmlbounds.py",
    "textclean.py",
)


@functools.cache
def _reading_code_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    digest = blake2b(digest_size=16)
    for name in _READING_MODULES:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def raw_hasher(salt: Any) -> Callable[[str], str]:
    """A function from a raw record's text (fixed by its content: a CSV row's header and its
    text as read, or its cells, length-prefixed, when the csv module read it; the repr of a
    JSON or JSONL row as a dict) to 32 hex characters (SHA-256, its first 16 bytes: it hashes
    every byte of a file a re-run reads, and is faster than blake2b), salted with the reading
    code (RAW_HASH_VERSION and a digest of the modules that read records) and `salt` (JSON:
    whatever else a record's reading depends on, its source's company and options, the
    run's filters). Equal hashes: the record reads as the same posting, with the same
    verdict."""
    seed = sha256()
    seed.update(
        json.dumps(
            [RAW_HASH_VERSION, _reading_code_digest(), salt], sort_keys=True, default=str
        ).encode("utf-8", "surrogatepass")
    )

    def raw_hash(text: str) -> str:
        digest = seed.copy()
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:32]

    return raw_hash

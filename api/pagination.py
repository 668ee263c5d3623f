"""Cursor pagination for list endpoints: an opaque `cursor` (URL-safe base64 of a small JSON
object, the keyset of the last row sent) and `limit`. A keyset read costs one index range
whatever page it is, and a row inserted meanwhile neither repeats nor skips a row.

    page = Page.read(rows_after_cursor[: limit + 1], limit, key=lambda run: {"id": run.pk})
    return {"items": [...page.rows], "nextCursor": page.next_cursor}
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import Model, QuerySet

from api.problems import Problem

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 500


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, fields: dict[str, type]) -> dict[str, Any] | None:
    """The keyset a cursor holds, every field of `fields` present with its type; a 400
    problem for anything else (a cursor is only ever one this API handed out)."""
    if not cursor:
        return None
    bad = Problem(
        400,
        "The cursor is not one this API handed out; start again without it.",
        kind="bad-cursor",
        errors=[{"in": "query", "pointer": "#/cursor", "detail": "Unknown cursor."}],
    )
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise bad from None
    if not isinstance(key, dict) or set(key) != set(fields):
        raise bad
    for name, kind in fields.items():
        value = key[name]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad
        if kind is not int and not isinstance(value, kind):
            raise bad
    return key


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    next_cursor: str | None

    @classmethod
    def read(
        cls, fetched: Sequence[T], limit: int, *, key: Callable[[T], dict[str, Any]]
    ) -> Page[T]:
        """A page from `limit + 1` rows read in order: the extra one only says there is
        more, and the cursor then points after the last row kept."""
        rows = list(fetched[:limit])
        more = len(fetched) > limit
        return cls(rows=rows, next_cursor=encode_cursor(key(rows[-1])) if more and rows else None)


M = TypeVar("M", bound=Model)


def id_page(rows: QuerySet[M], cursor: str | None, limit: int) -> Page[M]:
    """A page of `rows` in id order after the `cursor` ({"id"}) a previous page handed out."""
    after = decode_cursor(cursor, fields={"id": int})
    if after:
        rows = rows.filter(id__gt=after["id"])
    fetched = list(rows.order_by("id")[: limit + 1])
    return Page.read(fetched, limit, key=lambda row: {"id": row.pk})

"""JSON from untrusted sources (uploads, board responses, JSON-LD blocks), parsed with a bound on
its nesting depth.

Unbounded nesting is the one thing a small JSON document can use to take a process down:
`json.loads` recurses once per level (a RecursionError past ~1,000 levels, a crash in C code
that has none), and ijson's `items()` builds a prefix string per level, keeping every level's,
so its memory grows with the square of the depth (a 200 KB document of "[" wants tens of GB).

* `loads(text)` measures the depth first and refuses a document deeper than MAX_DEPTH with
  JsonTooDeep (a ValueError): for what is already in memory (a JSONL line, a JSON-LD block,
  a board's page).
* `items(stream, prefix)` streams the elements of an array like `ijson.items`, with the bytes
  measured as they are read, before ijson sees them. An element nested deeper than MAX_DEPTH
  comes out as an error for that element (the rest go on); a document deeper than
  STREAM_MAX_DEPTH stops with JsonTooDeep, so what ijson builds stays small.

The depth is measured on the raw bytes at C speed (escapes dropped, strings split off with
bytes.split, brackets counted with translate and accumulate): no Python work per byte or per
JSON token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import IO, Any

import ijson

# Levels of arrays and objects a value may have: far beyond any posting, board answer or
# JSON-LD graph, and shallow enough that nothing which walks a value recursively needs care.
MAX_DEPTH = 64
# A streamed document is read on to this depth so that one element nested too deep is refused
# alone; deeper than this, the document. (ijson's prefixes up to it take well under 1 MB.)
STREAM_MAX_DEPTH = 512
# The longest string of a streamed document, in bytes as sent: what ijson holds of one value.
STREAM_STRING_MAX = 16 * 1024 * 1024

_ESCAPE = re.compile(rb"\\.", re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


class JsonTooDeep(ValueError):
    """A JSON document (or value) nests arrays and objects deeper than the limit."""

    def __init__(self, limit: int = MAX_DEPTH) -> None:
        super().__init__(f"nested deeper than {limit} levels")
        self.limit = limit
        # What the document "is", for a message about a whole file or answer.
        self.problem = f"is {self}"


class JsonTooLong(ValueError):
    """A streamed JSON document has a string longer than the limit (in bytes, as sent)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a value longer than {limit:,} bytes")
        self.limit = limit
        self.problem = f"has {self}"


class _DepthScanner:
    """The nesting depth of JSON text fed in pieces of any size: brackets outside strings
    count, escapes and string contents do not. The state between pieces is the depth, whether
    a string is open and whether a backslash waits for the character it escapes.

    Text that is not JSON gets some depth, never a wrong one for the part a parser would
    accept before its first error."""

    def __init__(self, string_limit: int | None = None) -> None:
        self.depth = 0
        # Whether a string longer than `string_limit` bytes was seen (escapes counted as one
        # byte each), and the length of the one open at the end of the last piece.
        self.string_limit = string_limit
        self.string_too_long = False
        self._open = 0
        self._in_string = False
        self._escape = False

    def feed(self, data: bytes) -> int:
        """Take the next piece; returns the deepest level reached in it (at least the level
        it started at)."""
        if self._escape and data:
            data = b"_" + data[1:]  # the character escaped by the last piece's backslash
            self._escape = False
        if b"\\" in data:
            # Backslashes come in pairs from a piece's start (a string's escapes); an odd run
            # at the end escapes the next piece's first character.
            run = len(data) - len(data.rstrip(b"\\"))
            if run % 2:
                data = data[:-1]
                self._escape = True
            data = _ESCAPE.sub(b"_", data)
        was_in_string = self._in_string
        if (limit := self.string_limit) is not None and self._open + len(data) > limit:
            # Only then can a string have grown past the limit: measure them.
            pieces = data.split(b'"')
            if was_in_string:
                first, inside = self._open + len(pieces[0]), pieces[2::2]
            else:
                first, inside = 0, pieces[1::2]
            if max(first, max(map(len, inside), default=0)) > limit:
                self.string_too_long = True
            outside = b"".join(pieces[1::2] if was_in_string else pieces[0::2])
            brackets = outside.translate(None, _NOT_BRACKET)
        else:
            # The quotes and brackets alone, split at the quotes: the same pieces' brackets,
            # without a copy of every string and gap between them.
            pieces = data.translate(None, _NOT_STRUCTURE).split(b'"')
            brackets = b"".join(pieces[1::2] if was_in_string else pieces[0::2])
        if len(pieces) % 2 == 0:
            self._in_string = not was_in_string
        if not self._in_string:
            self._open = 0
        elif len(pieces) == 1:
            self._open += len(data)
        else:
            self._open = len(data) - 1 - data.rfind(b'"')
        if not brackets:
            return self.depth
        deepest = max(accumulate(map(_STEP.__getitem__, brackets), initial=self.depth))
        opened = brackets.count(b"[") + brackets.count(b"{")
        self.depth += 2 * opened - len(brackets)
        return deepest


def depth_exceeds(text: str | bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON `text` nests deeper than `limit` levels."""
    # No more brackets than the limit (the common case) needs no scan.
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= limit:
            return False
        text = text.encode("utf-8", "surrogatepass")
    elif text.count(b"[") + text.count(b"{") <= limit:
        return False
    return _DepthScanner().feed(text) > limit


def loads(text: str | bytes, *, limit: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """json.loads(text, **kwargs) for a document nested at most `limit` levels deep;
    JsonTooDeep (a ValueError, like json's own errors) for a deeper one."""
    if depth_exceeds(text, limit):
        raise JsonTooDeep(limit)
    return json.loads(text, **kwargs)


def value_depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed value nests deeper than `limit` levels (without recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class DepthGuard:
    """A binary reader that measures the JSON that passes through it: JsonTooDeep from
    read() once the document goes deeper than `hard_limit`, JsonTooLong once a string is
    longer than `string_limit` bytes; `last_deep_read` is the number of the last read
    (counting from 1) that went deeper than `soft_limit`. NUL bytes are dropped: never valid
    JSON, they would stop the parser for a whole file."""

    def __init__(
        self, reader: IO[bytes] | Any, *, soft_limit: int, hard_limit: int, string_limit: int
    ) -> None:
        self._reader = reader
        self._scanner = _DepthScanner(string_limit)
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit
        self.string_limit = string_limit
        self.reads = 0
        self.last_deep_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size)
        if b"\x00" in data:
            data = data.replace(b"\x00", b"")
        self.reads += 1
        deepest = self._scanner.feed(data)
        if deepest > self.hard_limit:
            raise JsonTooDeep(self.hard_limit)
        if self._scanner.string_too_long:
            raise JsonTooLong(self.string_limit)
        if deepest > self.soft_limit:
            self.last_deep_read = self.reads
        return data


def items(
    stream: IO[bytes] | Any,
    prefix: str,
    *,
    limit: int = MAX_DEPTH,
    string_limit: int | None = None,
) -> Iterator[tuple[Any, str]]:
    """(element, "") for each element of the array at `prefix` (ijson's notation: "item",
    "jobs.item"), parsed as the bytes arrive; (None, why) for an element nested deeper than
    `limit` levels. From the iteration: JsonTooDeep when the document nests deeper than
    STREAM_MAX_DEPTH, JsonTooLong for a string longer than `string_limit` bytes
    (STREAM_STRING_MAX by default; ijson would hold it whole, twice), ijson's errors for
    broken JSON."""
    # Levels above an element: the top-level array for "item", the object and its array for
    # "jobs.item".
    above = prefix.count(".") + 1
    guard = DepthGuard(
        stream,
        soft_limit=limit + above,
        hard_limit=max(STREAM_MAX_DEPTH, limit),
        string_limit=STREAM_STRING_MAX if string_limit is None else string_limit,
    )
    # ijson hands out the elements completed by each read before it reads again, so an element
    # can only be deep if a deep read happened since the one that completed the element before
    # it: only those elements are measured.
    completed_at = 0
    for element in ijson.items(guard, prefix):
        if guard.last_deep_read >= max(completed_at, 1) and value_depth_exceeds(element, limit):
            yield None, JsonTooDeep(limit).args[0]
        else:
            yield element, ""
        completed_at = guard.reads

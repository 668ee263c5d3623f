"""Reading a body: gzip/deflate inflated in bounded steps, and the charset of a text body.

The fetcher asks for gzip and deflate only and inflates them here, never more than a read
block at a time, so the size cap is checked on decompressed bytes before a gzip bomb gets far.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import httpx

# The most a body piece holds once inflated (the read block), so the size cap is checked
# often enough.
READ_BLOCK = 64 * 1024


class DecodeError(Exception):
    """The body could not be decompressed."""


def _inflate(blocks: Iterator[bytes], *, gzip: bool) -> Iterator[bytes]:
    """Inflate in steps of at most READ_BLOCK output bytes (zlib's max_length), so a small
    compressed block never becomes a huge one in memory before the cap is checked."""
    decompressor: Any = None
    for data in blocks:
        while data:
            if decompressor is None:
                if gzip:
                    wbits = 16 + zlib.MAX_WBITS
                else:  # "deflate" is zlib-wrapped by the RFC, raw by some servers
                    zlib_header = (
                        len(data) > 1
                        and data[0] & 0x0F == 8
                        and int.from_bytes(data[:2], "big") % 31 == 0
                    )
                    wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
                decompressor = zlib.decompressobj(wbits)
            try:
                out = decompressor.decompress(data, READ_BLOCK)
            except zlib.error as exc:
                raise DecodeError(
                    f"the {'gzip' if gzip else 'deflate'} body is corrupt: {exc}"
                ) from exc
            if out:
                yield out
            if decompressor.eof:
                # Another gzip member may follow; anything after a deflate stream is junk.
                data = decompressor.unused_data if gzip else b""
                decompressor = None
            elif decompressor.unconsumed_tail:
                data = decompressor.unconsumed_tail
            elif len(out) == READ_BLOCK:
                data = b""
                # Output may be pending with no input left: drain it.
                while True:
                    out = decompressor.decompress(b"", READ_BLOCK)
                    if out:
                        yield out
                    if len(out) < READ_BLOCK:
                        break
            else:
                data = b""
    if decompressor is not None and not decompressor.eof:
        tail = decompressor.flush()
        if tail:
            yield tail


def decoded(response: httpx.Response) -> Iterator[bytes]:
    """The response's body, decompressed, in blocks of at most READ_BLOCK bytes; DecodeError
    when it is corrupt."""
    blocks: Iterator[bytes] = response.iter_raw(READ_BLOCK)
    encodings = [
        value.strip().lower()
        for value in response.headers.get("content-encoding", "").split(",")
        if value.strip()
    ]
    # Applied in the reverse of the order listed. We only ask for gzip and deflate; anything
    # else is passed through as httpx would.
    for encoding in reversed(encodings):
        if encoding in ("gzip", "x-gzip"):
            blocks = _inflate(blocks, gzip=True)
        elif encoding == "deflate":
            blocks = _inflate(blocks, gzip=False)
    return blocks


def charset(content_type: str) -> str:
    """The charset a Content-Type names, else utf-8."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"

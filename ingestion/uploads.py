"""The bytes of uploaded files (sources that read a file: postings, posting URLs).

A file lives in the database as upload parts (UploadPart rows) of at most 1 MiB, so a worker
on another machine reads the same bytes, and a 100 MB file is streamed both ways, never held
whole: `upload_store` writes it part by part, `upload_open` reads it back one part at a time.
This module reads no rows: what a file's rows mean is its adapter's (ingestion.adapters
checks an upload, and gives upload_store the check of a stored file).

Formats: csv | json | jsonl. The format comes from the file name (.csv, .json, .jsonl,
.ndjson) or, for .txt and names without an extension, from the contents.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ingestion import safejson, store
from ingestion.models import Source, UploadPart
from ingestion.upload_limits import too_big_message

PART_BYTES = 1024 * 1024
FORMATS = ("csv", "json", "jsonl")
BOM = b"\xef\xbb\xbf"

_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Extensions whose contents decide the format.
_SNIFFED_EXTENSIONS = {"", ".txt"}


class UploadError(ValueError):
    """The file cannot be stored or read; the message says why, for the user."""


def upload_format(name: str, head: bytes = b"", fmt: str | None = None) -> str:
    """The format of a file called `name` starting with `head` (its first bytes): csv, json or
    jsonl. UploadError for anything else (a spreadsheet, a PDF, binary data)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UploadError(f"Unknown file format {fmt!r}: use csv, json or jsonl.")
        detected = fmt
    else:
        dot = name.rfind(".")
        extension = name[dot:].lower() if dot > 0 else ""
        if extension in _EXTENSIONS:
            detected = _EXTENSIONS[extension]
        elif extension in _SNIFFED_EXTENSIONS:
            detected = _sniff(head)
        else:
            raise UploadError(
                f"{name!r} is not a CSV, JSON or JSONL file. Save a spreadsheet as "
                "'CSV UTF-8' and upload that."
            )
    binary = _binary_kind(head)
    if binary:
        raise UploadError(f"{name!r} is not a CSV, JSON or JSONL text file: it is {binary}.")
    return detected


# Formats people upload by mistake, by their first bytes (whatever the file is called).
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx or .docx file is one); save it as 'CSV UTF-8'"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an Office document (.xls, .doc); save it as 'CSV UTF-8'",
    ),
    (b"\x1f\x8b", "compressed (gzip); upload it uncompressed"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text; save it as UTF-8"),
)


def _binary_kind(head: bytes) -> str:
    """What a file that is not text is, judged by its first bytes ("" for text). A few stray
    NULs in a text file are not enough (its rows drop them); many are."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    nuls = head.count(b"\x00")
    if nuls >= 8 and nuls * 20 > len(head):
        one_side = b"\x00" not in head[0::2] or b"\x00" not in head[1::2]
        if one_side and nuls * 3 > len(head):  # ASCII as UTF-16: every other byte
            return "UTF-16 text; save it as UTF-8"
        return "binary data"
    return ""


def _sniff(head: bytes) -> str:
    text = head.removeprefix(BOM).lstrip()
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        first_line, _, rest = text.partition(b"\n")
        try:
            first = safejson.loads(first_line)
        except ValueError:
            return "json"  # an object spread over several lines
        if isinstance(first, dict) and "jobs" in first:
            return "json"
        return "jsonl" if rest.strip() else "json"
    return "csv"


def _read_full(fileobj: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes: raw streams may return less than asked before the end."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        data = fileobj.read(wanted)
        if not data:
            break
        if not isinstance(data, bytes | bytearray | memoryview):
            raise UploadError("The file must be opened in binary mode.")
        parts.append(bytes(data))
        wanted -= len(data)
    return b"".join(parts)


def _too_big(name: str) -> UploadError:
    return UploadError(too_big_message(name))


# What upload_store asks of a stored file before the transaction commits: it reads the file
# (as upload_open would) in format `fmt` and raises UploadError to refuse it.
StoredCheck = Callable[[BinaryIO, str], None]


def upload_store(
    *,
    source: Source,
    name: str,
    fileobj: IO[bytes],
    fmt: str | None = None,
    check: StoredCheck | None = None,
) -> None:
    """Store `fileobj` as the upload of `source`, replacing any previous one atomically (a
    reader sees the old file or the new one, never a mix), and set source.upload_name,
    upload_format and upload_size. Refuses, with UploadError and nothing changed: a format
    other than csv/json/jsonl, an empty file, a file over INTAKE_UPLOAD_MAX_BYTES, and a file
    `check` refuses (ingestion.adapters.upload_store passes the source's adapter's)."""
    # Browsers on Windows may send a path ("C:\\fakepath\\jobs.csv").
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
    limit = settings.INTAKE_UPLOAD_MAX_BYTES
    declared = getattr(fileobj, "size", None)  # Django's UploadedFile knows it up front
    if isinstance(declared, int) and declared > limit:
        raise _too_big(name)
    data = _read_full(fileobj, PART_BYTES)
    if not data:
        raise UploadError(f"{name!r} is empty.")
    detected = upload_format(name, data, fmt)

    with transaction.atomic():
        UploadPart.objects.filter(source=source).delete()
        size = seq = 0
        while data:
            size += len(data)
            if size > limit:
                raise _too_big(name)  # rolls the parts written so far back
            UploadPart.objects.create(source=source, seq=seq, data=data)
            seq += 1
            data = _read_full(fileobj, PART_BYTES)
        if check is not None:
            check(_open_parts(source.pk), detected)  # UploadError rolls the parts back
        Source.objects.filter(pk=source.pk).update(
            upload_name=name[:255], upload_format=detected, upload_size=size,
            updated_at=timezone.now(),
        )  # fmt: skip
    source.upload_name, source.upload_format, source.upload_size = name[:255], detected, size


class _PartReader(io.RawIOBase):
    """The parts of one upload, fetched one at a time in seq order. The part ids are read
    when the file is opened, so a replacement upload (new rows, new ids) stored meanwhile is
    noticed instead of mixed in."""

    def __init__(self, part_ids: list[int]) -> None:
        super().__init__()
        self._part_ids = part_ids
        self._next = 0
        self._data = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._data:
            if self._next >= len(self._part_ids):
                return 0
            part_id = self._part_ids[self._next]
            self._next += 1
            rows = _part_data(part_id)
            if not rows:
                raise UploadError("The uploaded file was replaced while it was being read.")
            self._data = memoryview(bytes(rows[0][0]))
        count = min(len(buffer), len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


_PART_DATA = f"SELECT data FROM {UploadPart._meta.db_table} WHERE id = %s"


def _part_data(part_id: int) -> list[tuple[Any, ...]]:
    """The part's data, as a list of one row (none: the part is gone). The store reads it
    in binary on PostgreSQL: as text a part's 1 MB travels as 2 MB of hex, encoded by the
    server and decoded here (docs/performance.md)."""
    return store.fetch_all(_PART_DATA, [part_id])


def _open_parts(source_id: int) -> BinaryIO:
    part_ids = list(
        UploadPart.objects.filter(source_id=source_id).order_by("seq").values_list("pk", flat=True)
    )
    return io.BufferedReader(_PartReader(part_ids), buffer_size=64 * 1024)


def upload_identity(source: Source) -> str | None:
    """A name for the source's stored upload that a replacement changes (its parts are new
    rows): what is learned from a file can be kept until the file is replaced. None when it
    has none."""
    first = (
        UploadPart.objects.filter(source=source)
        .order_by("seq")
        .values_list("pk", flat=True)
        .first()
    )
    return None if first is None else f"{first}:{source.upload_size}"


def upload_open(source: Source) -> BinaryIO:
    """The source's uploaded file as a binary file-like object (read(n), readline, iteration
    by lines), fetching its parts lazily. UploadError when the source has none."""
    if not source.upload_format or not UploadPart.objects.filter(source=source).exists():
        raise UploadError(f"{source} has no uploaded file.")
    return _open_parts(source.pk)


def capped(stream: IO[bytes]) -> BinaryIO:
    """`stream` as a buffered reader of at most INTAKE_UPLOAD_MAX_BYTES: reading past them
    raises UploadError (what storing the file would say), so a check reads no further."""
    return io.BufferedReader(_Capped(stream, settings.INTAKE_UPLOAD_MAX_BYTES))


class _Capped(io.RawIOBase):
    """The first `limit` bytes of a binary stream; UploadError on reading past them."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__()
        self._stream = stream
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise UploadError(too_big_message())
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

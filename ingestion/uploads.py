"""Uploaded files of sources of kind `file` (postings) and `urls` (posting URLs).

A file lives in the database as UploadChunk rows of at most 1 MiB, so a worker on another
machine reads the same bytes, and a 100 MB file is streamed both ways, never held whole:
`upload_store` writes it chunk by chunk, `upload_open` reads it back one chunk at a time.
`upload_check` validates a file before it is saved (the Configure page shows its per-row
errors); it runs the same row parsing as the adapters, so what it reports is what a run sees.

Formats: csv | json | jsonl. The format comes from the file name (.csv, .json, .jsonl,
.ndjson) or, for .txt and names without an extension, from the contents.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ingestion import safejson
from ingestion.models import Source, SourceKind, UploadChunk
from ingestion.upload_limits import too_big_message

if TYPE_CHECKING:
    from collections.abc import Iterable

CHUNK_BYTES = 1024 * 1024
FORMATS = ("csv", "json", "jsonl")
# The longest row read (a CSV record's line, in characters; a JSONL line, in bytes): a longer
# one is a row error, read past without being held. Far beyond a posting at
# INTAKE_DESCRIPTION_MAX_CHARS, so such a field is read and refused by name; short enough that
# the copies parsing a CSV line makes (line, the csv module's buffer, the cell: four bytes a
# character at worst) stay within a few hundred MB.
ROW_MAX = 12 * 1024 * 1024
# How many row errors a report keeps (the counts cover every row).
REPORT_MAX_ERRORS = 100

_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Extensions whose contents decide the format.
_SNIFFED_EXTENSIONS = {"", ".txt"}
_BOM = b"\xef\xbb\xbf"


class UploadError(ValueError):
    """The file cannot be stored or read; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one row: `row` is the 1-based data row (header excluded) of a CSV or
    JSON array, the line number of a JSONL file; `field` is "" when the row as a whole is
    unreadable (not valid JSON, not an object)."""

    row: int
    field: str
    message: str
    label: str = "row"  # "line" for JSONL

    def __str__(self) -> str:
        return f"{self.label} {self.row}: {self.message}"


@dataclass(slots=True)
class UploadReport:
    """What a run would make of a file: counts of good and bad rows, the first
    REPORT_MAX_ERRORS row errors, and `error` when the file as a whole is unusable (a missing
    required column, too many URLs, broken JSON) — then the counts cover the rows read
    before it."""

    fmt: str
    good: int = 0
    bad: int = 0
    errors: list[RowError] = field(default_factory=list)
    error: str = ""

    @property
    def total(self) -> int:
        return self.good + self.bad

    @property
    def ok(self) -> bool:
        return not self.error

    def add(self, errors: Iterable[RowError]) -> None:
        errors = list(errors)
        if errors:
            self.bad += 1
            room = REPORT_MAX_ERRORS - len(self.errors)
            if room > 0:
                self.errors.extend(errors[:room])
        else:
            self.good += 1


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
    text = head.removeprefix(_BOM).lstrip()
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


def upload_store(*, source: Source, name: str, fileobj: IO[bytes], fmt: str | None = None) -> None:
    """Store `fileobj` as the upload of `source`, replacing any previous one atomically (a
    reader sees the old file or the new one, never a mix), and set source.upload_name,
    upload_format and upload_size. Refuses, with UploadError and nothing changed: a format
    other than csv/json/jsonl, an empty file, a file over INTAKE_UPLOAD_MAX_BYTES and, for a
    URL list, more than INTAKE_URL_LIST_MAX URLs."""
    # Browsers on Windows may send a path ("C:\\fakepath\\jobs.csv").
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
    limit = settings.INTAKE_UPLOAD_MAX_BYTES
    declared = getattr(fileobj, "size", None)  # Django's UploadedFile knows it up front
    if isinstance(declared, int) and declared > limit:
        raise _too_big(name)
    data = _read_full(fileobj, CHUNK_BYTES)
    if not data:
        raise UploadError(f"{name!r} is empty.")
    detected = upload_format(name, data, fmt)

    with transaction.atomic():
        UploadChunk.objects.filter(source=source).delete()
        size = seq = 0
        while data:
            size += len(data)
            if size > limit:
                raise _too_big(name)  # rolls the chunks written so far back
            UploadChunk.objects.create(source=source, seq=seq, data=data)
            seq += 1
            data = _read_full(fileobj, CHUNK_BYTES)
        if source.kind == SourceKind.URLS:
            from ingestion.adapters.base import SourceFailed
            from ingestion.adapters.urllist import url_list_rows

            try:
                # Counts the URLs (reads at most INTAKE_URL_LIST_MAX + 1 rows).
                for _ in url_list_rows(_open_chunks(source.pk), detected):
                    pass
            except SourceFailed as exc:
                raise UploadError(str(exc)) from exc
        Source.objects.filter(pk=source.pk).update(
            upload_name=name[:255], upload_format=detected, upload_size=size,
            updated_at=timezone.now(),
        )  # fmt: skip
    source.upload_name, source.upload_format, source.upload_size = name[:255], detected, size


class _ChunkReader(io.RawIOBase):
    """The chunks of one upload, fetched one at a time in seq order. The chunk ids are read
    when the file is opened, so a replacement upload (new rows, new ids) stored meanwhile is
    noticed instead of mixed in."""

    def __init__(self, chunk_ids: list[int]) -> None:
        super().__init__()
        self._chunk_ids = chunk_ids
        self._next = 0
        self._data = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._data:
            if self._next >= len(self._chunk_ids):
                return 0
            chunk_id = self._chunk_ids[self._next]
            self._next += 1
            rows = _chunk_data(chunk_id)
            if not rows:
                raise UploadError("The uploaded file was replaced while it was being read.")
            self._data = memoryview(bytes(rows[0][0]))
        count = min(len(buffer), len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


def _chunk_data(chunk_id: int) -> list[tuple[Any, ...]]:
    # store.fetch_all reads it in binary on PostgreSQL: as text a chunk's 1 MB travels as 2 MB
    # of hex, encoded by the server and decoded here (a 56 MB upload: ~0.2 s of CPU of each).
    from ingestion import store

    return store.fetch_all(
        f"SELECT data FROM {UploadChunk._meta.db_table} WHERE id = %s", [chunk_id]
    )


def _open_chunks(source_id: int) -> BinaryIO:
    chunk_ids = list(
        UploadChunk.objects.filter(source_id=source_id).order_by("seq").values_list("pk", flat=True)
    )
    return io.BufferedReader(_ChunkReader(chunk_ids), buffer_size=64 * 1024)


def upload_open(source: Source) -> BinaryIO:
    """The source's uploaded file as a binary file-like object (read(n), readline, iteration
    by lines), fetching its chunks lazily. UploadError when the source has none."""
    if not source.upload_format or not UploadChunk.objects.filter(source=source).exists():
        raise UploadError(f"{source} has no uploaded file.")
    return _open_chunks(source.pk)


def upload_check(fileobj: IO[bytes], *, kind: str, fmt: str) -> UploadReport:
    """Validate a file before it is stored: parse every row as a run would (no network) and
    report the counts and the first row errors. `kind` is "file" (postings) or "urls". The
    caller rewinds `fileobj` before storing it."""
    from ingestion.adapters.base import SourceFailed
    from ingestion.adapters.files import parse_postings
    from ingestion.adapters.urllist import url_list_check

    if fmt not in FORMATS:
        raise UploadError(f"Unknown file format {fmt!r}: use csv, json or jsonl.")
    if kind not in (SourceKind.FILE, SourceKind.URLS):
        raise UploadError(f"Sources of kind {kind!r} take no uploaded file.")
    report = UploadReport(fmt=fmt)
    # However the file came, no more than the limit is read: the check stops where storing it
    # would be refused.
    fileobj = io.BufferedReader(_Capped(fileobj, settings.INTAKE_UPLOAD_MAX_BYTES))
    try:
        if kind == SourceKind.FILE:
            for _posting, errors in parse_postings(fileobj, fmt):
                report.add(errors)
        else:
            for errors in url_list_check(fileobj, fmt):
                report.add(errors)
    except (SourceFailed, UploadError) as exc:
        report.error = str(exc)
    return report


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


# --- reading helpers shared by the file and URL list adapters ----------------------------------


class _Rejoined(io.RawIOBase):
    """A binary stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._head or self._rest.read(len(buffer))
        self._head = b""
        buffer[: len(data)] = data
        return len(data)


def json_start(fileobj: IO[bytes]) -> tuple[bytes, BinaryIO]:
    """The first significant byte of a JSON file (b"[", b"{", …; b"" when empty), and a stream
    of the whole document without its BOM, for ijson."""
    first = fileobj.read(1)
    if first == _BOM[:1]:
        fileobj.read(2)
        first = fileobj.read(1)
    while first and first.isspace():
        first = fileobj.read(1)
    return first, io.BufferedReader(_Rejoined(first, fileobj), buffer_size=64 * 1024)


def _too_long_row(unit: str) -> str:
    return f"longer than {ROW_MAX:,} {unit}: not read"


# A CR that ends a line of a file saved with bare CR line ends (not one of CRLF).
_BARE_CR = re.compile(rb"(?<=\r)(?!\n)")


def csv_rows(fileobj: IO[bytes]) -> Generator[list[str] | str, None, None]:
    """Each record of a UTF-8 CSV file as its cells, or, for a record that cannot be read, why
    (a line longer than ROW_MAX bytes, read past without being held whole; a cell the csv
    module refuses), the reading going on with the next record. A BOM is dropped; lines may
    end in LF, CRLF or CR, and quoted cells span lines, as the csv module reads them from a
    file opened with newline="". UnicodeDecodeError propagates. The caller's file stays open.

    Lines are cut from the bytes, not from decoded text, so the limit is the file's size of a
    row whatever its characters (a Python string, and the csv module's buffer, take up to
    four bytes a character)."""
    csv.field_size_limit(ROW_MAX)
    long_line = False  # the last reader stopped at a line too long to read
    long_line_odd = False  # that line had an odd number of quotes

    def read_past(line: bytes) -> bool:
        """Read past the rest of the physical line that starts with `line`; whether it has an
        odd number of quotes (it opens or closes a quoted cell)."""
        odd = line.count(b'"') % 2
        while line and not line.endswith(b"\n"):
            line = fileobj.readline(ROW_MAX)
            odd ^= line.count(b'"') % 2
        return bool(odd)

    def lines() -> Iterator[str]:
        nonlocal long_line, long_line_odd
        first = True
        while line := fileobj.readline(ROW_MAX + 1):
            if len(line) > ROW_MAX:
                long_line, long_line_odd = True, read_past(line)
                return  # this reader ends here; the next one starts after the record
            if first:
                line = line.removeprefix(_BOM)
                first = False
            if b"\r" in line[:-2]:
                for piece in _BARE_CR.split(line):
                    if piece:
                        yield piece.decode("utf-8")
            else:
                yield line.decode("utf-8")

    while True:
        reader = csv.reader(lines())
        cut = False  # the reader was in a quoted cell when the long line came
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield f"cannot be read: {exc}"
                continue
            if long_line:
                cut = True  # the record the long line belongs to, cut short: not a row
            else:
                yield cells
        if not long_line:
            return
        long_line = False
        # Still in a quoted cell after the long line: its record goes on to the line that
        # closes the cell.
        quoted = cut != long_line_odd
        while quoted and (line := fileobj.readline(ROW_MAX + 1)):
            quoted = read_past(line) != quoted
        yield _too_long_row("bytes")


def jsonl_values(fileobj: IO[bytes]) -> Iterator[tuple[int, Any, str]]:
    """(line number, value, "") for each non-blank line of a JSONL file, or
    (line number, None, why) for a line that is not valid JSON, is nested deeper than
    safejson.MAX_DEPTH or is longer than ROW_MAX bytes (skipped without being held whole).
    Decimals stay exact."""
    number = 0
    while line := fileobj.readline(ROW_MAX + 1):
        number += 1
        if len(line) > ROW_MAX:
            while line and not line.endswith(b"\n"):
                line = fileobj.readline(ROW_MAX)
            yield number, None, _too_long_row("bytes")
            continue
        if number == 1:
            line = line.removeprefix(_BOM)
        if b"\x00" in line:
            line = line.replace(b"\x00", b"")  # never valid JSON; it would refuse the row
        if not line.strip():
            continue
        try:
            yield number, safejson.loads(line.decode("utf-8"), parse_float=Decimal), ""
        except UnicodeDecodeError:
            yield number, None, "not valid UTF-8 text"
        except safejson.JsonTooDeep as exc:
            yield number, None, str(exc)
        except ValueError as exc:
            yield number, None, f"not valid JSON: {exc}"

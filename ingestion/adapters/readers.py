"""What the adapters share to read a source: values (dates, amounts, text as HTML), URLs,
rows of uploaded files (CSV, JSON, JSONL) and the ordered thread pool that fetches pages.

Nothing here knows a source kind: each adapter module maps what these read to a Posting.
"""

from __future__ import annotations

import csv
import email.utils
import html as htmllib
import io
import re
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from hashlib import sha1
from typing import IO, Any, BinaryIO, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ijson
from django.db import connections

from ingestion import safejson
from ingestion.adapters.base import RowError, SourceFailed
from ingestion.textclean import clean_text
from ingestion.uploads import BOM

T = TypeVar("T")
R = TypeVar("R")

# Threads fetching pages of one source; the Fetcher's per-host limit still applies.
FETCH_THREADS = 8
EXTERNAL_ID_MAX = 255  # Job.external_id
# Second-level labels under which a registrable domain has three labels (acme.co.uk).
_SECOND_LEVEL = {"co", "com", "org", "net", "ac", "gov", "edu", "ltd", "plc", "ne", "or"}
# The longest row read (a CSV record's line, in characters; a JSONL line, in bytes): a longer
# one is a row error, read past without being held. Far beyond a posting at
# INTAKE_DESCRIPTION_MAX_CHARS, so such a field is read and refused by name; short enough that
# the copies parsing a CSV line makes (line, the csv module's buffer, the cell: four bytes a
# character at worst) stay within a few hundred MB.
ROW_MAX = 12 * 1024 * 1024
# How many row errors a report keeps (the counts cover every row).
REPORT_MAX_ERRORS = 100


# --- values ---------------------------------------------------------------------------------


def parse_when(value: Any) -> datetime | None:
    """A date or datetime from ISO 8601 ("2024-05-01", "2024-05-01T09:00:00Z"), RFC 2822, or
    epoch seconds (milliseconds when large); None for empty; ValueError for anything else.
    Naive values are taken as UTC."""
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise ValueError(value)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float | Decimal):
        seconds = float(value)
        parsed = datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, tz=UTC)
    else:
        text = str(value).strip()
        if not text:
            return None
        if text.isdigit() and len(text) >= 9:
            return parse_when(int(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                raise ValueError(text) from None
    if not 1900 <= parsed.year <= 2200:
        raise ValueError(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_AMOUNT_JUNK = re.compile(r"[^\d.,\-kK]")


def parse_amount(value: Any) -> Decimal | None:
    """A money amount: a number, or text like "120,000", "$85k", "50.000,00"; None for empty;
    ValueError for anything else (or an amount Job's salary columns cannot hold)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float | Decimal):
        amount = Decimal(str(value))
    else:
        text = _AMOUNT_JUNK.sub("", str(value))
        thousands = text[-1:] in ("k", "K")
        text = text.rstrip("kK")
        if "," in text and "." in text:
            # The later separator is the decimal point.
            decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
            other = "." if decimal_sep == "," else ","
            text = text.replace(other, "").replace(decimal_sep, ".")
        elif "," in text:
            head, _, tail = text.rpartition(",")
            text = text.replace(",", "") if len(tail) == 3 else f"{head.replace(',', '')}.{tail}"
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(value) from None
        if thousands:
            amount *= 1000
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise ValueError(value)
    return amount.quantize(Decimal("0.01"))


_TAG = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*\b[^<>]*|/[a-zA-Z][a-zA-Z0-9]*\s*)>")


def looks_like_html(text: str) -> bool:
    return bool(_TAG.search(text))


def text_to_html(text: str, *, escape: bool = True) -> str:
    """Plain text as HTML paragraphs (blank lines) and line breaks."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
    if escape:
        paragraphs = [htmllib.escape(p, quote=False) for p in paragraphs]
    return "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in paragraphs)


def fit_external_id(value: str) -> str:
    """`value`, or when longer than Job.external_id holds, its start and a hash of it."""
    if len(value) <= EXTERNAL_ID_MAX:
        return value
    return f"{value[:200]}#{sha1(value.encode()).hexdigest()}"


# --- URLs -----------------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """Lowercase scheme and host, no fragment, no default port, "/" for an empty path."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def _site(host: str) -> str:
    labels = host.lower().rstrip(".").split(".")
    if len(labels) <= 2 or all(label.isdigit() for label in labels):
        return ".".join(labels)
    if len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def company_from_url(url: str) -> str:
    """A company name guessed from a URL's host: its site's name ("careers.acme-corp.com" →
    "Acme Corp"), the address itself for an IP; "" without a host."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""
    site = _site(host)
    if not site or all(part.isdigit() for part in site.split(".")) or ":" in host:
        return host
    name = site.split(".")[0]
    return re.sub(r"[-_]+", " ", name).strip().title()


def same_site(url: str, other: str) -> bool:
    """Both URLs are on one site: careers.acme.com and jobs.acme.com are; acme.co.uk and
    other.co.uk are not (a small heuristic, not the public suffix list)."""
    return _site(urlsplit(url).hostname or "") == _site(urlsplit(other).hostname or "")


# --- rows of uploaded files -------------------------------------------------------------------


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
    # Rows that repeat an earlier one (a run skips them as duplicates), and the first few.
    duplicates: int = 0
    duplicate_rows: list[RowError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.good + self.bad + self.duplicates

    @property
    def ok(self) -> bool:
        return not self.error

    def add(self, errors: Iterable[RowError]) -> None:
        errors = list(errors)
        if errors and all(error.duplicate for error in errors):
            self.duplicates += 1
            if len(self.duplicate_rows) < REPORT_MAX_ERRORS:
                self.duplicate_rows.extend(errors[:1])
        elif errors:
            self.bad += 1
            room = REPORT_MAX_ERRORS - len(self.errors)
            if room > 0:
                self.errors.extend(errors[:room])
        else:
            self.good += 1


class BrokenRow:
    """A row that could not be read at all; `message` says why (for its RowError)."""

    def __init__(self, message: str) -> None:
        self.message = message


def row_label(fmt: str) -> str:
    """What a file's rows are called in its errors: JSONL files count lines."""
    return "line" if fmt == "jsonl" else "row"


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
    if first == BOM[:1]:
        fileobj.read(2)
        first = fileobj.read(1)
    while first and first.isspace():
        first = fileobj.read(1)
    return first, io.BufferedReader(_Rejoined(first, fileobj), buffer_size=64 * 1024)


def _too_long_row(unit: str) -> str:
    return f"longer than {ROW_MAX:,} {unit}: not read"


# A CR that ends a line of a file saved with bare CR line ends (not one of CRLF).
_BARE_CR = re.compile(rb"(?<=\r)(?!\n)")


def csv_rows(fileobj: IO[bytes], *, bom: bool = True) -> Generator[list[str] | str, None, None]:
    """Each record of a UTF-8 CSV file as its cells, or, for a record that cannot be read, why
    (a line longer than ROW_MAX bytes, read past without being held whole; a cell the csv
    module refuses), the reading going on with the next record. A BOM is dropped (unless
    `bom` is false: the file is read on from a record, not from its start); lines may
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
        first = bom
        while line := fileobj.readline(ROW_MAX + 1):
            if len(line) > ROW_MAX:
                long_line, long_line_odd = True, read_past(line)
                return  # this reader ends here; the next one starts after the record
            if first:
                line = line.removeprefix(BOM)
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
            line = line.removeprefix(BOM)
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


def json_rows(
    fileobj: IO[bytes], *, key: str, what: str, when_empty: str = ""
) -> Iterator[tuple[int, Any]]:
    """(row, value or BrokenRow) for each item of a JSON file that is an array of `what`, or
    an object with the array under `key`; SourceFailed for a file that is neither, that
    breaks off (the rows before it are yielded) or, with `when_empty` (the message), for an
    object without items."""
    first, stream = json_start(fileobj)
    if first not in (b"[", b"{"):
        raise SourceFailed(
            f'The JSON file must be an array of {what} or an object {{"{key}": [...]}}.'
        )
    prefix = "item" if first == b"[" else f"{key}.item"
    row = 0
    try:
        for row, (item, problem) in enumerate(safejson.items(stream, prefix), 1):  # noqa: B007
            yield row, BrokenRow(problem) if problem else item
    except (safejson.JsonTooDeep, safejson.JsonTooLong) as exc:
        raise SourceFailed(f"The JSON file {exc.problem}: it cannot be read.") from exc
    except ijson.JSONError as exc:
        # ijson quotes the bytes around the error, which may be anything.
        raise SourceFailed(
            f"The JSON file is not valid after row {row}: {clean_text(str(exc))}"
        ) from exc
    except UnicodeDecodeError as exc:  # ijson's for a lone "\udc00" escape
        raise SourceFailed(
            f"The JSON file is not valid after row {row}: a \\u escape is not a character."
        ) from exc
    if when_empty and prefix != "item" and row == 0:
        raise SourceFailed(when_empty)


def jsonl_rows(fileobj: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, value or BrokenRow) for each non-blank line of a JSONL file."""
    for number, value, problem in jsonl_values(fileobj):
        yield number, BrokenRow(problem) if problem else value


# --- fetching pages ---------------------------------------------------------------------------


def ordered_parallel(
    func: Callable[[T], R], items: Iterable[T], *, threads: int = FETCH_THREADS
) -> Iterator[R]:
    """func(item) for each item, run in a small thread pool, yielded in the items' order. At
    most a few results wait ahead of the consumer; stopping the iteration cancels the rest."""

    def call(item: T) -> R:
        try:
            return func(item)
        finally:
            # A pool thread that touched the database (the Fetcher stores payloads) must not
            # keep a connection open after the pool is gone.
            connections.close_all()

    pending: deque[Future[R]] = deque()
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="intake-fetch")
    try:
        iterator = iter(items)
        for item in iterator:
            pending.append(executor.submit(call, item))
            if len(pending) >= threads * 4:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

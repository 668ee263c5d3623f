"""Uploaded files of postings (kind "file"): CSV with a header row, JSON (an array of objects
or {"jobs": [...]}, streamed with ijson) or JSONL (one object per line), read into records
keyed by field name. No network. What the fields are and how a record becomes a Posting is
ingestion.adapters.file_rows.

A row with problems is still yielded, with `invalid_reasons` naming the row and the field
("row 7: title is required", "line 4: not valid JSON: ...") and `row` set; good rows go in.
Rows are numbered from 1 without the header (CSV, JSON arrays); JSONL counts lines. A file the
adapter cannot read at all (no `title` column, broken JSON, not UTF-8) raises SourceFailed.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from io import BufferedReader
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, cast

from django.db import transaction

from ingestion.adapters.base import (
    UPLOAD_COMPANIES,
    Adapter,
    Posting,
    RawRecord,
    RowError,
    SourceFailed,
)
from ingestion.adapters.file_rows import _MAX, REQUIRED, _string, _value, field_name, to_posting
from ingestion.adapters.files_scan import scan, split_record
from ingestion.adapters.readers import (
    ROW_MAX,
    BrokenRow,
    _Rejoined,
    company_from_url,
    csv_rows,
    json_rows,
    jsonl_rows,
    row_label,
)
from ingestion.uploads import UploadError, upload_identity, upload_open

if TYPE_CHECKING:
    from ingestion.models import Source

# Rows read for a company name when a file source is added without one.
COMPANY_SAMPLE_ROWS = 1000


def _csv_records(fileobj: IO[bytes]) -> Iterator[tuple[int, Any]]:
    for row, record, _text in _csv_cells(fileobj, raw=False):
        yield row, record


def _csv_cells(fileobj: IO[bytes], *, raw: bool) -> Iterator[tuple[int, Any, str]]:
    """(row, record or BrokenRow, raw text) of each CSV row; the raw text (with `raw`, else
    "") stands for the row's header and text, whatever their characters: equal texts, equal
    records, without the cost of a repr of each."""
    # With `raw`, the header is read through _Lines: whether the csv module left the file at
    # the start of a line (the rest can be scanned) or within one it split at a bare CR.
    lines = _Lines(fileobj) if raw else fileobj
    rows = csv_rows(cast(IO[bytes], lines))
    try:
        header = next(rows, None)
        while isinstance(header, list) and not any(cell.strip() for cell in header):
            header = next(rows, None)
        if header is None:
            raise SourceFailed("The file is empty: expected a header row and postings.")
        if isinstance(header, str):
            raise SourceFailed(f"The file's header row is {header}.")
        names = [field_name(cell) for cell in header]
        unique = len(set(names)) == len(names)
        # The header once, length-prefixed; then a row scanned as "raw" and its text, or
        # its cells' lengths and the cells end to end: no cell's characters can stand for a
        # boundary.
        head = f"{len(names)}:{len(header)}:{header!r}" if raw else ""
        for required in REQUIRED:
            if required not in names:
                also = " (or id, job_id)" if required == "external_id" else ""
                found = ", ".join(repr(cell.strip()) for cell in header if cell.strip())
                raise SourceFailed(
                    f"The file has no {required!r} column{also}; found: {found or 'nothing'}."
                )
        # With `raw` and the usual header, a row stays its text or cells (CsvText, CsvRow)
        # until it is mapped: the listing tells most rows of a re-run unchanged by their key
        # and raw hash alone.
        lazy = CsvHeader.of(names) if raw and unique else None
        first = 1
        if lazy is not None and isinstance(lines, _Lines) and lines.at_line_start:
            rows.close()
            rest, first = yield from _scanned_rows(fileobj, lazy, f"{head}|raw|")
            if not rest:
                return
            rows = csv_rows(BufferedReader(_Rejoined(rest, fileobj)), bom=False)
        for row, cells in enumerate(rows, first):
            if isinstance(cells, str):
                yield row, BrokenRow(cells), ""
                continue
            record: Any
            if lazy is not None:
                # A row of empty cells (within the header's columns) is no posting.
                if any(c.strip() for c in cells[: len(names)]):
                    yield row, CsvRow(lazy, cells), f"{head}|{_lengths(cells)}|{''.join(cells)}"
                continue
            if unique:  # the usual header: one column per field
                record = {n: c for n, c in zip(names, cells, strict=False) if c.strip()}
            else:
                record = {}
                for name, cell in zip(names, cells, strict=False):
                    # The first non-empty column wins when two map to one field (id, job_id).
                    if cell.strip() and not record.get(name):
                        record[name] = cell
            if record:  # a row of empty cells is no posting
                text = f"{head}|{_lengths(cells)}|{''.join(cells)}" if raw else ""
                yield row, record, text
    except UnicodeDecodeError as exc:
        raise SourceFailed(
            f"The file is not UTF-8 text ({exc.reason} at byte {exc.start} of a line): "
            "save it as 'CSV UTF-8'."
        ) from exc
    finally:
        rows.close()  # now, while the caller's file is open


def _scanned_rows(
    fileobj: IO[bytes], header: CsvHeader, head: str
) -> Generator[tuple[int, CsvText, str], None, tuple[bytes, int]]:
    """The rows files_scan.scan is sure of, as CsvText; returns where it stopped (scan's)."""
    width = len(header.names)
    company_at, id_at = header.company, header.external_id
    scanner = scan(fileobj, 1)
    while True:
        try:
            row, text, cells = next(scanner)
        except StopIteration as stop:
            return cast(tuple[bytes, int], stop.value)
        external_id = cells[id_at].strip() if id_at is not None and id_at < len(cells) else ""
        # A row of empty cells (within the header's columns) is no posting.
        if external_id or any(c.strip() for c in cells[:width]):
            company = (
                cells[company_at].strip()
                if company_at is not None and company_at < len(cells)
                else ""
            )
            key = " ".join(company[: _MAX["company"]].split()), external_id[: _MAX["external_id"]]
            yield row, (header, text, *key), head + text


class _Lines:
    """A binary file's readline, noting whether the last line read ended where the csv
    module's reading of it ends: not a line it cuts at a bare CR, nor one too long to read."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj
        self.at_line_start = True

    def readline(self, size: int = -1) -> bytes:
        line = self._fileobj.readline(size)
        self.at_line_start = len(line) <= ROW_MAX and b"\r" not in line[:-2]
        if line.endswith(b"\r") and not line.endswith(b"\r\n"):
            self.at_line_start = False
        return line


def _named_companies(source: Source) -> list[str] | None:
    """The companies the rows of the source's file name (sorted), None when more than
    COMPANIES_KNOWN_MAX or the file cannot be read."""
    fmt = source.upload_format
    names: set[str] = set()
    try:
        if fmt == "csv":
            with upload_open(source) as fileobj:
                header = _csv_header(fileobj)
            if header is None:
                return None
            if "company" not in header:
                return []
        with upload_open(source) as fileobj:
            for _row, record, _text in _raw_records(fileobj, fmt, raw=True):
                if isinstance(record, RowError):
                    continue
                company = record_key(record)[0]
                if company:
                    names.add(company)
                    if len(names) > COMPANIES_KNOWN_MAX:
                        return None
    except (UploadError, SourceFailed, UnicodeDecodeError, OSError, ValueError):
        return None
    return sorted(names)


def _csv_header(fileobj: IO[bytes]) -> list[str] | None:
    """The field names of a CSV file's header row (as _csv_cells reads it), None when it
    has none."""
    rows = csv_rows(fileobj)
    try:
        for header in rows:
            if isinstance(header, str):
                return None
            if any(cell.strip() for cell in header):
                return [field_name(cell) for cell in header]
        return None
    finally:
        rows.close()


def _normalized(obj: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in obj.items():
        name = field_name(str(key))
        if value not in (None, "") and record.get(name) in (None, ""):
            record[name] = value
    return record


def _json_records(fileobj: IO[bytes]) -> Iterator[tuple[int, Any]]:
    return json_rows(
        fileobj,
        key="jobs",
        what="postings",
        when_empty=(
            'The JSON file is an object without postings: expected {"jobs": [...]} or an '
            "array of postings."
        ),
    )


def _jsonl_records(fileobj: IO[bytes]) -> Iterator[tuple[int, Any]]:
    return jsonl_rows(fileobj)


def _lengths(cells: list[str]) -> str:
    return ",".join(map(str, map(len, cells)))


class CsvHeader(NamedTuple):
    """A CSV header of one column per field: its names, and where the key's columns are."""

    names: tuple[str, ...]
    company: int | None
    external_id: int | None

    @classmethod
    def of(cls, names: list[str]) -> CsvHeader:
        def at(name: str) -> int | None:
            return names.index(name) if name in names else None

        return cls(tuple(names), at("company"), at("external_id"))


class CsvRow(NamedTuple):
    """A row of a CSV file whose header has one column per field, as read: what record_key
    and to_posting read of it are the cells of its header's columns, not empty after strip
    (as `record()` has them)."""

    header: CsvHeader
    cells: list[str]

    def record(self) -> dict[str, Any]:
        return {n: c for n, c in zip(self.header.names, self.cells, strict=False) if c.strip()}

    def cell(self, at: int | None) -> str:
        """The stripped cell of column `at` ("" for a column the header or the row lacks)."""
        return self.cells[at].strip() if at is not None and at < len(self.cells) else ""


# A CsvRow as another worker sends it (ingestion.pipeline.readahead): its header, its cells'
# lengths and its cells end to end. Three objects to pickle rather than one per cell, and no
# Python call to rebuild each when unpickled: the listing unpickles every row of a re-run and
# maps few of them (split_row, when one is mapped).
JoinedRow = tuple[CsvHeader, str, str]


# A CSV row the scan was sure of (ingestion.adapters.files_scan): its header, its text as read
# and its key (company, external_id), cut into cells only when it is mapped. A plain tuple:
# it is pickled as it is to the listing (ingestion.pipeline.readahead), its key the very
# strings of its RawRecord's (written once).
CsvText = tuple[CsvHeader, str, str, str]


def text_row(text: CsvText) -> CsvRow:
    header, raw = text[0], text[1]
    cells = split_record(raw)
    assert cells is not None  # the scan yields only records it could split
    return CsvRow(header, cells)


def join_row(row: CsvRow) -> JoinedRow:
    return row.header, _lengths(row.cells), "".join(row.cells)


def split_row(joined: JoinedRow) -> CsvRow:
    header, lengths, text = joined
    cells = []
    at = 0
    for length in map(int, lengths.split(",")) if lengths else ():
        cells.append(text[at : at + length])
        at += length
    return CsvRow(header, cells)


def record_key(record: dict[str, Any] | CsvRow | CsvText) -> tuple[str, str]:
    """(company, external_id) of a record as to_posting reads them, without mapping the rest."""
    if isinstance(record, CsvRow):
        company = record.cell(record.header.company)[: _MAX["company"]]
        external_id = record.cell(record.header.external_id)[: _MAX["external_id"]]
        return " ".join(company.split()), external_id
    if isinstance(record, tuple):  # CsvText: read with the row
        return record[2], record[3]
    company = _string(_value(record, "company"))[: _MAX["company"]]
    return " ".join(company.split()), _string(_value(record, "external_id"))[: _MAX["external_id"]]


def _records(fileobj: IO[bytes], fmt: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Each row of a postings file: its record (keys normalized with field_name), or the
    RowError of a row that is no record at all."""
    for row, record, _text in _raw_records(fileobj, fmt, raw=False):
        assert not isinstance(record, CsvRow | tuple)  # rows stay as read only with `raw`
        yield row, record


def _raw_records(
    fileobj: IO[bytes], fmt: str, *, raw: bool
) -> Iterator[tuple[int, dict[str, Any] | CsvRow | CsvText | RowError, str]]:
    """As _records, with each record's raw text (with `raw`, else ""): what its raw hash is
    taken over, equal only for rows that read as equal records."""
    label = row_label(fmt)
    records: Iterator[tuple[int, Any, str]]
    if fmt == "csv":
        records = _csv_cells(fileobj, raw=raw)
    elif fmt == "json":
        records = ((row, record, "") for row, record in _json_records(fileobj))
    elif fmt == "jsonl":
        records = ((row, record, "") for row, record in _jsonl_records(fileobj))
    else:
        raise SourceFailed(f"Unknown file format {fmt!r}.")
    for row, record, text in records:
        if type(record) is tuple or isinstance(record, CsvRow):  # left as read (_csv_cells)
            yield row, record, text
            continue
        if isinstance(record, BrokenRow):
            problem = RowError(row, "", record.message, label)
        elif not isinstance(record, dict):
            found = type(record).__name__
            problem = RowError(row, "", f"expected an object, found {found}", label)
        else:
            # CSV records come keyed by the header's normalized names already.
            if fmt != "csv":
                record = _normalized(record)
                text = repr(record) if raw else ""
            yield row, record, text
            continue
        yield row, problem, ""


def _unreadable(problem: RowError) -> Posting:
    return Posting(external_id="", row=problem.row, invalid_reasons=[str(problem)])


def parse_postings(fileobj: IO[bytes], fmt: str) -> Iterator[tuple[Posting, list[RowError]]]:
    """Each row of a postings file as a Posting and its RowErrors (empty: a good row)."""
    label = row_label(fmt)
    for row, record in _records(fileobj, fmt):
        if isinstance(record, RowError):
            yield _unreadable(record), [record]
        else:
            yield to_posting(record, row, label=label)


def _mapped(record: Any, row: int | None, *, label: str) -> Posting:
    if type(record) is tuple:  # as read (CsvText), or as sent (JoinedRow)
        record = text_row(record) if len(record) == 4 else split_row(record)
    if isinstance(record, CsvRow):
        record = record.record()
    return to_posting(record, row or 0, label=label)[0]


# Companies a file may name and still be known before it is listed: beyond them its run's
# sources are listed one after another.
COMPANIES_KNOWN_MAX = 1000


class FileAdapter(Adapter):
    kind = "file"
    row_companies = True
    reads_upload = True

    @classmethod
    def company_in_upload(cls, fileobj: BinaryIO, fmt: str) -> str:
        """The company most rows name (among the first COMPANY_SAMPLE_ROWS), else the site
        of the first posting URL."""
        counts: Counter[str] = Counter()
        first_url = ""
        try:
            for posting, _errors in itertools.islice(
                parse_postings(fileobj, fmt), COMPANY_SAMPLE_ROWS
            ):
                if posting.company:
                    counts[posting.company] += 1
                first_url = first_url or posting.url
        except (SourceFailed, UploadError):
            pass  # the file's check says what is wrong with it
        if counts:
            return counts.most_common(1)[0][0]
        return company_from_url(first_url) if first_url else ""

    @classmethod
    def companies(cls, source: Source) -> frozenset[str] | None:
        """The companies the file's rows name, and its source's (rows naming none): read
        once per stored file (kept in the source's options until the file is replaced),
        at no cost for a CSV file without a company column. None when it names more than
        COMPANIES_KNOWN_MAX or cannot be read (its listing says why)."""
        identity = upload_identity(source)
        if identity is None:
            return None
        known = (source.options or {}).get(UPLOAD_COMPANIES) or {}
        if known.get("upload") == identity:
            names = known.get("names")
        else:
            names = _named_companies(source)
            with transaction.atomic():
                options = (
                    type(source)
                    .objects.select_for_update()
                    .filter(pk=source.pk)
                    .values_list("options", flat=True)
                    .first()
                )
                if options is None:
                    return None  # deleted meanwhile
                options = {**options, UPLOAD_COMPANIES: {"upload": identity, "names": names}}
                type(source).objects.filter(pk=source.pk).update(options=options)
                source.options = options
        if names is None:
            return None
        return frozenset({source.company, *names})

    @classmethod
    def check_upload(cls, fileobj: BinaryIO, fmt: str) -> Iterator[list[RowError]]:
        for _posting, errors in parse_postings(fileobj, fmt):
            yield errors

    def postings(self) -> Iterator[Posting]:
        # to_posting checked every row already, as row errors naming the row.
        return self.list_postings()

    def list_postings(self) -> Iterator[Posting]:
        with self._upload() as fileobj:
            try:
                for posting, _errors in parse_postings(fileobj, self.source.upload_format):
                    yield posting
            except UploadError as exc:
                raise SourceFailed(str(exc)) from exc

    def records(self, raw_hash: Callable[[str], str]) -> Iterator[Posting | RawRecord]:
        fmt = self.source.upload_format
        # A module function, not a closure: a record is pickled to be mapped on another
        # worker (ingestion.pipeline.mapping). One for all records: pickle writes a shared
        # object once per batch, a partial of each record's own once per record.
        mapper = functools.partial(_mapped, label=row_label(fmt))

        with self._upload() as fileobj:
            try:
                for row, record, text in _raw_records(fileobj, fmt, raw=True):
                    if isinstance(record, RowError):
                        yield _unreadable(record)
                        continue
                    company, external_id = record_key(record)
                    yield RawRecord(
                        external_id=external_id,
                        company=company,
                        raw_hash=raw_hash(text),
                        row=row,
                        size=len(text),
                        record=record,
                        mapper=mapper,
                    )
            except UploadError as exc:
                raise SourceFailed(str(exc)) from exc

    def _upload(self) -> BinaryIO:
        try:
            return upload_open(self.source)
        except UploadError as exc:
            raise SourceFailed(str(exc)) from exc

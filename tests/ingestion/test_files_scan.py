"""The scan of a CSV file's records without the csv module (ingestion.adapters.files_scan):
whatever the file, the rows a re-run reads from it — their numbers, keys, postings and row
errors, and how the file fails — are those the csv module reads."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingestion.adapters import SourceFailed, files, files_scan, readers
from ingestion.adapters.base import RawRecord, RowError
from ingestion.pipeline import readahead
from ingestion.uploads import BOM


def _read(data: bytes, *, raw: bool) -> tuple[list[Any], str]:
    """(row, key, posting or row error) of each row, and how reading failed ("" if not)."""
    out: list[Any] = []
    try:
        for row, record, _text in files._raw_records(io.BytesIO(data), "csv", raw=raw):
            if isinstance(record, RowError):
                out.append((row, str(record)))
            else:
                posting = files._mapped(record, row, label="row")
                out.append((row, files.record_key(record), posting))
    except SourceFailed as exc:
        return out, str(exc)
    return out, ""


def _scanned(data: bytes) -> int:
    """How many records the scan yielded, as the adapter reads `data` raw."""
    return sum(
        type(record) is tuple
        for _row, record, _text in files._raw_records(io.BytesIO(data), "csv", raw=True)
    )


def _same_as_csv(data: bytes) -> None:
    assert _read(data, raw=True) == _read(data, raw=False)


_HEADERS = st.lists(
    st.sampled_from(
        ["external_id", "id", "job_id", "title", "company", "url", "description", " Title ", ""]
    ),
    min_size=1,
    max_size=6,
).map(lambda names: ["external_id", "title", *names] if "title" not in names else names)
# Characters that mean something to a CSV reader, or to strip() and UTF-8.
_CHARS = st.sampled_from(
    ["a", "b", "Z", "1", " ", ",", '"', '""', "\r", "\n", "\r\n", "\x00", "é", "\xa0", "\x1c"]
)
_CELL = st.lists(_CHARS, max_size=6).map("".join)


def _written(header: list[str], rows: list[list[str]], quoting: int, end: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=quoting, lineterminator=end)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=_HEADERS,
    rows=st.lists(st.lists(_CELL, max_size=7), max_size=6),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    end=st.sampled_from(["\r\n", "\n", "\r"]),
    bom=st.booleans(),
    tail=st.sampled_from([b"", b"\r\n", b"\n\n", b'"', b"x,\xff\n", b'a"b,c\n', b"\r"]),
)
@example(
    header=["external_id", "title"], rows=[["1", "a\nb"]], quoting=0, end="\r\n", bom=True, tail=b""
)
def test_a_written_file_reads_as_the_csv_module_reads_it(
    header: list[str], rows: list[list[str]], quoting: int, end: str, bom: bool, tail: bytes
) -> None:
    data = _written(header, rows, quoting, end) + tail
    _same_as_csv((BOM if bom else b"") + data)


@settings(max_examples=600, deadline=None)
@given(
    header=_HEADERS,
    body=st.lists(
        st.sampled_from(
            ["a", " ", ",", '"', '""', '","', "\r", "\n", "\r\n", "\xa0", "é", "\x00", "\ufeff"]
        ).map(str.encode)
        | st.sampled_from([b"\xff", b"\xc3", BOM]),
        max_size=40,
    ).map(b"".join),
)
def test_any_bytes_read_as_the_csv_module_reads_them(header: list[str], body: bytes) -> None:
    _same_as_csv(",".join(header).encode() + b"\n" + body)


@pytest.mark.parametrize(
    "data",
    [
        # Multi-line cells, blank lines, short and long rows, empty rows.
        b'external_id,title,company\r\n1,"a\r\nb",X\r\n\r\n2,b\r\n,,\r\n3,c,Y,extra\r\n',
        # A row that is not well formed: the csv module reads the rest.
        b'external_id,title\n1,a\n2,b"c\n3,"d\n4,e\n',
        b'external_id,title\n1,a\n2,"b"c,d\n3,e\n',
        # A bare CR in the header: the csv module reads the whole file.
        b"external_id,title\r1,a\n2,b\n",
        # An unclosed quote at the end of the file.
        b'external_id,title\n1,a\n2,"b\n3,c\n',
        # Not UTF-8 after good rows: they are read, then the file fails.
        b"external_id,title\n1,a\n2,\xffb\n3,c\n",
        # A BOM on a later row is a cell's.
        b"\xef\xbb\xbfexternal_id,title\n1,a\n\xef\xbb\xbf2,b\n",
        # Company: stripped, spaces squeezed; keys of a row without its key column.
        b'title,external_id,company\na, 1 ,"  Acme \n Corp "\nb\n',
        # A header naming a field twice: rows are records, as before.
        b"id,job_id,title\nX-1,,First\n,X-2,Second\n",
    ],
)
def test_tricky_files_read_as_the_csv_module_reads_them(data: bytes) -> None:
    _same_as_csv(data)


def test_well_formed_rows_are_scanned_and_a_doubtful_one_ends_the_scan() -> None:
    assert _scanned(b'external_id,title\n1,"a\nb"\n2,b\n\n3,"c ""q"", d"\n') == 3
    assert _scanned(b'external_id,title\n1,a\n2,b"c\n3,c\n') == 1
    assert _scanned(b"external_id,title\r1,a\n2,b\n") == 0


def test_rows_longer_than_the_limit_read_as_the_csv_module_reads_them(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(readers, "ROW_MAX", 40)
    monkeypatch.setattr(files_scan, "ROW_MAX", 40)
    long = b"x" * 50
    _same_as_csv(b"external_id,title\n1,a\n2," + long + b"\n3,c\n")
    _same_as_csv(b'external_id,title\n1,a\n2,"' + b"y\n" * 30 + b'"\n3,c\n')
    _same_as_csv(b'external_id,title\n1,"a\n' + long + b'"\n3,c\n')
    assert _scanned(b"external_id,title\n1,a\n2," + long + b"\n3,c\n") == 1


def test_split_record_reads_cells_as_the_csv_module() -> None:
    for text in ['a,"b,c",d\r\n', '"",x', '"a""b"\n', '"a""""",\n', "\n", ",,"]:
        assert files_scan.split_record(text) == next(csv.reader([text]))
    for text in ['a"b\n', '"a"b,c\n', 'a,"b"\r,c\n', '"a\n', "a\rb\n", '"a" ,b\n']:
        assert files_scan.split_record(text) is None


def test_rows_read_ahead_travel_and_map_the_same_scanned_or_not(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Rows scanned (files.CsvText) and rows after one the scan was not sure of (files.CsvRow)
    # reach the listing from a read-ahead helper as they left it, and map to the same
    # postings as the csv module's records.
    data = b'external_id,title,company\n1,"A, one",X\n2,b"c,Y\n3,"C\nthree",Z\n'
    monkeypatch.setattr(files, "upload_open", lambda source: io.BytesIO(data))
    source: Any = SimpleNamespace(upload_format="csv")
    batch = list(files.FileAdapter(source, None).records(lambda text: f"h{len(text)}"))  # type: ignore[arg-type]
    assert [type(r.record) for r in batch] == [tuple, files.CsvRow, files.CsvRow]  # type: ignore[union-attr]
    back = readahead.unpack(readahead.pickle.loads(readahead.pickle.dumps(readahead.pack(batch))))
    as_records = _read(data, raw=False)[0]
    for entry, copy, (row, key, posting) in zip(batch, back, as_records, strict=True):
        assert isinstance(entry, RawRecord) and isinstance(copy, RawRecord)
        assert (copy.row, (copy.company, copy.external_id)) == (row, key)
        posting.raw_hash = entry.raw_hash
        assert copy.posting() == entry.posting() == posting


@settings(max_examples=1500, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["a", " ", ",", '"', '""', "\r", "\n", "\r\n", "é"]),
        min_size=1,
        max_size=14,
    ).map("".join),
)
def test_a_split_record_is_the_one_record_the_csv_module_reads(text: str) -> None:
    cells = files_scan.split_record(text)
    if cells is not None:
        assert list(csv.reader(io.StringIO(text, newline=""))) == [cells]

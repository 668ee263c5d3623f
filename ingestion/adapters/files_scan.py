"""The records of a CSV file told apart without the csv module, while they are well formed.

A re-run needs of most rows of an uploaded file only their key and a hash of their text; the
csv module's parse of each whole row is most of what reading it costs. A well-formed record
(RFC 4180: a quote opens a cell, doubles inside it, or closes it before a comma or the
record's end) is a run of whole lines with an even number of quotes, and its cells are its
text split at its quotes and commas, as the csv module reads them. Anything else — a quote
within an unquoted cell, a bare CR, a line longer than ROW_MAX, text that is not UTF-8, an
unclosed quote at the end — ends the scan at that record, and the csv module reads on from
there, as it would have from the start (ingestion.adapters.files).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import IO

from ingestion.adapters.readers import ROW_MAX

# (row, text as read with its line end, its cells): a record the scan is sure of.
Scanned = tuple[int, str, list[str]]


def split_record(text: str) -> list[str] | None:
    """The cells of one well-formed record (its text, the line end included), as the csv
    module reads them; None when the record is not well formed (the csv module might read
    it otherwise, or as more than one record)."""
    if text.endswith("\n"):
        body = text[:-2] if text.endswith("\r\n") else text[:-1]
    else:
        body = text[:-1] if text.endswith("\r") else text
    if '"' not in body:
        if not body:
            return []  # a blank line: a row of no cells
        if "\r" in body or "\n" in body:
            return None
        return body.split(",")
    parts = body.split('"')
    last = len(parts) - 1
    if last % 2:  # an odd number of quotes
        return None
    outside = parts[0]
    if "\r" in outside or "\n" in outside:
        return None
    cells = outside.split(",")
    if cells.pop():  # text before the opening quote, in its cell
        return None
    at = 1
    while True:
        value = parts[at]
        at += 1
        while at < last and not parts[at]:  # a doubled quote
            value += '"' + parts[at + 1]
            at += 2
        after = parts[at]  # from the closing quote to the next opening one, or the end
        if "\r" in after or "\n" in after:
            return None
        more = after.split(",")
        if more[0]:  # text after the closing quote, in its cell
            return None
        cells.append(value)
        if at == last:
            cells.extend(more[1:])
            return cells
        if len(more) == 1 or more[-1]:  # the next quote is not at the start of a cell
            return None
        cells.extend(more[1:-1])
        at += 1


def scan(fileobj: IO[bytes], row: int) -> Generator[Scanned, None, tuple[bytes, int]]:
    """Each well-formed record of `fileobj` (read from the start of a record, after the
    header), numbered from `row` on. Returns the bytes read of the first record it is not
    sure of (b"" at the end of the file) and that record's number: the csv module reads on
    from there."""
    readline = fileobj.readline
    while line := readline(ROW_MAX + 1):
        if len(line) > ROW_MAX:
            return line, row
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return line, row
        cells = split_record(text)
        if cells is None:
            read = line
            # A cell's line ends, while the quotes are odd; then the whole record again.
            odd = text.count('"') % 2
            while odd:
                more = readline(ROW_MAX + 1)
                read += more
                if not more or len(more) > ROW_MAX or len(read) > ROW_MAX:
                    return read, row
                odd ^= more.count(b'"') % 2
            try:
                text = read.decode("utf-8")
            except UnicodeDecodeError:
                return read, row
            cells = split_record(text) if len(read) > len(line) else None
            if cells is None:
                return read, row
        yield row, text, cells
        row += 1
    return b"", row

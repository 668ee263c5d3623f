"""Lists of posting URLs (kind "urls"): each URL is a page carrying a schema.org JSON-LD
JobPosting, read with ingestion.adapters.jsonld.postings_from_html.

The upload is CSV (one URL per row, in the `url` column when there is a header, else the
first), JSON (an array of strings or of {"url": ...}, or {"urls": [...]}) or JSONL (one string
or object per line), of at most INTAKE_URL_LIST_MAX URLs (more: the whole list is refused).
Each URL must be http(s), have a host and carry no user name or password; URLs are compared
normalized (lowercase scheme and host, no fragment, no default port) and a repeated one is
a duplicate ("row 5: duplicate of row 2"), skipped like a posting listed twice.

The URLs are fetched in a small thread pool (the Fetcher enforces its per-host limit) and the
postings yielded in row order, each with `row` set; a page's postings take their external_id
from the JSON-LD `identifier`, else the normalized URL.

Reasons: a problem with the row or the page starts with its row ("row 3: url 'ftp://x' is not
an http(s) URL", "row 4: datePosted is missing"). A URL that could not be fetched gives a
posting whose single reason starts with "fetch failed: " — the pipeline maps those to the
outcome `error` (a transient failure, worth a retry), every other reason to `invalid`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit

from django.conf import settings

from ingestion.adapters.base import Adapter, Posting, RowError, SourceFailed
from ingestion.adapters.jsonld import PageNotRead, postings_from_html
from ingestion.adapters.readers import (
    BrokenRow,
    company_from_url,
    csv_rows,
    fit_external_id,
    json_rows,
    jsonl_rows,
    normalize_url,
    ordered_parallel,
    row_label,
)
from ingestion.fetching import FetchError, url_refusal
from ingestion.textclean import clean_text, has_unsafe
from ingestion.uploads import UploadError, upload_open

URL_MAX = 2000  # Job.url

FETCH_FAILED = "fetch failed: "


@dataclass(slots=True)
class UrlEntry:
    row: int
    url: str  # as given
    key: str = ""  # normalized; "" when the URL is not valid
    errors: list[RowError] = field(default_factory=list)


def check_url(url: str) -> str:
    """Why `url` cannot be fetched as a posting page, or "" when it can."""
    if len(url) > URL_MAX:
        return f"url is longer than {URL_MAX} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"url {url!r} is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return f"url {url!r} is not an http(s) URL"
    if not parts.hostname:
        return f"url {url!r} has no host"
    if parts.username is not None or parts.password is not None:
        return f"url {url!r} must not contain a user name or password"
    # What the fetcher would refuse before DNS (a metadata or, unless allowed, private
    # address; a host name that is not one), in its words; it checks again after DNS.
    return url_refusal(url)


def _too_many(limit: int) -> SourceFailed:
    return SourceFailed(
        f"The list has more than {limit:,} URLs (INTAKE_URL_LIST_MAX); split it into lists of "
        f"at most {limit:,}."
    )


def _csv_rows(fileobj: IO[bytes]) -> Iterator[tuple[int, Any]]:
    rows = csv_rows(fileobj)
    try:
        column = 0
        header_row = 0  # rows are numbered after the header, when there is one
        seen_content = False
        for row, cells in enumerate(rows, 1):
            if isinstance(cells, str):
                yield row - header_row, BrokenRow(cells)
                continue
            if not seen_content and any(cell.strip() for cell in cells):
                seen_content = True
                names = [cell.strip().lower() for cell in cells]
                if "url" in names:
                    column, header_row = names.index("url"), row
                    continue
            yield row - header_row, cells[column] if column < len(cells) else ""
    except UnicodeDecodeError as exc:
        raise SourceFailed(f"The file is not UTF-8 text ({exc.reason}).") from exc
    finally:
        rows.close()  # now, while the caller's file is open


def _json_rows(fileobj: IO[bytes]) -> Iterator[tuple[int, Any]]:
    return json_rows(fileobj, key="urls", what="URLs")


def url_list_rows(fileobj: IO[bytes], fmt: str) -> Iterator[tuple[int, Any]]:
    """(row, value) for each non-blank row of a URL list; SourceFailed once more than
    INTAKE_URL_LIST_MAX rows were read (so a huge file is not read to its end)."""
    limit = settings.INTAKE_URL_LIST_MAX
    readers = {"csv": _csv_rows, "json": _json_rows, "jsonl": jsonl_rows}
    if fmt not in readers:
        raise SourceFailed(f"Unknown file format {fmt!r}.")
    count = 0
    for row, value in readers[fmt](fileobj):
        if isinstance(value, str) and not value.strip():
            continue
        count += 1
        if count > limit:
            raise _too_many(limit)
        yield row, value


def url_list_entries(fileobj: IO[bytes], fmt: str) -> list[UrlEntry]:
    """Every row of a URL list, validated and deduplicated (no network)."""
    label = row_label(fmt)
    entries: list[UrlEntry] = []
    first_row: dict[str, int] = {}
    for row, value in url_list_rows(fileobj, fmt):
        raw = value.get("url") if isinstance(value, dict) else value
        # What is kept of the URL is stored (an invalid row's item): never a NUL.
        entry = UrlEntry(
            row=row, url=clean_text(raw.strip()[:URL_MAX]) if isinstance(raw, str) else ""
        )
        entries.append(entry)
        if isinstance(value, BrokenRow):
            problem = RowError(row, "", value.message, label)
        elif not isinstance(raw, str):
            message = (
                "url is required"
                if isinstance(value, dict)
                else "expected a URL or an object with 'url'"
            )
            problem = RowError(row, "url", message, label)
        elif has_unsafe(raw):
            problem = RowError(row, "url", "url contains a control character", label)
        elif message := check_url(entry.url):
            problem = RowError(row, "url", message, label)
        else:
            entry.key = normalize_url(entry.url)
            if entry.key in first_row:
                problem = RowError(
                    row,
                    "url",
                    f"duplicate of {label} {first_row[entry.key]}",
                    label,
                    duplicate=True,
                )
            else:
                first_row[entry.key] = row
                continue
        entry.errors.append(problem)
    return entries


class UrlListAdapter(Adapter):
    kind = "urls"

    @classmethod
    def check_upload(cls, fileobj: BinaryIO, fmt: str) -> Iterator[list[RowError]]:
        for entry in url_list_entries(fileobj, fmt):
            yield entry.errors

    @classmethod
    def company_in_upload(cls, fileobj: BinaryIO, fmt: str) -> str:
        """The site of the list's first valid URL."""
        try:
            for entry in url_list_entries(fileobj, fmt):
                if not entry.errors:
                    return company_from_url(entry.url)
        except (SourceFailed, UploadError):
            pass  # the list's check says what is wrong with it
        return ""

    @classmethod
    def check_stored(cls, fileobj: BinaryIO, fmt: str) -> None:
        """Refuse a list of more than INTAKE_URL_LIST_MAX URLs (reading at most one more)."""
        try:
            for _ in url_list_rows(fileobj, fmt):
                pass
        except SourceFailed as exc:
            raise UploadError(str(exc)) from exc

    def list_postings(self) -> Iterator[Posting]:
        try:
            with upload_open(self.source) as fileobj:
                entries = url_list_entries(fileobj, self.source.upload_format)
        except UploadError as exc:
            raise SourceFailed(str(exc)) from exc
        label = row_label(self.source.upload_format)
        pages = ordered_parallel(self._read, [entry for entry in entries if not entry.errors])
        for entry in entries:
            if entry.errors and all(error.duplicate for error in entry.errors):
                yield Posting(
                    external_id=fit_external_id(entry.key),
                    url=entry.url,
                    row=entry.row,
                    duplicate_of="; ".join(str(error) for error in entry.errors),
                )
                continue
            if entry.errors:
                yield Posting(
                    external_id=fit_external_id(entry.key),
                    url=entry.url,
                    row=entry.row,
                    invalid_reasons=[str(error) for error in entry.errors],
                )
                continue
            postings = next(pages)
            for posting in postings:
                posting.row = entry.row
                if not posting.invalid_reasons[:1] or not posting.invalid_reasons[0].startswith(
                    FETCH_FAILED
                ):
                    posting.invalid_reasons = [
                        f"{label} {entry.row}: {reason}" for reason in posting.invalid_reasons
                    ]
                yield posting

    def _read(self, entry: UrlEntry) -> list[Posting]:
        external_id = fit_external_id(entry.key)
        try:
            page = self.fetcher.get(entry.url, page=True)
        except FetchError as exc:
            return [
                Posting(
                    external_id=external_id,
                    url=entry.url,
                    invalid_reasons=[f"{FETCH_FAILED}{exc}"],
                )
            ]
        try:
            postings = postings_from_html(page.text, normalize_url(page.url), fallback_id=entry.key)
        except PageNotRead as exc:
            return [Posting(external_id=external_id, url=entry.url, invalid_reasons=[str(exc)])]
        if not postings:
            return [
                Posting(
                    external_id=external_id,
                    url=entry.url,
                    invalid_reasons=["no JobPosting (schema.org JSON-LD) found on the page"],
                )
            ]
        return postings

"""The one small interface every source adapter implements, and the normalized posting shape
they all produce.

An adapter lists a source's postings as an iterator (a 50,000-posting board is streamed, never
held whole) and, when a listing lacks a posting's description, fetches its detail. It raises
SourceFailed for a failure of the whole source (board missing, network down); a problem with
one posting is reported on that posting (`invalid_reasons`) and the rest go on.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from django.conf import settings

from ingestion import htmlbounds
from ingestion.textclean import clean_text, has_unsafe

if TYPE_CHECKING:
    from ingestion.fetching import Fetcher
    from ingestion.models import Source


# The source option in which what was learned of its stored upload is kept (the companies its
# rows name, Adapter.companies): the code's own, never shown or taken from a user.
UPLOAD_COMPANIES = "upload_companies"
INTERNAL_OPTIONS = frozenset({UPLOAD_COMPANIES})


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    """A source's options without the code's own (INTERNAL_OPTIONS)."""
    return {k: v for k, v in options.items() if k not in INTERNAL_OPTIONS}


class SourceFailed(Exception):
    """The source as a whole could not be read; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with one row: `row` is the 1-based data row (header excluded) of a CSV or
    JSON array, the line number of a JSONL file; `field` is "" when the row as a whole is
    unreadable (not valid JSON, not an object)."""

    row: int
    field: str
    message: str
    label: str = "row"  # "line" for JSONL
    # The row repeats an earlier one: it is skipped as a duplicate (the outcome `duplicate`),
    # not refused as an error.
    duplicate: bool = False

    def __str__(self) -> str:
        return f"{self.label} {self.row}: {self.message}"


@dataclass(slots=True)
class Posting:
    """A posting as a source lists it, mapped to Intake's fields. Text fields are plain
    strings ("" when absent); `description_html` is the source's HTML with any entity
    escaping of the transport undone once, not yet sanitized (the pipeline sanitizes)."""

    external_id: str
    # The company the posting names itself (an uploaded file's `company` column, a JSON-LD
    # hiringOrganization); "" for its source's. Kept only from adapters whose
    # `row_companies` is set: their jobs are stored under it.
    company: str = ""
    title: str = ""
    url: str = ""
    location: str = ""
    remote: bool | None = None
    workplace_type: str = ""  # remote | hybrid | onsite | ""
    employment_type: str = ""  # as given; the pipeline normalizes it
    department: str = ""
    description_html: str = ""
    requirements_html: str = ""
    posted_at: datetime | None = None
    valid_through: datetime | None = None
    salary_min: Decimal | None = None
    salary_max: Decimal | None = None
    salary_currency: str = ""
    salary_period: str = ""  # hour | day | week | month | year | ""
    salary_text: str = ""
    # The listing lacked the description: the ingesting stage calls fetch_detail.
    needs_detail: bool = False
    # Non-empty: the posting is `invalid` and each reason names the field (and row).
    invalid_reasons: list[str] = field(default_factory=list)
    # Non-empty: the posting repeats an earlier one of the same listing (a URL given twice
    # in a URL list) and is `duplicate`; this says which ("row 21: duplicate of row 1").
    duplicate_of: str = ""
    # 1-based data row in an uploaded file or URL list.
    row: int | None = None
    # The hash of the raw record the posting was read from (RawRecord), stored with its job;
    # "" from adapters that give none.
    raw_hash: str = ""


@dataclass(slots=True)
class RawRecord:
    """A record of a source read but not yet mapped to a Posting: its key, read cheaply, and
    the salted hash of the whole record. The listing tells an unchanged one from its stored
    job's raw hash and maps (`posting()`) only the others."""

    # As the mapping would read them ("" company: the source's).
    external_id: str
    company: str
    raw_hash: str
    row: int | None
    # What the record weighs in a batch: its text, about.
    size: int
    record: Any
    mapper: Callable[[Any, int | None], Posting]

    def posting(self) -> Posting:
        posting = self.mapper(self.record, self.row)
        posting.raw_hash = self.raw_hash
        return posting


# Posting's text fields, and those whose length has no column to fit (a longer value is
# refused, not cut: a description cut short would be stored as if whole), by the name users
# know them by.
_TEXT_FIELDS = tuple(f.name for f in fields(Posting) if f.type == "str")
_LONG_TEXT_FIELDS = {"description_html": "description", "requirements_html": "requirements"}
_text_values = operator.attrgetter(*_TEXT_FIELDS)


def posting_problems(posting: Posting) -> list[tuple[str, str]]:
    """Make `posting` storable, in place: control characters and lone surrogates out of its
    text (ingestion.textclean), and a description or requirements longer than
    INTAKE_DESCRIPTION_MAX_CHARS, or beyond ingestion.htmlbounds, emptied. Returns each
    refused field as (field, message)."""
    values = _text_values(posting)
    if has_unsafe("".join(values)):  # one check for all of them: the usual answer is no
        for name, value in zip(_TEXT_FIELDS, values, strict=True):
            setattr(posting, name, clean_text(value))
    limit = settings.INTAKE_DESCRIPTION_MAX_CHARS
    problems = []
    for name, label in _LONG_TEXT_FIELDS.items():
        value = getattr(posting, name)
        if len(value) > limit:
            problem = f"is longer than {limit:,} characters"
        else:
            # Sanitizing and reading it as text would parse it: a deep one costs minutes.
            problem = htmlbounds.problem(value)
        if problem:
            setattr(posting, name, "")  # not kept: the posting is refused
            problems.append((label, f"{label} {problem}"))
    return problems


def posting_checked(posting: Posting) -> Posting:
    """`posting` made storable (posting_problems), a refused field added to its
    invalid_reasons; the reasons themselves cleaned (they quote what the source sent)."""
    for _label, message in posting_problems(posting):
        posting.invalid_reasons.append(message)
    posting.invalid_reasons = [clean_text(reason) for reason in posting.invalid_reasons]
    return posting


class Adapter:
    """Base class: one subclass per source kind, registered in ingestion.adapters.

    The pipeline calls `postings()` and `detail()`, which check what the subclass's
    `list_postings()` and `fetch_detail()` produce (posting_checked). Each adapter module
    maps one raw record of its source to a Posting with a function named `to_posting`."""

    kind: ClassVar[str]
    # The source's postings may each belong to another company (an aggregator's export): a
    # posting's `company`, when given, is its job's company (the source's is the default).
    row_companies: ClassVar[bool] = False
    # The source is read from its stored upload alone (no fetcher): any worker can read it
    # (ingestion.pipeline.readahead).
    reads_upload: ClassVar[bool] = False

    def __init__(self, source: Source, fetcher: Fetcher) -> None:
        self.source = source
        self.fetcher = fetcher

    def list_postings(self) -> Iterator[Posting]:
        raise NotImplementedError

    def fetch_detail(self, posting: Posting) -> Posting:
        """Fill in what the listing lacked (called only when `posting.needs_detail`)."""
        return posting

    def postings(self) -> Iterator[Posting]:
        """list_postings(), each posting checked: a refused field makes it invalid."""
        for posting in self.list_postings():
            if not self.row_companies:
                posting.company = ""
            yield posting_checked(posting)

    def records(self, raw_hash: Callable[[str], str]) -> Iterator[Posting | RawRecord]:
        """postings(); an adapter that can read a record's key before mapping it yields
        RawRecords instead (`raw_hash` of a text fixed by the whole record), so that the
        listing maps only the records it cannot tell unchanged. Only for records that hold
        the whole posting (no detail to fetch): a RunItem of an unchanged one takes its title
        and URL from the stored job."""
        return self.postings()

    @classmethod
    def companies(cls, source: Source) -> frozenset[str] | None:
        """The companies `source`'s jobs can be stored under, known before it is listed (the
        first part of their unique key), or None when only its listing can tell: sources with
        no company in common can be listed at the same time (ingestion.pipeline.groups)."""
        if cls.row_companies:
            return None
        return frozenset({source.company})

    @classmethod
    def check_upload(cls, fileobj: BinaryIO, fmt: str) -> Iterator[list[RowError]]:
        """The errors of each row of an uploaded file in format `fmt` (empty: a good row), as
        a run would find them but without the network; SourceFailed for a file unusable as
        a whole. Only for kinds that read an upload (their registry entry's `reads_upload`)."""
        raise NotImplementedError

    @classmethod
    def company_in_upload(cls, fileobj: BinaryIO, fmt: str) -> str:
        """A company name for a source added without one, read from its uploaded file (""
        when it names none). Only for kinds that read an upload."""
        return ""

    @classmethod
    def check_stored(cls, fileobj: BinaryIO, fmt: str) -> None:
        """Refuse (UploadError) a stored upload no run could read; by default none is."""

    def detail(self, posting: Posting) -> Posting:
        """fetch_detail(), checked; ValueError (the job's error) for a refused field."""
        detailed = self.fetch_detail(posting)
        problems = posting_problems(detailed)
        if problems:
            raise ValueError("; ".join(message for _label, message in problems))
        return detailed

    @classmethod
    def board_in_url(
        cls, host: str, segments: list[str], query: str
    ) -> tuple[str, dict[str, str]] | None:
        """(identifier, options) when a URL (its lowercase host, its unquoted path segments,
        its query) is a board of this kind; asked for kinds whose registry entry says
        `board` (ingestion.adapters.recognize)."""
        return None

    @classmethod
    def clean_identifier(cls, identifier: str) -> str:
        """Normalize a user-typed identifier or raise ValueError with a message for them."""
        identifier = identifier.strip()
        if not identifier:
            raise ValueError("An identifier is required.")
        return identifier

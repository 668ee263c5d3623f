"""The one small interface every source adapter implements, and the normalized posting shape
they all produce.

An adapter lists a source's postings as an iterator (a 50,000-posting board is streamed, never
held whole) and, when a listing lacks a posting's description, fetches its detail. It raises
SourceFailed for a failure of the whole source (board missing, network down); a problem with
one posting is reported on that posting (`invalid_reasons`) and the rest go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ingestion.fetching import Fetcher
    from ingestion.models import Source


class SourceFailed(Exception):
    """The source as a whole could not be read; the message says why, for the user."""


@dataclass(slots=True)
class Posting:
    """A posting as a source lists it, mapped to Intake's fields. Text fields are plain
    strings ("" when absent); `description_html` is the source's HTML with any entity
    escaping of the transport undone once, not yet sanitized (the pipeline sanitizes)."""

    external_id: str
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
    # 1-based data row in an uploaded file or URL list.
    row: int | None = None


class Adapter:
    """Base class: one subclass per source kind, registered in ingestion.adapters."""

    kind: ClassVar[str]

    def __init__(self, source: Source, fetcher: Fetcher) -> None:
        self.source = source
        self.fetcher = fetcher

    def list_postings(self) -> Iterator[Posting]:
        raise NotImplementedError

    def fetch_detail(self, posting: Posting) -> Posting:
        """Fill in what the listing lacked (called only when `posting.needs_detail`)."""
        return posting

    @classmethod
    def clean_identifier(cls, identifier: str) -> str:
        """Normalize a user-typed identifier or raise ValueError with a message for them."""
        identifier = identifier.strip()
        if not identifier:
            raise ValueError("An identifier is required.")
        return identifier

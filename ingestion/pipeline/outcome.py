"""What listing one source gave (`SourceOutcome`): counted by the listing
(ingestion.pipeline.diff), shown in the run's feed, kept in its summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ingestion.models import ItemOutcome, Source

# Companies named in a source's summary (most postings first); the count says how many more.
SUMMARY_COMPANIES_MAX = 20


@dataclass
class SourceOutcome:
    """What listing one source gave: shown in the feed, kept in the run's summary."""

    source_id: int
    company: str
    kind: str
    label: str
    listed: int = 0
    complete: bool = False
    error: str = ""
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ItemOutcome.values, 0))
    expiry_note: str = ""
    sample: list[str] = field(default_factory=list)
    # Postings listed per company, for sources whose rows name their own (an aggregator's
    # file); empty otherwise: every posting is the source's company's.
    companies: Counter[str] = field(default_factory=Counter)
    # Batches of the listing whose postings another worker mapped (ingestion.pipeline.mapping).
    mapped_elsewhere: int = 0
    # Batches of the listing another worker read (ingestion.pipeline.readahead).
    read_elsewhere: int = 0

    @property
    def valid_listed(self) -> int:
        return self.listed - self.counts[ItemOutcome.INVALID] - self.counts[ItemOutcome.ERROR]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sourceId": self.source_id,
            "company": self.company,
            "kind": self.kind,
            "label": self.label,
            "listed": self.listed,
            "complete": self.complete,
            "error": self.error,
            "seconds": round(self.seconds, 2),
            "counts": dict(self.counts),
            "expiryNote": self.expiry_note,
            "companies": [
                {"company": name, "listed": count}
                for name, count in self.companies.most_common(SUMMARY_COMPANIES_MAX)
            ],
            "companiesCount": len(self.companies),
            "mappedElsewhere": self.mapped_elsewhere,
            "readElsewhere": self.read_elsewhere,
        }


def source_label(source: Source) -> str:
    return f"{source.company} ({source.get_kind_display()})"

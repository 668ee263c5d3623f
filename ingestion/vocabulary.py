"""The words a run's results are told in, everywhere: the live counters, the feed, the summary
bar, the runs history, the report, the admin and `manage.py ingest`. Every word comes from
one definition, ItemOutcome (what the diff decided of each posting) and JobStatus (what the
ingesting stage made of each job), with their labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ingestion import run_kinds
from ingestion.models import ItemOutcome, JobStatus
from runs.models import IngestionRun
from runs.numbers import number

# The job statuses the ingesting stage decides, and the snapshot counter (runs.models
# COUNT_FIELDS) that counts each.
JOB_COUNTERS: dict[str, str] = {
    JobStatus.READY: "ready",
    JobStatus.SKIPPED: "skipped",
    JobStatus.ERROR: "failed",
}


@dataclass(frozen=True)
class Counter:
    """One live counter: `label` and `value`, a link to the run's items it counts, and where
    run-live.js finds its value in an event's snapshot (`run[part][key]`)."""

    label: str
    value: int
    href: str
    part: str  # "outcomes" or "counts"
    key: str
    filter: str  # the item list's parameter: "outcome" or "status"
    name: str  # the outcome or job status


def outcome_counts(run: IngestionRun) -> dict[str, int]:
    """The run's items per outcome, as counted while it ran (every outcome, zero when none)."""
    counts = run.outcome_counts or {}
    return {value: int(counts.get(value, 0)) for value in ItemOutcome.values}


def job_counts(run: IngestionRun) -> dict[str, int]:
    """An ingest's jobs per status the ingesting stage decided."""
    snapshot = run.counts()
    return {status: snapshot[counter] for status, counter in JOB_COUNTERS.items()}


def run_counters(run: IngestionRun, page_url: str) -> list[Counter]:
    """The live counters of a preview or ingest, each a link to its items on `page_url`: every
    outcome, then (an ingest) the jobs per status."""
    counts = outcome_counts(run)
    counters = [
        Counter(
            label=label,
            value=counts[value],
            href=f"{page_url}?outcome={value}#run-items",
            part="outcomes",
            key=value,
            filter="outcome",
            name=value,
        )
        for value, label in ItemOutcome.choices
    ]
    if run.kind == run_kinds.INGEST:
        labels = dict(JobStatus.choices)
        jobs = job_counts(run)
        counters += [
            Counter(
                label=f"Jobs {labels[status].lower()}",
                value=jobs[status],
                href=f"{page_url}?status={status}#run-items",
                part="counts",
                key=counter,
                filter="status",
                name=status,
            )
            for status, counter in JOB_COUNTERS.items()
        ]
    return counters


def outcomes_text(counts: Mapping[str, int], *, skip_zero: bool = True) -> str:
    """'3 new, 1 updated, 2 invalid': the outcomes in their order and words."""
    parts = [
        f"{number(counts.get(value, 0))} {label.lower()}"
        for value, label in ItemOutcome.choices
        if counts.get(value, 0) or not skip_zero
    ]
    return ", ".join(parts) if parts else "no postings"


def jobs_text(counts: Mapping[str, int]) -> str:
    """'11,000 ready, 9 skipped, 1 error': an ingest's jobs per status (snapshot counters)."""
    labels = dict(JobStatus.choices)
    return ", ".join(
        f"{number(counts.get(counter, 0))} {labels[status].lower()}"
        for status, counter in JOB_COUNTERS.items()
    )


@dataclass(frozen=True)
class ListingRow:
    """One source of a run's listing: where it is (waiting, listing, listed, failed, not
    read), how many postings it gave and how long it took."""

    source_id: int
    label: str
    state: str
    listed: int
    seconds: float | None
    error: str


# What a listing row's state reads as.
LISTING_STATES = {
    "waiting": "Waiting",
    "listing": "Listing…",
    "listed": "Listed",
    "failed": "Failed",
    "unread": "Not read",
}

# Sources not listed yet: while any is, an ingest's processing total is still growing.
OPEN_LISTING_STATES = ("waiting", "listing")


def listing_rows(run: IngestionRun) -> list[ListingRow]:
    """A row per source the run lists, from its config (every source) and its summary (the
    sources done); empty for a run that reads no board (a retry or a resume)."""
    if run.config.get("retry_of") or run.config.get("resume_of"):
        return []
    done = {entry.get("sourceId"): entry for entry in run.summary.get("sources", [])}
    # Sources being listed, with the postings each had read when it last said so (sources
    # without a company in common are listed at the same time).
    listing = {int(k): int(v) for k, v in (run.summary.get("listing") or {}).items()}
    # Postings listed so far, each an item with an outcome other than expired: what the done
    # sources did not list is the current source's.
    counts = outcome_counts(run)
    read = sum(counts.values()) - counts[ItemOutcome.EXPIRED]
    current = max(0, read - sum(int(entry.get("listed") or 0) for entry in done.values()))
    rows = []
    listing_seen = False
    for entry in run.config.get("sources") or []:
        source_id = entry.get("id")
        label = f"{entry.get('company', '')} ({entry.get('kind', '')})"
        outcome = done.get(source_id)
        if outcome is not None:
            rows.append(
                ListingRow(
                    source_id=source_id,
                    label=outcome.get("label") or label,
                    state="failed" if outcome.get("error") else "listed",
                    listed=int(outcome.get("listed") or 0),
                    seconds=outcome.get("seconds"),
                    error=str(outcome.get("error") or ""),
                )
            )
            continue
        if run.is_terminal:
            state, listed = "unread", 0
        elif source_id in listing:
            # One source listed at a time: all that was read since the others is its own.
            one = len(listing) == 1
            state, listed = "listing", current if one else listing[source_id]
        elif not listing and not listing_seen and run.started_at:
            state, listed, listing_seen = "listing", current, True
        else:
            state, listed = "waiting", 0
        rows.append(ListingRow(source_id, label, state, listed, None, ""))
    return rows

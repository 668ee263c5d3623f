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

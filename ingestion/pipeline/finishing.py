"""The jobs the listing writes once, processed (ingestion.pipeline.content), in its batch's
transaction: which status each takes, and what the ingesting stage does once it has written
a batch's jobs — their items' verdicts, the jobs' events, the near-duplicate lookup's
fingerprints."""

from __future__ import annotations

from collections.abc import Callable

from ingestion import dedupe, events, store
from ingestion.adapters import Posting
from ingestion.models import ItemOutcome, JobStatus
from ingestion.pipeline.content import Content

# A job the listing writes processed: its item, its near-duplicate candidate and match, its
# status and its processed fields.
Final = tuple[store.ItemRow, dedupe.Candidate, "dedupe.Match | None", str, Content]


def final_jobs(
    near: list[tuple[store.ItemRow, dedupe.Candidate, dedupe.Match | None]],
    postings: list[Posting | None],
    items: list[store.ItemRow],
    content: Callable[[Posting], Content],
) -> list[Final]:
    """The jobs the listing decided, each with the status the ingesting stage would give
    it: skipped when a near-duplicate, error when its processing (`content`) failed, else
    ready."""
    if not near:
        return []
    posting_of = {id(item): posting for posting, item in zip(postings, items, strict=True)}
    final: list[Final] = []
    for item, candidate, match in near:
        posting = posting_of[id(item)]
        assert posting is not None  # decided postings are never unmapped records
        done = content(posting)
        if match is not None:
            status = JobStatus.SKIPPED
        elif done.error:
            status = JobStatus.ERROR
        else:
            status = JobStatus.READY
        final.append((item, candidate, match, status, done))
    return final


def finish(run_id: int, owner_id: int, final: list[Final]) -> None:
    """What the ingesting stage does once it has written a batch's jobs, for those the
    listing wrote processed (in its transaction): their items' verdicts, the jobs' events,
    and the near-duplicate lookup's fingerprints."""
    if not final:
        return
    for item, _, _, status, done in final:
        item.job_status = status
        item.attempts = 1
        if done.error:
            item.reason = done.error
    written = [
        (item.job_id, candidate, match, status)
        for item, candidate, match, status, _ in final
        if item.job_id is not None
    ]
    for status in (JobStatus.READY, JobStatus.ERROR):
        events.jobs_changed(
            events.JOB_UPDATED,
            run_id=run_id,
            job_ids=[pk for pk, _, _, s in written if s == status],
            status=status,
            stage="processing",
        )
    events.duplicates_found(
        run_id=run_id,
        originals={
            pk: match.canonical.job_id
            for pk, _, match, status in written
            if status == JobStatus.SKIPPED
            and match is not None
            and match.canonical.job_id is not None
        },
    )
    # A new posting's job was inserted by this batch (upsert_jobs' new_keys): it has no
    # fingerprint to replace or drop.
    new = {item.job_id for item, *_ in final if item.outcome == ItemOutcome.NEW}
    for is_new in (True, False):
        dedupe.store_fingerprints(
            owner_id,
            [
                (pk, candidate.simhash, candidate.company or "")
                for pk, candidate, _, status in written
                if status == JobStatus.READY and (pk in new) == is_new
            ],
            new=is_new,
        )
    store.drop_fingerprints(
        [pk for pk, _, _, status in written if status != JobStatus.READY and pk not in new]
    )

"""The listing's near-duplicate decisions (ingestion.dedupe.NearDuplicates), batch by batch in
listing order: which new and updated postings are near-duplicates of a stored job or of an
earlier posting of the run, and what the jobs written pending carry of that decision."""

from __future__ import annotations

from ingestion import dedupe, normalize, simhash, store
from ingestion.adapters import Posting
from ingestion.models import ItemOutcome, Source
from ingestion.pipeline.unchanged import job_company

# (item, candidate, match) of a posting the listing decided.
Decided = tuple[store.ItemRow, dedupe.Candidate, "dedupe.Match | None"]


def near_duplicates(
    batch: list[Posting | None],
    items: list[store.ItemRow],
    *,
    source: Source,
    near: dedupe.NearDuplicates,
    fingerprints: dict[int, tuple[int, int]],
    boilerplate: frozenset[int],
    lines: frozenset[bytes] | None,
    counts: dict[str, int],
) -> list[Decided]:
    """Decide which new and updated postings of the batch are near-duplicates, in listing
    order (`near`), and mark their items `duplicate` with the reason (`counts`, the source's
    outcome counts, follow). Returns (item, candidate, match) of every posting decided here
    (those the listing has the text of); the ingesting stage decides the others.
    `fingerprints` are those computed ahead (ingestion.pipeline.mapping), by the posting's id."""
    decided: list[tuple[store.ItemRow, dedupe.Candidate, Posting]] = []
    texts: list[str] = []
    # Those whose simhash was not computed ahead (ingestion.pipeline.mapping).
    unsized: list[dedupe.Candidate] = []
    for posting, item in zip(batch, items, strict=True):
        if item.outcome not in (ItemOutcome.NEW, ItemOutcome.UPDATED) or posting is None:
            continue
        if posting.needs_detail:
            continue
        title = posting.title.strip()
        if item.outcome == ItemOutcome.UPDATED and item.job_id:
            label = dedupe.job_label(item.job_id, title)
        else:
            label = f"'{title}' ({_posting_where(posting)})"
        company = job_company(posting, source)
        candidate = dedupe.Candidate(0, company=company, title=title, label=label)
        decided.append((item, candidate, posting))
        ahead = fingerprints.get(id(posting))
        if ahead is not None:
            candidate.simhash, candidate.words = ahead
            continue
        # The same words on the same lines as the ingesting stage's sanitized text, without
        # sanitizing: the listing is the run's critical path (ingestion.normalize.plaintext).
        texts.append(normalize.fingerprint_text(posting.description_html))
        unsized.append(candidate)
    if not decided:
        return []
    sized = simhash.simhash_many_sized(texts, boilerplate=boilerplate, lines=lines)
    for candidate, (value, words) in zip(unsized, sized, strict=True):
        candidate.simhash, candidate.words = value, words
    matches = near.decide([candidate for _, candidate, _ in decided])
    results: list[Decided] = []
    for (item, candidate, _), match in zip(decided, matches, strict=True):
        if match is not None:
            counts[item.outcome] -= 1
            counts[ItemOutcome.DUPLICATE] += 1
            item.outcome = ItemOutcome.DUPLICATE
            item.reason = match.reason
        results.append((item, candidate, match))
    return results


def listed_decisions(decided: list[Decided]) -> list[tuple[int, int, int | None]]:
    """(job id, simhash, the job it duplicates or None) of the postings the listing decided."""
    return [
        (item.job_id, candidate.simhash, match.canonical.job_id if match is not None else None)
        for item, candidate, match in decided
        if item.job_id is not None
    ]


def _posting_where(posting: Posting) -> str:
    if posting.row is not None:
        return f"row {posting.row}"
    return f"id {posting.external_id.strip()}"

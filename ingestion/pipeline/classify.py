"""How the listing classifies one posting against the stored jobs (ingestion.pipeline.diff):
invalid, a duplicate of an earlier posting of the listing (its key or its content), filtered,
new, unchanged or updated."""

from __future__ import annotations

from collections.abc import Callable

from ingestion.adapters import Posting
from ingestion.models import ItemOutcome, JobStatus
from ingestion.pipeline.filters import PostingFilter
from ingestion.pipeline.unchanged import Stored

# Invalid reasons that mean "we could not read it" rather than "it is malformed".
FETCH_FAILED_PREFIX = "fetch failed"


class Classifier:
    """The classifying of one source's listing. `keys` and `contents` are the listing's own
    (company, key) -> how the first posting with it is named and (company, content hash) ->
    that posting's key, shared with the records told unchanged without being classified
    (ingestion.pipeline.unchanged)."""

    def __init__(
        self,
        posting_filter: PostingFilter,
        *,
        keys: dict[tuple[str, str], str],
        contents: dict[tuple[str, str], str],
    ) -> None:
        self.filter = posting_filter
        self._keys = keys
        self._contents = contents

    def classify(
        self,
        posting: Posting,
        stored: dict[tuple[str, str], Stored],
        company: str,
        content_hash: Callable[[Posting], str],
    ) -> tuple[str, str, str]:
        """(outcome, reason, content hash) of one posting whose job is `company`'s."""
        key = posting.external_id.strip()
        label = _posting_label(posting)
        if posting.invalid_reasons:
            reasons = "; ".join(posting.invalid_reasons)
            fetch_failed = any(
                r.lower().startswith(FETCH_FAILED_PREFIX) for r in posting.invalid_reasons
            )
            return (ItemOutcome.ERROR if fetch_failed else ItemOutcome.INVALID), reasons, ""
        if not key:
            return ItemOutcome.INVALID, "the posting has no id", ""
        if posting.duplicate_of:
            return ItemOutcome.DUPLICATE, posting.duplicate_of, ""
        # The same id under two companies is two postings; the same content under two
        # companies too (an aggregator's companies may share a template).
        if (company, key) in self._keys:
            return (
                ItemOutcome.DUPLICATE,
                f"listed twice: same id as {self._keys[company, key]}",
                "",
            )
        self._keys[company, key] = label
        chash = content_hash(posting)
        if (company, chash) in self._contents:
            return (
                ItemOutcome.DUPLICATE,
                f"same content as posting '{self._contents[company, chash]}' under another id",
                chash,
            )
        self._contents[company, chash] = key
        reason = self.filter.reason(posting)
        if reason:
            return ItemOutcome.FILTERED, reason, chash
        if (company, key) not in stored:
            return ItemOutcome.NEW, "", chash
        _, stored_hash, status, *_ = stored[company, key]
        if status == JobStatus.EXPIRED:
            return ItemOutcome.UPDATED, "listed again after it expired", chash
        if stored_hash == chash:
            return ItemOutcome.UNCHANGED, "", chash
        return ItemOutcome.UPDATED, "content changed", chash


def _posting_label(posting: Posting) -> str:
    if posting.row is not None:
        return f"row {posting.row}"
    return f"'{posting.external_id}'"

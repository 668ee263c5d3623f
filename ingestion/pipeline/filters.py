"""A source's filters: include/exclude keywords, locations, remote only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ingestion.adapters.base import Posting


class PostingFilter:
    """Compiled once per source per run; `reason(posting)` says why a posting is filtered
    out, or None when it passes. Keywords match whole words, case-insensitively, in the title
    and description; locations match as substrings of the posting's location."""

    def __init__(self, filters: Mapping[str, Any]) -> None:
        self.include = _words_pattern(filters.get("include_keywords") or [])
        self.exclude = _words_pattern(filters.get("exclude_keywords") or [])
        self.locations = [loc.strip().lower() for loc in filters.get("locations") or [] if loc]
        self.remote_only = bool(filters.get("remote_only"))

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude or self.locations or self.remote_only)

    @property
    def reads_text(self) -> bool:
        """Whether `reason` reads a posting's description."""
        return bool(self.include or self.exclude)

    def reason(self, posting: Posting) -> str | None:
        if not self.active:
            return None
        haystack = f"{posting.title}\n{posting.description_html}"
        if self.include and not self.include.search(haystack):
            return "matches none of the include keywords"
        if self.exclude:
            found = self.exclude.search(haystack)
            if found:
                return f"matches the exclude keyword '{found.group(0)}'"
        remote = posting.remote is True or posting.workplace_type == "remote"
        if self.remote_only and not remote and "remote" not in posting.location.lower():
            return "not remote (remote only)"
        if self.locations:
            location = posting.location.lower()
            wanted = any(loc in location for loc in self.locations)
            if not wanted and not (remote and "remote" in self.locations):
                return f"location '{posting.location or 'unknown'}' is not one of the locations"
        return None


def _words_pattern(words: list[str]) -> re.Pattern[str] | None:
    words = [w.strip() for w in words if w and w.strip()]
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

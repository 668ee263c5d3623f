"""Where the work happens: remote, hybrid or onsite, from what the board says, and the
location text tidied."""

from __future__ import annotations

import functools
import re

# Each stored value and the words pages (rows and the jobs filter alike) show for it.
WORKPLACE_LABELS = {"remote": "Remote", "hybrid": "Hybrid", "onsite": "On-site"}
WORKPLACE_TYPES = tuple(WORKPLACE_LABELS)
_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")
_WORKPLACE_VALUES = {
    "remote": "remote",
    "fully remote": "remote",
    "telecommute": "remote",  # schema.org jobLocationType
    "work from home": "remote",
    "wfh": "remote",
    "hybrid": "hybrid",
    "onsite": "onsite",
    "on site": "onsite",
    "in office": "onsite",
    "office": "onsite",
    "in person": "onsite",
    "on premises": "onsite",
}
_LOCATION_HYBRID_RE = re.compile(r"\bhybrid\b", re.IGNORECASE)
_LOCATION_REMOTE_RE = re.compile(
    r"\b(remote|anywhere|work from home|wfh|telecommute|distributed)\b", re.IGNORECASE
)
_LOCATION_NOT_REMOTE_RE = re.compile(r"\b(no|not|non)[ -]remote\b", re.IGNORECASE)
_LOCATION_ONSITE_RE = re.compile(r"\b(on-?site|in[ -]office|in[ -]person)\b", re.IGNORECASE)
# In the description only unambiguous statements about the role count: "remote-first
# company" says nothing about this role.
_TEXT_REMOTE_RE = re.compile(
    r"\b(this (role|position|job) is (fully |100% )?remote|fully remote (role|position)"
    r"|100% remote|(remote|work from home) (role|position))\b",
    re.IGNORECASE,
)
_TEXT_HYBRID_RE = re.compile(
    r"\b(this (role|position|job) is hybrid|hybrid (role|position|work model|schedule))\b",
    re.IGNORECASE,
)


def effective_workplace(workplace_type: str, remote: bool | None) -> str:
    """The workplace a stored job is shown and filtered as: its normalized type, else what the
    board's remote flag says (not remote: on-site), else "" (unknown). The jobs filter
    (ingestion.selectors.jobs_for_owner) selects by the same rule."""
    if workplace_type:
        return workplace_type
    if remote is None:
        return ""
    return "remote" if remote else "onsite"


# A board has a few locations and workplace words, repeated in every posting: each is read
# once per process (the results depend on nothing but the value).
_CACHED = 4096


@functools.lru_cache(maxsize=_CACHED)
def _workplace_from_words(value: str) -> str:
    if _LOCATION_HYBRID_RE.search(value):
        return "hybrid"
    if _LOCATION_REMOTE_RE.search(value) and not _LOCATION_NOT_REMOTE_RE.search(value):
        return "remote"
    if _LOCATION_ONSITE_RE.search(value):
        return "onsite"
    return ""


def normalize_workplace(
    location: str, workplace_type: str, remote: bool | None, text: str = ""
) -> tuple[bool | None, str]:
    """(remote, workplace_type) with workplace_type one of remote | hybrid | onsite | "".

    The board's explicit workplace type wins (Ashby's workplaceType over its isRemote), then
    its remote flag, then what the location says ("Remote - US", "Anywhere", "Hybrid"), then
    an unambiguous sentence of the description; otherwise unknown (None, ""). Hybrid and
    onsite roles are not remote."""
    kind = _workplace_kind(workplace_type or "")
    if kind:
        return kind == "remote", kind
    words = _workplace_from_words(location or "")
    if remote is True:
        return True, "remote"
    if remote is False:
        # The flag only says "not remote": the location may still tell hybrid from onsite.
        return False, words if words in ("hybrid", "onsite") else ""
    if words:
        return words == "remote", words
    if text:
        lowered = text.lower()
        if _states(_TEXT_HYBRID_RE, lowered, ("hybrid",)):
            return False, "hybrid"
        if _states(_TEXT_REMOTE_RE, lowered, ("remote", "work from home")):
            return True, "remote"
    return None, ""


@functools.lru_cache(maxsize=_CACHED)
def _workplace_kind(workplace_type: str) -> str:
    """remote | hybrid | onsite for a board's explicit workplace type, else ""."""
    return _WORKPLACE_VALUES.get(_NON_ALNUM_RE.sub(" ", workplace_type.lower()).strip(), "")


# Every sentence the description patterns accept contains one of their keywords, with at most
# this many characters before it and after it.
_STATEMENT_REACH = 32
_NON_WORD_RE = re.compile(r"\W")


def _states(pattern: re.Pattern[str], lowered: str, keywords: tuple[str, ...]) -> bool:
    """Whether `pattern` matches around some occurrence of a keyword in `lowered`. A search
    of the whole text is costly (every word boundary is a candidate start); most texts have
    no keyword, and the others only a few."""
    for keyword in keywords:
        at = lowered.find(keyword)
        while at >= 0:
            # The window ends at a word's end, so the pattern's closing \b is decided by the
            # real next character (search() sees the text before `pos` for \b).
            end = _NON_WORD_RE.search(lowered, at + len(keyword) + _STATEMENT_REACH)
            if pattern.search(
                lowered, max(0, at - _STATEMENT_REACH), end.start() if end else len(lowered)
            ):
                return True
            at = lowered.find(keyword, at + 1)
    return False


# --- Locations ------------------------------------------------------------------------------

_LOCATION_SPLIT_RE = re.compile(r"\s*(?:[;|\n•·]|\s/\s)\s*")
_LOCATION_PART_RE = re.compile(r"\s*,\s*")


@functools.lru_cache(maxsize=_CACHED)
def normalize_location(value: str) -> str:
    """Tidy a location: collapse whitespace, one ", " between a place's parts, "; " between
    places (boards separate them with ; | / • or new lines), empty parts dropped and repeated
    places (ignoring case) kept once."""
    if not value:
        return ""
    places: list[str] = []
    seen: set[str] = set()
    for raw in _LOCATION_SPLIT_RE.split(value):
        parts = [" ".join(p.split()).strip(" -–—") for p in _LOCATION_PART_RE.split(raw)]
        place = ", ".join(p for p in parts if p)
        if place and place.casefold() not in seen:
            seen.add(place.casefold())
            places.append(place)
    return "; ".join(places)

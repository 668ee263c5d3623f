"""Employment types: a board's wording ("Full-time", "CONTRACTOR", "Intern") as one of
EMPLOYMENT_TYPES."""

from __future__ import annotations

import functools
import re

# Each stored value and the words pages show for it ("Full-time", never "full_time").
EMPLOYMENT_LABELS = {
    "full_time": "Full-time",
    "part_time": "Part-time",
    "contract": "Contract",
    "temporary": "Temporary",
    "internship": "Internship",
    "volunteer": "Volunteer",
    "per_diem": "Per diem",
    "other": "Other",
}
EMPLOYMENT_TYPES = tuple(EMPLOYMENT_LABELS)
# Checked in order on the words of the value: the more specific kind wins when a board says
# two things ("Part-time internship" is an internship, "Full-time, fixed term" is temporary).
_EMPLOYMENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("internship", r"\b(intern|interns|internship|co ?op|apprentice|apprenticeship|trainee)\b"),
        ("volunteer", r"\b(volunteer|volunteering|unpaid)\b"),
        ("per_diem", r"\b(per ?diem|prn)\b"),
        ("temporary", r"\b(temporary|temp|seasonal|fixed ?term|interim)\b"),
        ("contract", r"\b(contract|contractor|contracting|freelance|freelancer|consultant)\b"),
        ("part_time", r"\b(part ?time)\b"),
        ("full_time", r"\b(full ?time|permanent|regular|fte|salaried|employee)\b"),
        ("other", r"\b(other)\b"),
    )
)
_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")


# A board has a few employment types, repeated in every posting: each is read once per
# process (the result depends on nothing but the value).
@functools.lru_cache(maxsize=1024)
def normalize_employment_type(value: str) -> str:
    """One of EMPLOYMENT_TYPES for a board's employment type or commitment ("Full-time",
    "FULL_TIME", "Permanent", "Intern", "CONTRACTOR", "Part-Time - Remote" ...), "" for an
    empty value and "other" for one that names none of them."""
    words = _NON_ALNUM_RE.sub(" ", (value or "").lower()).strip()
    if not words:
        return ""
    for kind, pattern in _EMPLOYMENT_PATTERNS:
        if pattern.search(words):
            return kind
    return "other"

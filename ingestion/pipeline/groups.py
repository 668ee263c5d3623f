"""Which of a run's sources may be listed at the same time, on different workers.

A listing decides everything per company: a job's key is (owner, company, external id), and
near-duplicates are postings of one company (unless INTAKE_DEDUPE_ACROSS_COMPANIES). Sources
that share no company therefore decide exactly the same things whether they are listed one
after another or side by side; sources that may share one are listed in the run's order, one
after another, as a single group. A source whose companies only its listing can tell (an
aggregator's file naming one per row) may share one with any other: its run lists serially.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from ingestion.adapters import adapter_class
from ingestion.models import Source

# Groups of sources a run lists at once at most, per live worker: a few per worker let the
# workers even out sources of different sizes; more would cut each group's chunks smaller.
GROUPS_PER_WORKER = 2

Entry = dict[str, Any]


def company_key(company: str) -> str:
    """A company as near-duplicate decisions compare it (ingestion.dedupe): case and spacing
    do not tell two companies apart."""
    return " ".join(company.split()).casefold()


def listing_groups(
    entries: Sequence[Entry], sources: Mapping[int, Source], *, workers: int
) -> list[list[Entry]]:
    """The run's source entries (its config's, in order) in groups to list at the same time,
    each group in the run's order; at most GROUPS_PER_WORKER × `workers` groups (the
    companies' groups dealt round-robin). One group when any two sources may share a company,
    when only one worker is alive or when INTAKE_LIST_SIDE_BY_SIDE is off. An entry whose
    source was deleted goes with the first."""
    whole = [list(entries)]
    if (
        workers < 2
        or len(entries) < 2
        or not settings.INTAKE_LIST_SIDE_BY_SIDE
        or settings.INTAKE_DEDUPE_ACROSS_COMPANIES
    ):
        return whole
    # Union of the entries (by position) that share a company: each entry's group leader.
    leader = list(range(len(entries)))

    def find(at: int) -> int:
        while leader[at] != at:
            leader[at] = leader[leader[at]]
            at = leader[at]
        return at

    owner_of: dict[str, int] = {}
    orphans: list[int] = []
    for at, entry in enumerate(entries):
        source = sources.get(entry.get("id"))  # type: ignore[arg-type]
        if source is None:
            orphans.append(at)
            continue
        names = adapter_class(source.kind).companies(source)
        if names is None:
            return whole
        for key in {company_key(name) for name in names}:
            if key in owner_of:
                a, b = find(owner_of[key]), find(at)
                leader[max(a, b)] = min(a, b)
            else:
                owner_of[key] = at
    members: dict[int, list[int]] = {}
    for at in range(len(entries)):
        if at not in orphans:
            members.setdefault(find(at), []).append(at)
    found = sorted(members.values())  # by each group's first entry
    if len(found) < 2:
        return whole
    count = min(len(found), GROUPS_PER_WORKER * workers)
    dealt: list[list[int]] = [[] for _ in range(count)]
    for number, group in enumerate(found):
        dealt[number % count].extend(group)
    dealt[0].extend(orphans)
    return [[entries[at] for at in sorted(group)] for group in dealt]

"""Near-duplicate detection: the same posting listed under another key (re-posted with a new
id, or on two boards), found by the simhash of its text.

Two simhashes within Hamming distance 3 agree on at least one of their four 16-bit bands
(pigeonhole: 3 differing bits touch at most 3 bands), so the stored candidates are found with
the indexed band columns of JobFingerprint (`ingestion_fingerprint_b0_co..b3_co`, each with
the owner before it and the company's key after it, so a probe within a company reads that
company's fingerprints alone) and only they are compared exactly — never a scan of the
owner's jobs. A fingerprint counts only while its
job is ready with that simhash: the few rows within the distance are checked against the job
table, so a fingerprint left behind by a job that moved on finds nothing.

What makes two postings near-duplicates (docs/ingestion.md): simhashes within
INTAKE_SIMHASH_DISTANCE bits, each with at least INTAKE_DEDUPE_MIN_WORDS words of its own
(boilerplate left out), the same company (unless INTAKE_DEDUPE_ACROSS_COMPANIES), and titles
that share INTAKE_DEDUPE_TITLE_SIMILARITY of their words. `NearDuplicates` decides a run's
postings in the order they are given (the listing's), so the same input gives the same
duplicates however many workers process it."""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ingestion import store
from ingestion.simhash import MASK64, bands

# The pigeonhole over four bands holds up to this distance.
MAX_DISTANCE = 3


def max_distance() -> int:
    """settings.INTAKE_SIMHASH_DISTANCE, validated against what the band lookup can find."""
    distance = settings.INTAKE_SIMHASH_DISTANCE
    if not isinstance(distance, int) or not 0 <= distance <= MAX_DISTANCE:
        raise ImproperlyConfigured(
            f"INTAKE_SIMHASH_DISTANCE must be an integer from 0 to {MAX_DISTANCE} (the "
            f"four-band lookup cannot find anything further apart), not {distance!r}."
        )
    return distance


@dataclass(slots=True)
class Candidate:
    """A posting to decide or to compare with: its simhash, the words it was computed from,
    its company and title (None: not known, not checked), how an item names it, and its
    job's id once it has one."""

    simhash: int
    words: int | None = None
    company: str | None = None
    title: str | None = None
    label: str = ""
    job_id: int | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """The earlier posting a candidate duplicates, and how close they are."""

    canonical: Candidate
    distance: int

    @property
    def reason(self) -> str:
        """Why the candidate is skipped: the job it duplicates (by id, which the run items
        page links, once it has one; a preview's new posting by its place in the listing)
        and how many of the 64 bits differ."""
        canonical = self.canonical
        label = canonical.label
        if canonical.job_id is not None and not label.startswith("job #"):
            label = f"{job_label(canonical.job_id, canonical.title or '')}, {label}"
        bits = "bit" if self.distance == 1 else "bits"
        return f"near-duplicate of {label} ({self.distance} {bits} apart)"


_WORD_RE = re.compile(r"[^\W_]+")


def _title_words(title: str) -> frozenset[str]:
    return frozenset(_WORD_RE.findall(title.lower()))


def titles_close(a: str, b: str, similarity: float) -> bool:
    """Whether two titles share at least `similarity` of their words (Jaccard)."""
    words_a, words_b = _title_words(a), _title_words(b)
    if not words_a and not words_b:
        return True
    return len(words_a & words_b) >= similarity * len(words_a | words_b)


class _Rules:
    """The settings that make two close simhashes a duplicate, read once per decision."""

    def __init__(self, across_companies: bool | None = None) -> None:
        self.distance = max_distance()
        self.min_words = settings.INTAKE_DEDUPE_MIN_WORDS
        across = settings.INTAKE_DEDUPE_ACROSS_COMPANIES
        self.across_companies = across if across_companies is None else across_companies
        self.title_similarity = settings.INTAKE_DEDUPE_TITLE_SIMILARITY

    def long_enough(self, candidate: Candidate) -> bool:
        return candidate.words is None or candidate.words >= self.min_words

    def alike(self, a: Candidate, b: Candidate) -> bool:
        """Whether two postings within the distance are the same posting."""
        if (
            not self.across_companies
            and a.company is not None
            and b.company is not None
            and a.company.strip().casefold() != b.company.strip().casefold()
        ):
            return False
        if a.title is not None and b.title is not None:
            return titles_close(a.title, b.title, self.title_similarity)
        return True


class _BandIndex:
    """Candidates by (band number, band value), each with a rank (lower is earlier seen):
    a lookup compares only the entries that share a band with the value looked up. Runs
    once per posting in the listing (one worker), hence the plain ints: a band's key is
    its number and value in one int, and simhashes are compared unsigned. Each band keeps
    its entries' values in a list of their own, so that the distances to all of them are
    taken by map() at C speed: most postings are near none of the entries they share a
    band with, and those need no Python work per entry."""

    def __init__(self) -> None:
        self._entries: dict[int, list[tuple[tuple[float, int], Candidate]]] = {}
        self._values: dict[int, list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, rank: tuple[float, int], candidate: Candidate) -> None:
        value = candidate.simhash & MASK64
        entry = (rank, candidate)
        entries, values = self._entries, self._values
        for band in range(4):
            key = (band << 16) | ((value >> (16 * band)) & 0xFFFF)
            found = entries.get(key)
            if found is None:
                entries[key] = [entry]
                values[key] = [value]
            else:
                found.append(entry)
                values[key].append(value)

    def earliest_match(self, candidate: Candidate, rules: _Rules) -> Match | None:
        """The earliest entry within the distance of `candidate` that is alike, if any."""
        value = candidate.simhash & MASK64
        limit = rules.distance
        close: list[tuple[tuple[float, int], int, Candidate]] = []
        for band in range(4):
            key = (band << 16) | ((value >> (16 * band)) & 0xFFFF)
            values = self._values.get(key)
            if not values:
                continue
            distances = list(map(int.bit_count, map(value.__xor__, values)))
            if min(distances) > limit:
                continue
            found = self._entries[key]
            close += [
                (found[at][0], distance, found[at][1])
                for at, distance in enumerate(distances)
                if distance <= limit
            ]
        # An entry sharing several bands with the value is listed once per band: the same
        # rank, the same answer.
        close.sort(key=_rank)
        for _, distance, entry in close:
            if rules.alike(candidate, entry):
                return Match(entry, distance)
        return None


def _rank(close: tuple[tuple[float, int], int, Candidate]) -> tuple[float, int]:
    return close[0]


def company_key(company: str) -> int:
    """The company as the lookup's band indexes hold it: a 31-bit hash of the name as
    `_Rules.alike` compares it (case and outer spaces aside). Postings of one company
    compare only with its stored jobs, so each probe reads only those, not every job of
    the owner sharing a band; a collision only adds candidates, which `alike` turns down.
    Stored in JobFingerprint: changing it means migrating the stored keys."""
    return zlib.crc32(company.strip().casefold().encode()) & 0x7FFFFFFF


def store_fingerprints(
    owner_id: int, jobs: Sequence[tuple[int, int, str]], *, new: bool = False
) -> None:
    """Record (job_id, simhash, company) of ready jobs of `owner_id` for the lookup,
    replacing what was recorded for them before (`new`: jobs inserted in this transaction,
    which have none: see store.store_fingerprints). In the caller's transaction, with the
    jobs' status."""
    store.store_fingerprints(
        [
            store.FingerprintRow(job_id, owner_id, value, *bands(value), company_key(company))
            for job_id, value, company in jobs
        ],
        new=new,
    )


def job_label(job_id: int, title: str) -> str:
    """How a reason names a stored job (the run items page links it)."""
    return f"job #{job_id} '{title}'"


def _stored_index(
    owner_id: int, candidates: Sequence[Candidate], ignored: Collection[int], rules: _Rules
) -> _BandIndex:
    """The owner's ready jobs within MAX_DISTANCE of any of `candidates` (but not
    `ignored`), ranked by (first_seen_at, id): found through the bands they share with them,
    and, unless the rules compare across companies, only those of each candidate's company
    (all of the owner's when a candidate's company is not known)."""
    companies: list[int] | None = None
    if not rules.across_companies and all(c.company is not None for c in candidates):
        companies = [company_key(c.company or "") for c in candidates]
    index = _BandIndex()
    seen: set[int] = set()
    for job_id, value, first_seen_at, company, title in store.near_fingerprints(
        owner_id, [c.simhash for c in candidates], MAX_DISTANCE, companies
    ):
        if value is not None and job_id not in ignored and job_id not in seen:
            seen.add(job_id)
            stored = Candidate(
                value, company=company, title=title, label=job_label(job_id, title), job_id=job_id
            )
            index.add((first_seen_at.timestamp(), job_id), stored)
    return index


class NearDuplicates:
    """Decides a run's postings one batch after another, in the order given: each is
    compared with the owner's stored ready jobs (the earliest seen wins) and then with the
    earlier postings given to this object that were not duplicates themselves.

    The jobs this run rewrites are named with `exclude()` as soon as they are known (an
    updated posting's job, a new posting's job once upserted): while the run goes on they
    change under the lookup (workers make them ready), so they are compared only as the
    postings given here — which makes the decisions the same whatever the timing."""

    def __init__(self, owner_id: int, *, across_companies: bool | None = None) -> None:
        self.owner_id = owner_id
        self.rules = _Rules(across_companies)
        self._listing = _BandIndex()
        self._position = 0
        self._excluded: set[int] = set()

    def exclude(self, job_ids: Collection[int]) -> None:
        self._excluded.update(job_ids)

    def decide(self, candidates: Sequence[Candidate]) -> list[Match | None]:
        """For each candidate, in order, the earlier posting it duplicates (or None)."""
        eligible = [c for c in candidates if self.rules.long_enough(c)]
        if not eligible:
            return [None] * len(candidates)
        stored = _stored_index(self.owner_id, eligible, self._excluded, self.rules)
        matches: list[Match | None] = []
        for candidate in candidates:
            match = None
            if self.rules.long_enough(candidate):
                match = stored.earliest_match(candidate, self.rules) if stored else None
                if match is None:
                    match = self._listing.earliest_match(candidate, self.rules)
                if match is None:
                    self._listing.add((float(self._position), 0), candidate)
                    self._position += 1
            matches.append(match)
        return matches


def find_near_duplicates(
    *,
    owner_id: int,
    candidates: Sequence[tuple[int, int]] | Sequence[Candidate],
    exclude_ids: Collection[int] = (),
) -> dict[int, int]:
    """{job_id: canonical_job_id} for the candidates — (job_id, signed simhash) of the jobs
    being processed now, or Candidates with their job ids, earliest seen first — that are
    near-duplicates (Hamming distance ≤ INTAKE_SIMHASH_DISTANCE, and alike: see
    `NearDuplicates`) of another job of the same owner.

    The canonical job is the earliest seen: the owner's stored `ready` jobs first (by
    first_seen_at, then id), then the earlier candidates of this batch that are not
    themselves duplicates. Skipped duplicates never become canonical, and expired jobs do
    not count (a role re-posted after it closed is live again). A candidate is never matched
    with itself or with the other candidates as stored rows, nor with `exclude_ids`."""
    given = [c if isinstance(c, Candidate) else Candidate(c[1], job_id=c[0]) for c in candidates]
    if not given:
        return {}
    decider = NearDuplicates(owner_id)
    decider.exclude({c.job_id for c in given if c.job_id is not None} | set(exclude_ids))
    unique: list[Candidate] = []
    decided: set[int | None] = set()
    for candidate in given:
        if candidate.job_id in decided:
            continue  # listed twice: its first occurrence decided
        decided.add(candidate.job_id)
        unique.append(candidate)
    duplicates: dict[int, int] = {}
    for candidate, match in zip(unique, decider.decide(unique), strict=True):
        if match is not None and candidate.job_id is not None and match.canonical.job_id:
            duplicates[candidate.job_id] = match.canonical.job_id
    return duplicates

"""64-bit simhash of a posting's plain text, for near-duplicate detection.

The text is lowercased and split into word tokens; each run of SHINGLE_SIZE consecutive tokens
(a shingle) is hashed to 64 bits; bit i of the simhash is set when more than half of the
shingles have bit i set. Texts that share most shingles get simhashes a few bits apart.

Deterministic across processes and machines: every hash is defined on UTF-8 bytes with fixed
constants, never with Python's `hash()` (PYTHONHASHSEED differs between workers, and the
values are stored). `simhash_many` is the vectorized path the pipeline uses (numpy over a
whole batch, tokens included); `simhash_reference` is the same definition in plain Python,
kept as the executable spec that the tests compare against.

Values are stored signed (PostgreSQL bigint): `to_signed` / `to_unsigned` convert, `bands`
splits a value into the four 16-bit band columns (two values within Hamming distance 3 agree
on at least one band, so the near-duplicate lookup is four indexed equality probes).

Boilerplate: a company repeats paragraphs (about us, benefits, the EEO statement) in every
posting. `company_boilerplate` finds them across a company's postings (by
`paragraph_fingerprints`), and `simhash(..., boilerplate=...)` leaves them out, so that two
roles are compared on what differs between them.

The modules: `bits` (the stored value, bands, distance), `text` (tokens, paragraphs,
boilerplate), `reference` (the definition in plain Python), `vectorized` (numpy, what the
pipeline runs); the names others use are importable from this package."""

from __future__ import annotations

from ingestion.simhash.bits import BITS, MASK63, MASK64, bands, hamming, to_signed, to_unsigned
from ingestion.simhash.reference import BOILERPLATE_WEIGHT, SHINGLE_SIZE, simhash_reference
from ingestion.simhash.text import (
    MIN_PARAGRAPH_TOKENS,
    company_boilerplate,
    learn_boilerplate,
    paragraph_fingerprints,
    tokenize,
)
from ingestion.simhash.vectorized import simhash, simhash_many, simhash_many_sized, warm_up

__all__ = [
    "BITS",
    "BOILERPLATE_WEIGHT",
    "MASK63",
    "MASK64",
    "MIN_PARAGRAPH_TOKENS",
    "SHINGLE_SIZE",
    "bands",
    "company_boilerplate",
    "hamming",
    "learn_boilerplate",
    "paragraph_fingerprints",
    "simhash",
    "simhash_many",
    "simhash_many_sized",
    "simhash_reference",
    "to_signed",
    "to_unsigned",
    "tokenize",
    "warm_up",
]

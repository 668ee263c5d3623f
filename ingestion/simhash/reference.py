"""The definition of the simhash, in plain Python: tokens hashed to 64 bits, shingles of
SHINGLE_SIZE tokens, bit i set when more than half of the shingles have it (boilerplate
weighing at most BOILERPLATE_WEIGHT times the posting's own). Slow: `simhash_reference` is the
executable spec that the vectorized path (ingestion.simhash.vectorized) is tested against, and
these constants and hashes are what both compute."""

from __future__ import annotations

from collections.abc import Sequence

from ingestion.simhash.bits import BITS, MASK64, to_signed
from ingestion.simhash.text import _TOKEN_RE, MIN_PARAGRAPH_TOKENS, _fingerprint

SHINGLE_SIZE = 3
# Boilerplate is not dropped but capped: its shingles weigh at most this many times the
# posting's own. Dropped (0), a ~150-word role section is left alone and one changed word
# moves the simhash 4 bits on average, so a lightly edited repost slips past distance 3 more
# often than not; kept whole, 1,500 words of boilerplate pull two different roles together.
# 3 is the best trade on tests/ingestion/test_dedupe.py's postings (the figures are in
# docs/performance.md).
BOILERPLATE_WEIGHT = 3

# rotated by its position.
_POLY = 0x9FB21C651E98DF25  # odd, so it has an inverse modulo 2**64
_POLY_INV = pow(_POLY, -1, 1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_ROT = (0, 21, 42)  # shingle position i's token hash is rotated left by _ROT[i]


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & MASK64 if bits else value


def _mix(value: int) -> int:
    value ^= value >> 30
    value = (value * _MIX1) & MASK64
    value ^= value >> 27
    value = (value * _MIX2) & MASK64
    return value ^ (value >> 31)


def _token_hash(token: bytes) -> int:
    value = 0
    power = 1
    for byte in token:
        value = (value + byte * power) & MASK64
        power = (power * _POLY) & MASK64
    return _mix(value ^ ((len(token) * _GOLDEN) & MASK64))


def _shingle_hash(token_hashes: Sequence[int]) -> int:
    value = _GOLDEN
    for position, token_hash in enumerate(token_hashes):
        value ^= _rotl(token_hash, _ROT[position])
    return _mix(value)


def _reference_votes(words: list[str]) -> tuple[list[int], int]:
    """Per bit, how many of the shingles of `words` have it set; and the number of shingles
    (a text shorter than a shingle is one shingle of all its tokens)."""
    token_hashes = [_token_hash(w.encode("utf-8", "surrogatepass")) for w in words]
    if not token_hashes:
        return [0] * BITS, 0
    size = min(SHINGLE_SIZE, len(token_hashes))
    shingles = [
        _shingle_hash(token_hashes[i : i + size]) for i in range(len(token_hashes) - size + 1)
    ]
    return [sum((s >> bit) & 1 for s in shingles) for bit in range(BITS)], len(shingles)


def _decide(own_ones: int, own: int, shared_ones: int, shared: int) -> bool:
    """Whether a bit is set: the vote of the own shingles (+1 set, -1 unset) plus the
    boilerplate's, scaled down to BOILERPLATE_WEIGHT × own when it weighs more (in integers:
    both sides multiplied by `shared`)."""
    cap = BOILERPLATE_WEIGHT * own
    if shared <= cap:
        return (2 * own_ones - own) + (2 * shared_ones - shared) > 0
    return shared * (2 * own_ones - own) + cap * (2 * shared_ones - shared) > 0


def simhash_reference(text: str, *, boilerplate: frozenset[int] | set[int] = frozenset()) -> int:
    """The definition of the simhash, in plain Python (slow: the tests and the benchmark
    compare `simhash_many` against it). Signed 64-bit; 0 for a text without words.

    Tokens: `_TOKEN_RE` over the lowercased text. Lines whose fingerprint is in
    `boilerplate` are shingled apart from the others and weigh at most BOILERPLATE_WEIGHT
    times as much (all lines are the posting's own when none would be left). Shingles:
    SHINGLE_SIZE consecutive tokens (a shorter part is one shingle of all its tokens)."""
    lines = [_TOKEN_RE.findall(line) for line in text.lower().split("\n")]
    own: list[str] = []
    shared: list[str] = []
    for tokens in lines:
        fingerprint = _fingerprint([t.encode("utf-8", "surrogatepass") for t in tokens])
        if boilerplate and len(tokens) >= MIN_PARAGRAPH_TOKENS and fingerprint in boilerplate:
            shared.extend(tokens)
        else:
            own.extend(tokens)
    if not own:
        own, shared = shared, []
    own_ones, own_count = _reference_votes(own)
    shared_ones, shared_count = _reference_votes(shared)
    result = 0
    for bit in range(BITS):
        if _decide(own_ones[bit], own_count, shared_ones[bit], shared_count):
            result |= 1 << bit
    return to_signed(result)

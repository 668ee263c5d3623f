"""The simhash as the pipeline computes it: numpy passes over a whole batch of texts (tokens
found, hashed, shingled and their bits counted over one buffer), equal to
ingestion.simhash.reference.simhash_reference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingestion.simhash.bits import BITS
from ingestion.simhash.reference import (
    _GOLDEN,
    _MIX1,
    _MIX2,
    _POLY,
    _POLY_INV,
    _ROT,
    BOILERPLATE_WEIGHT,
    SHINGLE_SIZE,
    _shingle_hash,
)
from ingestion.simhash.text import _bmp_alnum, _line_keys, _split

_U64 = np.uint64
# Powers of _POLY and of its inverse, grown (doubled) as longer batches come.
_powers: np.ndarray = np.ones(1, dtype=np.uint64)
_inverse_powers: np.ndarray = np.ones(1, dtype=np.uint64)


def _power_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    global _powers, _inverse_powers
    if len(_powers) < size:
        grown = 1 << (size - 1).bit_length()
        # uint64 products wrap modulo 2**64, as the reference's masking does.
        _powers = np.cumprod(np.full(grown, _POLY, dtype=np.uint64)) * _U64(_POLY_INV)
        _inverse_powers = np.cumprod(np.full(grown, _POLY_INV, dtype=np.uint64)) * _U64(_POLY)
    return _powers, _inverse_powers


def _np_rotl(values: np.ndarray, bits: int) -> np.ndarray:
    if not bits:
        return values
    return (values << _U64(bits)) | (values >> _U64(64 - bits))


def _np_mix(values: np.ndarray) -> np.ndarray:
    values = values ^ (values >> _U64(30))
    values = values * _U64(_MIX1)
    values = values ^ (values >> _U64(27))
    values = values * _U64(_MIX2)
    return values ^ (values >> _U64(31))


def _np_token_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Hashes of the tokens data[starts[i]:ends[i]] (every start ≥ 1), as `_token_hash`:
    prefix sums of byte × _POLY**position give each token's polynomial at its offset in the
    batch, and multiplying by _POLY**-start moves it to position 0."""
    powers, inverse_powers = _power_tables(len(data))
    prefix = np.cumsum(data.astype(np.uint64) * powers[: len(data)], dtype=np.uint64)
    sums = (prefix[ends - 1] - prefix[starts - 1]) * inverse_powers[starts]
    lengths = (ends - starts).astype(np.uint64)
    return _np_mix(sums ^ (lengths * _U64(_GOLDEN)))


_LANE_MASK = _U64(0x0001_0001_0001_0001)


def _bit_counts(shingles: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(texts × 64) counts of set bits, column i for bit i, of consecutive runs of shingles."""
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    if lengths.max() >= 1 << 16:  # a 400 KB text: the simple way, wide counters
        bits = np.unpackbits(
            shingles.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little"
        )
        return np.add.reduceat(bits, offsets, axis=0, dtype=np.int64)
    # Bits p, p+16, p+32 and p+48 of every shingle are summed at once as four 16-bit
    # counters in one uint64 (no text under 65,536 shingles overflows one): 16 contiguous
    # passes instead of unpacking to 64 columns and summing along the rows.
    lanes = np.empty((16, len(lengths)), dtype=np.uint64)
    scratch = np.empty_like(shingles)
    for shift in range(16):
        np.right_shift(shingles, _U64(shift), out=scratch)
        np.bitwise_and(scratch, _LANE_MASK, out=scratch)
        lanes[shift] = np.add.reduceat(scratch, offsets)
    # lanes[p, text] holds the counts of bits p, p+16, p+32, p+48 (lowest lane first).
    counts = np.ascontiguousarray(lanes.T, dtype="<u8").view("<u2").reshape(len(lengths), 16, 4)
    return counts.transpose(0, 2, 1).reshape(len(lengths), 64).astype(np.int64)


# Text bytes per numpy pass of `simhash_many`. Its arrays take ~30 bytes per text byte; kept
# to a few MB they are reused from the allocator's free memory instead of being mapped (and
# zeroed by the kernel, in huge pages) afresh each time (docs/performance.md).
_PASS_BYTES = 256 * 1024


def warm_up() -> None:
    """Build the tables a pass of `simhash_many` uses: powers, and the letters of the BMP for
    text that is not ASCII (a worker calls this before it forks work horses, which then share
    them instead of each building its own)."""
    _power_tables(2 * _PASS_BYTES)
    _bmp_alnum()


def simhash_many(
    texts: Sequence[str], *, boilerplate: frozenset[int] | set[int] = frozenset()
) -> list[int]:
    """The simhash (signed) of each text, equal to `simhash_reference`, computed for many
    texts at once: tokens are found, hashed, shingled, and their bits counted with numpy over
    one buffer holding a slice of the texts (about _PASS_BYTES of them). A hundred postings
    or more amortize numpy's per-call cost."""
    return [value for value, _ in simhash_many_sized(texts, boilerplate=boilerplate)]


def simhash_many_sized(
    texts: Sequence[str],
    *,
    boilerplate: frozenset[int] | set[int] = frozenset(),
    lines: frozenset[bytes] | None = None,
) -> list[tuple[int, int]]:
    """(simhash, own words) of each text: `simhash_many`'s values with the number of tokens
    of the text's own part (boilerplate left out), which says how much the simhash knows.
    `lines`: the boilerplate's lines (`boilerplate_lines`), when known: faster, same values."""
    results: list[tuple[int, int]] = []
    parts: list[tuple[bytes, bytes]] = []
    size = 0
    keys = _line_keys(lines) if lines else None
    for text in texts:
        own, shared = _split(text, boilerplate, lines, keys)
        parts.append((own, shared))
        size += len(own) + len(shared) + 2
        if size >= _PASS_BYTES:
            results.extend(_simhash_parts(parts))
            parts, size = [], 0
    if parts:
        results.extend(_simhash_parts(parts))
    return results


def _simhash_parts(parts: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """`simhash_many_sized` of texts already split into (own, boilerplate) parts."""
    # One buffer: a space, then for each text its own part and its boilerplate part (words
    # between spaces and new lines), each followed by a space, so that every token starts at
    # ≥ 1 and none runs into the next part.
    pieces = [b" "]
    piece_ends = []
    size = 1
    for split in parts:
        for part in split:
            pieces.append(part)
            pieces.append(b" ")
            size += len(part) + 1
            piece_ends.append(size)
    data = np.frombuffer(b"".join(pieces), dtype=np.uint8)

    word = data > 0x20  # separators are spaces and new lines
    edges = np.flatnonzero(word[1:] != word[:-1]) + 1  # alternately token starts and ends
    starts, ends = edges[0::2], edges[1::2]
    if not len(starts):
        return [(0, 0)] * len(parts)
    token_hashes = _np_token_hashes(data, starts, ends)
    # Tokens per part, and where each part's tokens end in token_hashes.
    token_ends = np.searchsorted(starts, np.array(piece_ends), side="left")
    counts = np.diff(token_ends, prepend=0)

    # Per part: shingles, and per bit how many of them have it set.
    shingle_counts = np.where(counts >= SHINGLE_SIZE, counts - (SHINGLE_SIZE - 1), counts > 0)
    ones = np.zeros((len(counts), BITS), dtype=np.int64)
    long_parts = np.flatnonzero(counts >= SHINGLE_SIZE)
    shingle_total = len(token_hashes) - SHINGLE_SIZE + 1
    if len(long_parts):
        # Shingle i starts at token i; it is kept when its last token is in the same part.
        mixed = np.full(shingle_total, _GOLDEN, dtype=np.uint64)
        for position in range(SHINGLE_SIZE):
            mixed ^= _np_rotl(token_hashes[position : position + shingle_total], _ROT[position])
        part_token_end = np.repeat(token_ends, counts)[:shingle_total]
        keep = np.arange(SHINGLE_SIZE - 1, shingle_total + SHINGLE_SIZE - 1) < part_token_end
        ones[long_parts] = _bit_counts(_np_mix(mixed[keep]), shingle_counts[long_parts])
    # A part with fewer tokens than a shingle is one shingle of all its tokens.
    short_parts = np.flatnonzero((counts > 0) & (counts < SHINGLE_SIZE)).tolist()
    if short_parts:
        single = [
            _shingle_hash(token_hashes[token_ends[i] - counts[i] : token_ends[i]].tolist())
            for i in short_parts
        ]
        ones[short_parts] = np.unpackbits(
            np.array(single, dtype="<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little"
        )

    own_ones, shared_ones = ones[0::2], ones[1::2]
    own = shingle_counts[0::2].astype(np.int64)[:, None]
    shared = shingle_counts[1::2].astype(np.int64)[:, None]
    cap = BOILERPLATE_WEIGHT * own
    own_votes = 2 * own_ones - own
    shared_votes = 2 * shared_ones - shared
    # As `_decide`; the products stay far below 2**63 (shingle counts under 2**20).
    set_bits = np.where(
        shared <= cap, own_votes + shared_votes > 0, shared * own_votes + cap * shared_votes > 0
    ).astype(np.uint8)
    packed = np.packbits(set_bits, axis=1, bitorder="little").view("<i8").ravel()
    return list(zip(packed.tolist(), counts[0::2].tolist(), strict=True))


def simhash(text: str, *, boilerplate: frozenset[int] | set[int] = frozenset()) -> int:
    """The signed 64-bit simhash of one plain text (see `simhash_many` for batches), with
    the paragraphs whose fingerprint is in `boilerplate` left out."""
    return simhash_many([text], boilerplate=boilerplate)[0]

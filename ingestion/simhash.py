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
roles are compared on what differs between them."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from hashlib import blake2b
from itertools import compress

import numpy as np

SHINGLE_SIZE = 3
BITS = 64
MASK64 = (1 << 64) - 1
MASK63 = (1 << 63) - 1
# Paragraphs with fewer tokens than this get no fingerprint: a heading ("Benefits") or a
# one-word list item shared by many postings is not what makes them look alike.
MIN_PARAGRAPH_TOKENS = 4
# Boilerplate is not dropped but capped: its shingles weigh at most this many times the
# posting's own. Dropped (0), a ~150-word role section is left alone and one changed word
# moves the simhash 4 bits on average, so a lightly edited repost slips past distance 3 more
# often than not; kept whole, 1,500 words of boilerplate pull two different roles together.
# 3 is the best trade on tests/ingestion/test_dedupe.py's postings (the figures are in
# docs/performance.md).
BOILERPLATE_WEIGHT = 3

# A token is a run of letters and digits, any script (what `str.isalnum` accepts); "_" and
# punctuation separate tokens. This regex is the definition (the reference uses it);
# `_separated` is its fast equivalent.
_TOKEN_RE = re.compile(r"[^\W_]+")
_SEPARATORS_RE = re.compile(r"(?:[^\w\n]|_)+")  # all but new lines, which mark paragraphs
# The regex costs many times what bytes.translate does: ASCII text takes the fast
# path. Common non-ASCII punctuation (curly quotes, dashes, bullets, no-break space)
# separates tokens either way, so it becomes a space first, which keeps most English
# postings on the fast path.
_ASCII_TABLE = bytes(c if chr(c).isalnum() or c == 0x0A else 0x20 for c in range(128)) + bytes(
    range(128, 256)
)
_COMMON_PUNCTUATION = (
    "\u2019",
    "\u2018",
    "\u201c",
    "\u201d",
    "\u2013",
    "\u2014",
    "\u2022",
    "\u2026",
    "\xa0",
    "\xb7",
    "\u200b",
    "\u2010",
    "\u2011",
    "\u2212",
    "\xae",
    "\u2122",
    "\xa9",
    # Currency signs (salary lines): "€" alone made a fifth of a benchmark's postings take
    # the table path below.
    "\u20ac",
    "\xa3",
    "\xa5",
    "\u20b9",
)

# Hash constants: a token's hash is a polynomial over its UTF-8 bytes (base _POLY, modulo
# 2**64) finished with splitmix64's mixer; a shingle's hash mixes its tokens' hashes, each
# rotated by its position.
_POLY = 0x9FB21C651E98DF25  # odd, so it has an inverse modulo 2**64
_POLY_INV = pow(_POLY, -1, 1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_ROT = (0, 21, 42)  # shingle position i's token hash is rotated left by _ROT[i]


# --- Signed/unsigned, bands, distance -------------------------------------------------------


def to_signed(value: int) -> int:
    """The signed 64-bit integer (as PostgreSQL bigint stores it) with the same bits."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    """The unsigned 64-bit integer with the same bits as a signed (or unsigned) value."""
    return value & MASK64


def bands(value: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands (0..65535) of a simhash, lowest bits first: the values of the
    JobFingerprint columns band0..band3. Accepts signed or unsigned values."""
    unsigned = value & MASK64
    return (
        unsigned & 0xFFFF,
        (unsigned >> 16) & 0xFFFF,
        (unsigned >> 32) & 0xFFFF,
        (unsigned >> 48) & 0xFFFF,
    )


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two simhashes (signed or unsigned)."""
    return ((a ^ b) & MASK64).bit_count()


# --- Tokens and paragraphs ------------------------------------------------------------------


@functools.cache
def _bmp_alnum() -> np.ndarray:
    """Which code points of the Basic Multilingual Plane `str.isalnum` accepts, built once."""
    return np.array([chr(c).isalnum() for c in range(0x10000)], dtype=bool)


def _separated(lowered: str) -> bytes:
    """UTF-8 of lowercased text with every separator but new lines made a space: the tokens
    of each line are exactly `_TOKEN_RE.findall(line)`, encoded."""
    if not lowered.isascii():
        for char in _COMMON_PUNCTUATION:
            if char in lowered:
                lowered = lowered.replace(char, " ")
        if not lowered.isascii():
            # Accented letters etc.: classify code points with a table instead of the regex
            # (faster: docs/performance.md); beyond the BMP (emoji, rare scripts) the regex
            # decides.
            points = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            if points.max() > 0xFFFF:
                return _SEPARATORS_RE.sub(" ", lowered).encode("utf-8", "surrogatepass")
            word_or_line = _bmp_alnum()[points] | (points == 0x0A)
            points = np.where(word_or_line, points, np.uint32(0x20)).astype("<u4")
            text = points.tobytes().decode("utf-32-le", "surrogatepass")
            return text.encode("utf-8", "surrogatepass")
    return lowered.encode("ascii").translate(_ASCII_TABLE)


def _fingerprint(tokens: list[bytes]) -> int:
    return _line_fingerprint(b" ".join(tokens))


def _line_fingerprint(line: bytes) -> int:
    """The fingerprint of a paragraph given as its tokens joined by single spaces."""
    return int.from_bytes(blake2b(line, digest_size=8).digest(), "little") & MASK63


_SPACE_RUNS_RE = re.compile(rb"  +")


def paragraph_fingerprints(text: str) -> list[int]:
    """A stable 63-bit fingerprint of each paragraph (line) of plain text that has at least
    MIN_PARAGRAPH_TOKENS words, in order. Paragraphs are compared by their lowercased words,
    so punctuation, case and spacing do not matter."""
    fingerprints = []
    for line in _separated(text.lower()).split(b"\n"):
        tokens = line.split()
        if len(tokens) >= MIN_PARAGRAPH_TOKENS:
            fingerprints.append(_fingerprint(tokens))
    return fingerprints


def company_boilerplate(
    texts: Iterable[str], *, min_share: float = 0.3, min_count: int = 3
) -> list[int]:
    """Fingerprints (sorted) of the paragraphs that appear in at least
    max(min_count, min_share × number of texts) of a company's postings: its about-us,
    benefits and EEO paragraphs, to leave out of each posting's simhash."""
    counts: Counter[int] = Counter()
    total = 0
    for text in texts:
        total += 1
        counts.update(set(paragraph_fingerprints(text)))
    threshold = max(min_count, min_share * total)
    return sorted(fp for fp, count in counts.items() if count >= threshold)


def learn_boilerplate(
    texts: Iterable[str], *, min_share: float = 0.3, min_count: int = 3
) -> tuple[list[int], frozenset[bytes]]:
    """`company_boilerplate(texts)`, and the boilerplate's lines as `_split` compares them
    (tokens joined by single spaces), in one pass: with the lines, a posting's lines are
    looked up in a set instead of each being fingerprinted (the same lines, as the
    fingerprints were learned from the same texts)."""
    counts: Counter[int] = Counter()
    seen: dict[int, bytes] = {}
    total = 0
    for text in texts:
        total += 1
        fingerprints = set()
        for line in _lines(_separated(text.lower())):
            if line.count(b" ") >= MIN_PARAGRAPH_TOKENS - 1:
                fingerprint = _line_fingerprint(line)
                fingerprints.add(fingerprint)
                seen.setdefault(fingerprint, line)
        counts.update(fingerprints)
    threshold = max(min_count, min_share * total)
    learned = sorted(fp for fp, count in counts.items() if count >= threshold)
    return learned, frozenset(seen[fp] for fp in learned)


def _lines(separated: bytes) -> list[bytes]:
    """The non-empty lines of separated text, each its tokens joined by single spaces."""
    stripped = [line.strip(b" ") for line in _SPACE_RUNS_RE.sub(b" ", separated).split(b"\n")]
    return [line for line in stripped if line]


def _split(
    text: str,
    boilerplate: frozenset[int] | set[int],
    lines: frozenset[bytes] | None = None,
    keys: frozenset[bytes] | None = None,
) -> tuple[bytes, bytes]:
    """The separated text simhash reads, as (the posting's own paragraphs, its boilerplate
    paragraphs — those whose fingerprint is in `boilerplate`, or given as `lines`, see
    `learn_boilerplate`). All of it is its own when nothing else would be left. Only the
    tokens of each part and their order count: spaces and new lines alike separate them.
    `keys`: `_line_keys(lines)`, when the caller has it."""
    separated = _separated(text.lower())
    if not boilerplate and not lines:
        return separated, b""
    if lines is not None:
        return _split_lines(separated, lines, _line_keys(lines) if keys is None else keys)
    own: list[bytes] = []
    shared: list[bytes] = []
    for line in _lines(separated):
        if line.count(b" ") >= MIN_PARAGRAPH_TOKENS - 1 and _line_fingerprint(line) in boilerplate:
            shared.append(line)
        else:
            own.append(line)
    if not own:
        return b" ".join(shared), b""
    return b" ".join(own), b" ".join(shared)


def _line_keys(lines: frozenset[bytes]) -> frozenset[bytes]:
    """The boilerplate lines without their spaces: a line of a text (its tokens joined by
    single spaces) can be one of `lines` only if its bytes but spaces are one of these."""
    return frozenset(line.replace(b" ", b"") for line in lines)


def _split_lines(
    separated: bytes, lines: frozenset[bytes], keys: frozenset[bytes]
) -> tuple[bytes, bytes]:
    """_split's parts of `separated` with the boilerplate given as its lines. Collapsing each
    line's spaces (what `_lines` does) costs a regex match per run of them, and most lines
    are no boilerplate: the lines are looked up without their spaces, in C, and only those
    found so are collapsed and looked up as they are."""
    # translate deletes the spaces in one pass over the bytes; replace copies the text piece
    # by piece between them.
    flat = separated.translate(None, b" ").split(b"\n")
    # Which lines may be boilerplate, in order, in one C pass of set lookups (a scan of the
    # lines per candidate, list.index, costs a comparison per line and candidate).
    at = list(compress(range(len(flat)), map(keys.__contains__, flat)))
    if not at:
        return separated, b""
    raw = separated.split(b"\n")
    found: list[bytes] = []
    for index in at:
        line = b" ".join(raw[index].split())
        if line in lines:
            found.append(line)
            raw[index] = b""
    if not found:  # the same tokens in the same order
        return separated, b""
    rest = b"\n".join(raw)
    if not rest.strip(b" \n"):
        return b" ".join(found), b""
    return rest, b" ".join(found)


def tokenize(
    text: str, *, boilerplate: frozenset[int] | set[int] = frozenset()
) -> tuple[list[str], list[str]]:
    """The lowercased word tokens simhash reads: (own, boilerplate)."""
    own, shared = _split(text, boilerplate)
    return (
        own.decode("utf-8", "surrogatepass").split(),
        shared.decode("utf-8", "surrogatepass").split(),
    )


# --- Reference implementation (plain Python) ------------------------------------------------


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


# --- Vectorized implementation (numpy) ------------------------------------------------------

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

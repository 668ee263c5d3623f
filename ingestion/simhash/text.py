"""The text a simhash reads: word tokens, paragraphs (lines) and their fingerprints, and a
company's boilerplate.

Boilerplate: a company repeats paragraphs (about us, benefits, the EEO statement) in every
posting. `company_boilerplate` finds them across a company's postings (by
`paragraph_fingerprints`), and `_split` sets them apart from the posting's own paragraphs, so
that two roles are compared on what differs between them."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from hashlib import blake2b
from itertools import compress

import numpy as np

from ingestion.simhash.bits import MASK63

# Paragraphs with fewer tokens than this get no fingerprint: a heading ("Benefits") or a
# one-word list item shared by many postings is not what makes them look alike.
MIN_PARAGRAPH_TOKENS = 4

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

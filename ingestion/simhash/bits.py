"""A simhash's stored value: signed as PostgreSQL bigint stores it (`to_signed` / `to_unsigned`
convert), `bands` splits it into the four 16-bit band columns (two values within Hamming
distance 3 agree on at least one band, so the near-duplicate lookup is four indexed equality
probes), `hamming` compares two."""

from __future__ import annotations

BITS = 64
MASK64 = (1 << 64) - 1
MASK63 = (1 << 63) - 1


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

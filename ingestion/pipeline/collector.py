"""The cyclic garbage collector during a listing.

A listing holds each batch's records, postings, items and near-duplicate candidates while it
works on it, and keeps the near-duplicate index for the whole run: tens of thousands of
containers, nearly all freed by reference counting, nearly none in a cycle. With the default
young-generation threshold (700 allocations) the collector runs hundreds of times per
listing and traverses the live batch again each time, and the older generations, which it
reaches every tenth run, hold the index. A threshold above what one batch allocates lets a
collection happen about once per batch; the little cyclic garbage waits that long.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Net allocations of tracked objects between two young collections during a listing: a few
# batches' worth of postings at most, so cyclic garbage stays bounded.
LISTING_THRESHOLD = 50_000


@contextmanager
def fewer_collections(threshold: int = LISTING_THRESHOLD) -> Iterator[None]:
    """Raise the young generation's threshold to `threshold` (never lower it, and leave a
    threshold of 0, automatic collection off, alone) inside the block; the thresholds
    before it are restored after."""
    before = gc.get_threshold()
    if 0 < before[0] < threshold:
        gc.set_threshold(threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)

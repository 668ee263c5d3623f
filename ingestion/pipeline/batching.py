"""itertools.batched arrived in Python 3.12; Intake runs on 3.11. Batches here can also be
bounded by weight: the postings' text a batch holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# Characters (or bytes) of postings' text one batch of the listing or of the ingesting stage
# holds at most: a batch of INTAKE_BATCH_SIZE postings at INTAKE_DESCRIPTION_MAX_CHARS each
# would hold gigabytes, several times over while it is sanitized and hashed. Ordinary
# postings never reach it.
TEXT_BUDGET = 16 * 1024 * 1024


def batched(
    items: Iterable[T],
    size: int,
    *,
    weight: Callable[[T], int] | None = None,
    max_weight: int | None = None,
) -> Iterator[list[T]]:
    """Lists of up to `size` items, in order, reading `items` lazily. With `weight`, a list
    also ends once its items weigh `max_weight` (TEXT_BUDGET by default) together; one
    heavier item is a list alone."""
    limit = TEXT_BUDGET if max_weight is None else max_weight
    batch: list[T] = []
    held = 0
    for item in items:
        batch.append(item)
        if weight is not None:
            held += weight(item)
        if len(batch) >= size or held >= limit:
            yield batch
            batch = []
            held = 0
    if batch:
        yield batch

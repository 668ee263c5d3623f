"""What all the fetches of a process share: a slot per host, and a memory budget for bodies.

* Politeness: at most INTAKE_FETCH_PER_HOST requests in flight per host, across every Fetcher
  and thread of the process.
* Memory: a body read whole (get(), not stream()) counts, as it arrives, against
  INTAKE_FETCH_MEMORY_BUDGET, so parallel fetches cannot multiply the size cap.
"""

from __future__ import annotations

import threading

from django.conf import settings

_host_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_host_slots_lock = threading.Lock()


def host_slot(host: str) -> threading.BoundedSemaphore:
    """The process-wide semaphore for `host` (keyed by the limit too, so a changed setting
    takes effect for new requests)."""
    limit = settings.INTAKE_FETCH_PER_HOST
    with _host_slots_lock:
        slot = _host_slots.get((host, limit))
        if slot is None:
            slot = _host_slots[(host, limit)] = threading.BoundedSemaphore(limit)
        return slot


class MemoryBudget:
    """Bytes of response bodies being read whole by the fetches of this process (a work horse
    reads up to jsonld.FETCH_THREADS pages, or INTAKE_FETCH_CONCURRENCY detail pages, at
    once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold `size` more bytes, or False when that would pass INTAKE_FETCH_MEMORY_BUDGET."""
        with self._lock:
            if self.held + size > settings.INTAKE_FETCH_MEMORY_BUDGET:
                return False
            self.held += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size


memory_budget = MemoryBudget()

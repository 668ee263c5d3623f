"""A re-run's listing read ahead on another worker: the listing (ingestion.pipeline.diff) is one
RQ job, and reading a large uploaded file — parsing each row, hashing it raw — is most of what
it does when the rows are unchanged, while a second worker idles.

Once a source's first batch is applied, and most of it was unchanged, the listing (the
coordinator) queues one helper (`read_ahead`, at the front of the queue, as
ingestion.pipeline.mapping's helpers) that reads the same source from its start with the same
code, skips the batches the coordinator read itself, and pushes the next ones, pickled, to a
Redis list the coordinator pops in order. Everything that depends on order — claims, items,
writes — stays with the coordinator, which gets the very batches it would have read: who reads
a batch never changes an outcome.

Who reads which batch is decided in Redis, one step at a time (scripts): before each batch the
coordinator reads it itself unless the helper holds the read (a claim with a lease the helper
renews with every batch it pushes); the helper, when it starts, takes the read from
HEAD_START batches after the coordinator's last, which the coordinator still reads itself
while the helper reads its way there. A helper that dies is noticed when its lease lapses,
one that fails to read pushes FAILED: either way the coordinator reads the rest itself from
where the helper stopped (reading its own way to that batch again), so a file that cannot be
read fails as it would have, after the batches read before it. Every key is deleted when the
listing of the source ends, however it ends, and a helper still queued is cancelled.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
import pickle
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from ingestion.adapters import Posting, RawRecord
from ingestion.adapters.files import CsvRow, join_row
from ingestion.pipeline.mapping import KEY_TTL, LEASE_SECONDS, LISTING, WAIT_SLICE
from runs import queue

logger = logging.getLogger(__name__)

READ_AHEAD = "ingestion.pipeline.readahead.read_ahead"
# Batches the helper keeps pushed ahead of the coordinator at most (bounded memory in Redis).
AHEAD = 4
# Batches the coordinator still reads itself once a helper takes the read: a helper just
# started needs about as long to read its way past the batches before its first (a work horse
# forked, the source opened, each batch read again) as the coordinator needs to read and apply
# these, so neither waits for the other.
HEAD_START = 4
# How often a helper that is that far ahead looks again.
FULL_SLICE = 0.02
# Pushed after the last batch; pushed when the helper's reading failed (the coordinator reads
# on from there itself, and meets the failure as it would have).
END = b"end"
FAILED = b"failed"

Entry = Posting | RawRecord
# Reads a source from its start, in batches: pickled to the helper, so a module function.
Reader = Callable[[], Iterator[list[Entry]]]
# The indexes of a batch's entries worth mapping ahead (ingestion.pipeline.mapping): the
# helper's guess, made on its own connection, spares the listing a lookup per batch.
Hint = Callable[[list[Entry]], list[int]]

# The coordinator's step before each batch: it reads the batch itself (and the helper, should
# it start later, begins after it) unless a helper holds the read from this batch on (the
# second key then holds the helper's first batch). Returns 1 to read it here.
_READ_HERE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    if tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[2]) or 0) then return 1 end
    return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""
# The helper's start: the read, from the batch `head start` after the coordinator's last (the
# second key, which then holds the helper's first batch), unless the coordinator took it back
# or ended. Returns the number of the batch before the helper's first, or -1.
_TAKE_READ = """
local after = redis.call('GET', KEYS[2])
if not after or redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local start = tonumber(after) + tonumber(ARGV[3])
redis.call('SET', KEYS[2], start + 1, 'KEEPTTL')
return start
"""
# The helper's push, only while it holds the read (the coordinator may have taken it back
# after the lease lapsed); renews the lease. Returns 1 if pushed.
_PUSH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


# A record travels as the tuple of its fields: pickle rebuilds a slotted dataclass through its
# Python-level __setstate__, several times slower than a tuple, on the coordinator's path; a
# CSV row's cells as one string (ingestion.adapters.files.join_row), mapped as they are.
_RECORD_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(RawRecord)))
_FIELDS_BEFORE_RECORD = operator.attrgetter("external_id", "company", "raw_hash", "row", "size")


def _packed(record: RawRecord) -> tuple[Any, ...]:
    if type(record.record) is not CsvRow:
        return _RECORD_FIELDS(record)  # type: ignore[no-any-return]
    return (*_FIELDS_BEFORE_RECORD(record), join_row(record.record), record.mapper)


def pack(batch: list[Entry]) -> list[Entry | tuple[Any, ...]]:
    """`batch` as the helper pushes it (unpack() gives back records that read as they were)."""
    return [_packed(e) if type(e) is RawRecord else e for e in batch]


def unpack(packed: list[Entry | tuple[Any, ...]]) -> list[Entry]:
    return [RawRecord(*e) if type(e) is tuple else e for e in packed]  # type: ignore[misc]


def _keys(prefix: str) -> tuple[str, str, str, str]:
    """The read's claim, the number of the coordinator's last batch (once a helper holds the
    read: of the helper's first), the pushed batches, the reader (pickled)."""
    return f"{prefix}:claim", f"{prefix}:last", f"{prefix}:out", f"{prefix}:reader"


def read_ahead(prefix: str) -> str:
    """RQ job: read the source of the listing whose read-ahead keys are under `prefix` from
    the batch after the coordinator's last, pushing each batch while it holds the read.
    Returns what it did, for the job's record."""
    conn = queue.get_queue().connection
    me = f"pid {os.getpid()}"
    claim, last, out, reader_key = _keys(prefix)
    blob = conn.get(reader_key)
    if blob is None:
        return f"{me}: the listing ended"
    start = conn.register_script(_TAKE_READ)(
        keys=[claim, last], args=[me, LEASE_SECONDS, HEAD_START]
    )
    if start < 0:
        return f"{me}: the listing read it"
    push = conn.register_script(_PUSH)
    reader, hint = cast(tuple[Reader, Hint | None], pickle.loads(cast(bytes, blob)))
    pushed = 0
    try:
        for number, batch in enumerate(reader(), 1):
            if number <= start:
                continue
            while conn.llen(out) >= AHEAD:
                if conn.get(claim) != me.encode():
                    return f"{me}: taken back after {pushed} batches"
                conn.expire(claim, LEASE_SECONDS)
                time.sleep(FULL_SLICE)
            blob = pickle.dumps((pack(batch), hint(batch) if hint is not None else None))
            if not push(keys=[claim, out], args=[me, blob, KEY_TTL, LEASE_SECONDS]):
                return f"{me}: taken back after {pushed} batches"
            pushed += 1
        marker = END
    except Exception:
        # The coordinator reads on from here itself and fails as it would have.
        logger.warning("Reading ahead %s failed", prefix, exc_info=True)
        marker = FAILED
    push(keys=[claim, out], args=[me, marker, KEY_TTL, LEASE_SECONDS])
    return f"{me}: {pushed} batches"


class ReadAhead:
    """One source's listing read ahead (the coordinator's side)."""

    def __init__(self, run_id: int, source_id: int, *, workers: int) -> None:
        self.prefix = f"intake:readahead:{run_id}:{source_id}"
        self.enabled = workers > 1
        # With two workers the helper is the only other one, reading: nobody could take an
        # offer to map ahead, so it sends no hint and the listing offers nothing.
        self.hinted = workers > 2
        self.conn: Any = None
        self._job: str | None = None
        # Batches the helper read.
        self.helped = 0
        # The helper's hints, by batch (its id) until asked for (None: offer nothing).
        self._hints: dict[int, list[int] | None] = {}

    def takes_every_worker(self) -> bool:
        """Whether a helper reads ahead and no other worker is left to map ahead."""
        return self._job is not None and not self.hinted

    def to_map(
        self, fallback: Callable[[list[Entry]], list[tuple[int, Entry]]]
    ) -> Callable[[list[Entry]], list[tuple[int, Entry]]]:
        """`fallback` (the listing's own lookup), unless the helper sent its hint along."""

        def to_map(batch: list[Entry]) -> list[tuple[int, Entry]]:
            if id(batch) not in self._hints:
                return fallback(batch)
            indexes = self._hints.pop(id(batch))
            return [(i, batch[i]) for i in indexes or ()]

        return to_map

    def batches(
        self,
        reader: Reader,
        *,
        hint: Hint,
        worth: Callable[[], bool],
        checkpoint: Callable[[], None],
    ) -> Iterator[list[Entry]]:
        """The batches `reader` reads, in order, from the second on read ahead by a helper
        (with `hint` of each when a third worker could map ahead) when there is another
        worker and `worth()` says so once the first is applied."""
        local = reader()
        first = next(local, None)
        if first is None:
            return
        yield first
        hinted = hint if self.hinted else None
        if not self.enabled or not worth() or not self._start(reader, hinted):
            yield from local
            return
        assert self.conn is not None
        claim, last, out, _ = _keys(self.prefix)
        read_here = self.conn.register_script(_READ_HERE)
        number = 1  # batches yielded
        read_locally = 1  # batches `local` has read
        while True:
            try:
                here = read_here(keys=[claim, last], args=[number + 1, KEY_TTL])
            except RedisError:
                # Who reads what can no longer be agreed on: the rest is read here (a
                # helper's pushes go unread; close() deletes them).
                logger.warning("Could not read ahead %s", self.prefix, exc_info=True)
                yield from local
                return
            if here:
                batch = next(local, None)
                if batch is None:
                    return
                read_locally += 1
                number += 1
                yield batch
                continue
            break
        # The helper holds the read from batch `number + 1` on.
        while True:
            try:
                popped = self.conn.blpop([out], timeout=WAIT_SLICE)
                if popped is None and not self.conn.set(claim, LISTING, nx=True, ex=KEY_TTL):
                    checkpoint()
                    continue  # the helper is at work: its lease is live
            except RedisError:
                logger.warning("Could not take batches read ahead %s", self.prefix, exc_info=True)
                popped = None
            if popped is None or popped[1] == FAILED:
                break  # the helper died or failed: read on here
            if popped[1] == END:
                return
            number += 1
            self.helped += 1
            packed, hinted = pickle.loads(popped[1])
            batch = unpack(packed)
            self._hints[id(batch)] = hinted
            yield batch
        try:
            self.conn.set(claim, LISTING, ex=KEY_TTL)  # a helper still at work stops
        except RedisError:
            logger.warning("Could not take back the read-ahead %s", self.prefix, exc_info=True)
        for _ in range(number - read_locally):
            next(local, None)
        yield from local

    def _start(self, reader: Reader, hint: Hint | None) -> bool:
        claim, last, _, reader_key = _keys(self.prefix)
        try:
            self.conn = queue.get_queue().connection
            pipe = self.conn.pipeline()
            pipe.set(reader_key, pickle.dumps((reader, hint)), ex=KEY_TTL)
            pipe.set(last, 1, ex=KEY_TTL)
            pipe.execute()
            job = queue.get_queue().enqueue(
                READ_AHEAD,
                self.prefix,
                at_front=True,
                result_ttl=0,
                failure_ttl=KEY_TTL,
                job_timeout=KEY_TTL,
            )
        except (RedisError, pickle.PicklingError, AttributeError, TypeError):
            logger.warning("Could not read %s ahead", self.prefix, exc_info=True)
            return False
        self._job = job.id
        return True

    def close(self) -> None:
        """Delete every key of this read-ahead and cancel its helper if still queued."""
        if self.conn is None:
            return
        try:
            self.conn.delete(*_keys(self.prefix))
            if self._job is not None:
                job = Job.fetch(self._job, connection=self.conn)
                if job.get_status() == JobStatus.QUEUED:
                    job.cancel()
        except (InvalidJobOperation, NoSuchJobError):
            pass
        except Exception:
            # Best effort: every key has its TTL, and a helper started late finds nothing.
            logger.warning("Could not clean up the read-ahead %s", self.prefix, exc_info=True)

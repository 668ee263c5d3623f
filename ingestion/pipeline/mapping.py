"""The listing's pure per-posting work, done ahead on other workers: a listing is one RQ job
(the run's), so without this a second worker idles while the first maps and hashes.

What a batch's postings need before the listing can compare them — each record mapped to a
Posting (the adapter's parsing), its content hash, its fingerprint text's simhash with the
source's boilerplate — depends on nothing but the posting. So while the listing (the
coordinator, ingestion.pipeline.diff) works on one batch, it offers the next few to helpers
(`map_batch` RQ jobs, at the front of the queue, ahead of chunks); everything that depends on order
(classifying, near-duplicate decisions, writes) stays in the listing, one batch after the
other, as before.

Per offered batch, Redis holds three keys, each with a TTL: the payload (the records, pickled),
a claim (SET NX: whoever sets it computes the batch) and the result (a list the helper pushes
to, the listing pops from). When the listing needs a batch it tries to claim it: if it wins it
computes the batch itself (nobody took it yet, or there is one worker: itself); otherwise it
waits for the helper's result, and takes the batch over when the helper's lease ends without
one (a helper that died). Results are pure: who computes a batch never changes an outcome.

A helper is one RQ job that takes the listing's offers one after another (a list of their
numbers) until none is left for a moment (at once when other jobs are queued), so a work
horse is forked once per helper and source, not once per batch. The listing keeps up to one
helper per other live worker: a slot each (SET NX, a lease the helper renews), filled when an
offer finds no free helper; a helper leaves its slot in the same step as it finds the list
empty (a script), so an offer is never left without a helper that would take it. Every key of
a source's listing is deleted when it ends, however it ends, and its helpers are told to stop.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from ingestion import normalize, simhash
from ingestion.adapters import Posting, RawRecord
from ingestion.pipeline import collector, content
from ingestion.pipeline.content import Content
from runs import queue
from runs.exceptions import RunAborted, RunGone

logger = logging.getLogger(__name__)

MAP_BATCH = "ingestion.pipeline.mapping.map_batch"
# Every key lives at most this long (a run that died leaves nothing behind for longer).
KEY_TTL = 900
# A helper's claim: the listing takes the batch over once it lapses without a result (the
# helper died). Far above what a batch costs, even on a loaded machine.
LEASE_SECONDS = 30
# The listing waits for a helper's result in slices this long, checking its abort between.
WAIT_SLICE = 1
# A helper waits this long for the listing's next offer before it leaves (well under its lease).
LINGER_SECONDS = 5
LINGER_SLICE = 0.5
# Pushed to the offers list when the listing ends: its helpers stop waiting.
END = b"end"
# Batches offered ahead per live worker (bounded memory: the listing holds them).
AHEAD_PER_WORKER = 2
# The listing's own claim's value.
LISTING = "listing"

Entry = Posting | RawRecord
# Per entry sent: (its index in the batch, its posting when it was a record, else None, its
# content hash or "", its (simhash, own words) or None, its job's processed fields or None:
# computed for an ingest's postings whose listing carries the description).
MappedEntry = tuple[int, Posting | None, str, tuple[int, int] | None, Content | None]


@dataclass
class Mapped:
    """What was computed ahead for one batch: the records' postings by their index in the
    batch, and by posting (its id) the content hash and the simhash with its own words.
    Empty: the listing computes everything as it goes."""

    postings: dict[int, Posting] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)
    fingerprints: dict[int, tuple[int, int]] = field(default_factory=dict)
    contents: dict[int, Content] = field(default_factory=dict)

    def posting(self, index: int, record: RawRecord) -> Posting:
        return self.postings.get(index) or record.posting()

    def content_hash(self, posting: Posting) -> str:
        return self.hashes.get(id(posting)) or normalize.content_hash(posting)

    def content(self, posting: Posting) -> Content:
        return self.contents.get(id(posting)) or content.of_posting(posting)


NOTHING = Mapped()


def hashable(posting: Posting) -> bool:
    """Whether the listing reads the posting's content hash (pipeline.classify.Classifier)."""
    return (
        not posting.invalid_reasons
        and bool(posting.external_id.strip())
        and not posting.duplicate_of
    )


def map_entries(
    entries: list[tuple[int, Entry]],
    boilerplate: frozenset[int],
    lines: frozenset[bytes] | None,
    process: bool = False,
    slim: bool = False,
) -> list[MappedEntry]:
    """The pure work of these (index, entry) of a batch: see MappedEntry. `process`: an
    ingest's, which writes these postings' jobs processed (ingestion.pipeline.content).
    `slim`: a listing that reads no posting's description once its hash and simhash are
    known (a preview without keyword filters): those postings come without their long
    texts, which would be most of what is sent back and unpickled by the listing."""
    out: list[list[object]] = []
    texts: list[str] = []
    fingerprinted: list[int] = []
    for index, entry in entries:
        posting = entry.posting() if isinstance(entry, RawRecord) else entry
        chash = ""
        processed = None
        if hashable(posting):
            chash = normalize.content_hash(posting)
            if not posting.needs_detail:
                fingerprinted.append(len(out))
                texts.append(normalize.fingerprint_text(posting.description_html))
                if process:
                    processed = content.of_posting(posting)
                elif slim and isinstance(entry, RawRecord):
                    posting.description_html = posting.requirements_html = ""
        out.append(
            [index, posting if isinstance(entry, RawRecord) else None, chash, None, processed]
        )
    sized = simhash.simhash_many_sized(texts, boilerplate=boilerplate, lines=lines)
    for at, value in zip(fingerprinted, sized, strict=True):
        out[at][3] = value
    return [tuple(row) for row in out]  # type: ignore[misc]


# A helper's last look at the offers list: the next offer, or none and its slot freed, in one
# step (an offer pushed meanwhile would otherwise find the slot taken and nobody to take it).
_POP_OR_LEAVE = """
local seq = redis.call('LPOP', KEYS[1])
if not seq then redis.call('DEL', KEYS[2]) end
return seq
"""


def map_batch(prefix: str, slot: int = 0) -> str:
    """RQ job: a helper of the listing whose offers are under `prefix`, in helper slot
    `slot`: compute the offered batches nobody claimed yet, in order, until the listing has
    offered none for LINGER_SECONDS (or ended). Returns what it did, for the job's record."""
    jobs = queue.get_queue()
    conn = jobs.connection
    me = f"pid {os.getpid()}"
    offers, lease = f"{prefix}:offers", f"{prefix}:helper:{slot}"
    leave = conn.register_script(_POP_OR_LEAVE)
    done = 0
    while True:
        conn.set(lease, me, ex=LEASE_SECONDS)
        seq = conn.lpop(offers)
        # Waiting for the next offer keeps this worker from other jobs: only while none is
        # queued (an ingest's chunks are worth more than a helper that might be needed).
        until = time.monotonic() + LINGER_SECONDS
        while seq is None and time.monotonic() < until and not jobs.count:
            popped = conn.blpop([offers], timeout=LINGER_SLICE)
            seq = popped[1] if popped is not None else None
        if seq is None:
            seq = leave(keys=[offers, lease])
            if seq is None:
                break
        if seq == END:
            conn.delete(lease)
            break
        # A batch's records and postings, as the listing's (ingestion.pipeline.collector).
        with collector.fewer_collections():
            done += _compute(conn, f"{prefix}:{int(cast(bytes, seq))}", me)
    return f"{me}: {done} batches"


def _compute(conn: Any, key: str, me: str) -> int:
    """Compute the batch offered under `key` unless someone claimed it (the listing itself,
    when it got there first): 1 if computed here, else 0."""
    if not conn.set(f"{key}:claim", me, nx=True, ex=LEASE_SECONDS):
        return 0
    blob = conn.get(f"{key}:payload")
    if blob is None:
        return 0  # the listing ended
    entries, boilerplate, lines, process, slim = pickle.loads(blob)
    result = pickle.dumps((me, map_entries(entries, boilerplate, lines, process, slim)))
    pipe = conn.pipeline()
    pipe.rpush(f"{key}:result", result)
    pipe.expire(f"{key}:result", KEY_TTL)
    pipe.delete(f"{key}:payload")
    pipe.execute()
    return 1


class Offers:
    """One source's listing's offered batches (the coordinator's side)."""

    def __init__(
        self,
        run_id: int,
        source_id: int,
        *,
        workers: int,
        recount: Callable[[], int] | None = None,
        process: bool = False,
        slim: bool = False,
    ) -> None:
        self.prefix = f"intake:listmap:{run_id}:{source_id}"
        # Whether the helpers also process the postings, or leave out their texts (map_entries).
        self.process = process
        self.slim = slim
        # The workers that could take part (the listing's own among them), counted again
        # before each batch: a worker that ends its own listing of another group of the run's
        # sources helps this one from then on (ingestion.pipeline.groups).
        self.recount = recount
        self.ahead = 0
        self.slots = 0
        self.conn: Any = None
        self._grow(workers)
        self._seq = 0
        self._jobs: list[str] = []
        # Batches whose result came from another worker, and by whom.
        self.helped = 0
        self.helpers: set[str] = set()

    def batches(
        self,
        batches: Iterable[list[Entry]],
        *,
        to_map: Callable[[list[Entry]], list[tuple[int, Entry]]],
        boilerplate: Callable[[], tuple[frozenset[int], frozenset[bytes] | None]],
        checkpoint: Callable[[], None],
        unhelped: Callable[[], bool] = lambda: False,
    ) -> Iterator[tuple[list[Entry], Mapped]]:
        """`batches` in order, each with what was computed ahead for it. The first is the
        listing's alone: the boilerplate every later simhash leaves out is learned from it.
        While `unhelped()` (asked once the next batch is read: every other worker is busy
        reading this listing ahead, ingestion.pipeline.readahead) nothing is offered and no
        batch read ahead, which would only hold the batch back until the others are read.
        A failure reading the source is raised after the batches read before it."""
        it = iter(batches)
        first = next(it, None)
        if first is None:
            return
        yield first, NOTHING
        learned: tuple[frozenset[int], frozenset[bytes] | None] | None = None
        ahead: deque[tuple[list[Entry], int | None]] = deque()
        failure: Exception | None = None
        done = False
        while True:
            if self.recount is not None and (ahead or not done):
                self._grow(self._recount(self.recount))
            if self.ahead and learned is None:
                learned = boilerplate()
            # Alone (one worker), or every other worker busy reading this listing ahead
            # (`unhelped`): one batch at a time, nothing offered.
            while not done and len(ahead) < (self.ahead if self.ahead and not unhelped() else 1):
                try:
                    batch = next(it)
                except StopIteration:
                    done = True
                    break
                except (RunAborted, RunGone):
                    raise
                except Exception as exc:
                    failure, done = exc, True
                    break
                offered = None
                if learned is not None and not unhelped():
                    offered = self._offer(to_map(batch), learned)
                ahead.append((batch, offered))
            if not ahead:
                break
            batch, seq = ahead.popleft()
            yield batch, self._take(seq, batch, checkpoint)
        if failure is not None:
            raise failure

    @staticmethod
    def _recount(recount: Callable[[], int]) -> int:
        try:
            return recount()
        except Exception:
            logger.warning("Could not count the workers free to help a listing", exc_info=True)
            return 1

    def _grow(self, workers: int) -> None:
        """Offer further ahead, with more helper slots, when more workers could take part
        than before (never fewer: helpers at work keep their slots)."""
        if workers - 1 <= self.slots:
            return
        # One worker is the listing's own: nobody else could take an offer.
        self.ahead = AHEAD_PER_WORKER * workers
        self.slots = workers - 1
        if self.conn is None:
            self.conn = queue.get_queue().connection

    def _offer(
        self,
        entries: list[tuple[int, Entry]],
        learned: tuple[frozenset[int], frozenset[bytes] | None],
    ) -> int | None:
        if not entries or self.conn is None:
            return None
        self._seq += 1
        key = f"{self.prefix}:{self._seq}"
        try:
            pipe = self.conn.pipeline()
            pipe.set(
                f"{key}:payload",
                pickle.dumps((entries, *learned, self.process, self.slim)),
                ex=KEY_TTL,
            )
            pipe.rpush(f"{self.prefix}:offers", self._seq)
            pipe.expire(f"{self.prefix}:offers", KEY_TTL)
            waiting = pipe.execute()[1]
            self._add_helper(waiting)
        except RedisError:
            # Redis away: the listing computes the batch itself, as with one worker.
            logger.warning("Could not offer batch %s to other workers", key, exc_info=True)
            return None
        return self._seq

    def _add_helper(self, waiting: int) -> None:
        """Queue a helper when fewer hold a slot than offers wait (up to one per other
        worker). A slot is held from here: a queued helper may wait long for a worker."""
        assert self.conn is not None
        for slot in range(min(waiting, self.slots)):
            lease = f"{self.prefix}:helper:{slot}"
            if not self.conn.set(lease, "queued", nx=True, ex=KEY_TTL):
                continue
            try:
                job = queue.get_queue().enqueue(
                    MAP_BATCH,
                    self.prefix,
                    slot,
                    at_front=True,
                    result_ttl=0,
                    failure_ttl=KEY_TTL,
                    job_timeout=KEY_TTL,
                )
            except RedisError:
                self.conn.delete(lease)
                raise
            self._jobs.append(job.id)
            return

    def _take(self, seq: int | None, batch: list[Entry], checkpoint: Callable[[], None]) -> Mapped:
        if seq is None or self.conn is None:
            return NOTHING
        key = f"{self.prefix}:{seq}"
        while True:
            try:
                if self.conn.set(f"{key}:claim", LISTING, nx=True, ex=KEY_TTL):
                    self.conn.delete(f"{key}:payload")
                    return NOTHING  # not taken (or its helper's lease lapsed): computed here
                popped = self.conn.blpop([f"{key}:result"], timeout=WAIT_SLICE)
            except RedisError:
                # The result is pure: computing it here changes nothing but who did.
                logger.warning("Could not take batch %s from other workers", key, exc_info=True)
                return NOTHING
            if popped is not None:
                break
            checkpoint()
        helper, entries = pickle.loads(popped[1])  # type: ignore[arg-type]
        self.helped += 1
        self.helpers.add(helper)
        mapped = Mapped()
        for index, posting, chash, fingerprint, processed in entries:
            if posting is not None:
                mapped.postings[index] = posting
            else:
                posting = batch[index]  # type: ignore[assignment]
            if chash:
                mapped.hashes[id(posting)] = chash
            if fingerprint is not None:
                mapped.fingerprints[id(posting)] = fingerprint
            if processed is not None:
                mapped.contents[id(posting)] = processed
        return mapped

    def close(self) -> None:
        """Delete every key of this listing's offers and drop the offers not taken yet."""
        if self.conn is None or not self._seq:
            return
        try:
            keys = [
                f"{self.prefix}:{seq}:{part}"
                for seq in range(1, self._seq + 1)
                for part in ("payload", "claim", "result")
            ]
            leases = [f"{self.prefix}:helper:{slot}" for slot in range(self.slots)]
            # Helpers at work (not those still queued, cancelled below) are told to stop, so
            # that one waiting for a next offer does not hold its worker for LINGER_SECONDS.
            working = sum(v not in (None, b"queued") for v in self.conn.mget(leases))
            pipe = self.conn.pipeline()
            pipe.delete(f"{self.prefix}:offers", *keys, *leases)
            if working:
                pipe.rpush(f"{self.prefix}:offers", *[END] * working)
                pipe.expire(f"{self.prefix}:offers", LINGER_SECONDS + 1)
            pipe.execute()
            for job in Job.fetch_many(self._jobs, connection=self.conn):
                if job is not None and job.get_status() == JobStatus.QUEUED:
                    job.cancel()
        except (InvalidJobOperation, NoSuchJobError):
            pass
        except Exception:
            # Best effort: every key has its TTL, and a job left queued finds nothing to do.
            logger.warning("Could not clean up the listing's offers %s", self.prefix, exc_info=True)

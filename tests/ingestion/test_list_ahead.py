"""The listing's batches mapped ahead on other workers (ingestion.pipeline.mapping): whoever
computes a batch — a helper, the listing itself when nobody took it, or after a helper died —
every item comes out the same. Real database, real Redis, real RQ workers."""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django_rq
import pytest
from redis.exceptions import RedisError
from rq import Worker

from ingestion import services
from ingestion.adapters import Posting
from ingestion.models import RunItem
from ingestion.pipeline import collector, diff, mapping
from runs.models import IngestionRun, RunStatus
from tests.ingestion.boards import description_html, greenhouse_jobs, mount_greenhouse
from tests.ingestion.pages import posting_row, postings_csv
from tests.support import start_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 5


def rows(count: int, *, size: int = 800, prefix: str = "") -> list[dict[str, Any]]:
    """`count` rows: every 7th re-posts the row 5 before it under a new id (a near-duplicate
    or the same content), every 11th has no title (invalid). With `prefix`, their ids are
    `prefix`-00001… (another file's rows that share none of these ids)."""
    out = []
    for n in range(1, count + 1):
        row = posting_row(n, description=description_html(n, size=size))
        if prefix:
            row["external_id"] = f"{prefix}-{n:05d}"
        if n % 7 == 0:
            row.update(title=out[n - 6]["title"], description=out[n - 6]["description"])
        if n % 11 == 0:
            row["title"] = ""
        out.append(row)
    return out


def file_source(user: Any, count: int) -> Any:
    return services.source_create(
        owner=user,
        kind="file",
        company="Initech",
        upload=io.BytesIO(postings_csv(rows(count))),
        upload_name="jobs.csv",
    )


def items_of(run: IngestionRun) -> list[tuple[Any, ...]]:
    return list(
        RunItem.objects.filter(run=run)
        .order_by("row", "external_id")
        .values_list("row", "external_id", "title", "outcome", "reason")
    )


def listing_keys() -> list[bytes]:
    return list(django_rq.get_connection("default").scan_iter("intake:listmap:*"))


def mapped_elsewhere(run: IngestionRun) -> int:
    return sum(s["mappedElsewhere"] for s in run.summary["sources"])


@pytest.fixture
def preview(work, user, monkeypatch) -> Callable[[int], IngestionRun]:  # type: ignore[no-untyped-def]
    """A preview of a 40-row file in batches of 5 on an in-process burst worker, the
    listing told there are `workers` live workers (so that it offers batches from 2 on)."""
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", BATCH)
    return previewer(work, user, monkeypatch, file_source(user, 40))


def previewer(work, user, monkeypatch, source) -> Callable[[int], IngestionRun]:  # type: ignore[no-untyped-def]
    """Runs a preview of `source`, the listing told there are `workers` live workers."""

    def run(workers: int) -> IngestionRun:
        monkeypatch.setattr(diff, "live_workers", lambda: workers)
        done = work(services.preview_start(owner=user, source_ids=[source.pk]))
        assert done.status == RunStatus.FINISHED, done.error_message
        return done

    return run


def test_offers_nobody_takes_are_computed_by_the_listing_and_cleaned_up(preview) -> None:  # type: ignore[no-untyped-def]
    alone = preview(1)
    offered = preview(2)
    assert items_of(offered) == items_of(alone)
    assert {i[3] for i in items_of(alone)} >= {"new", "duplicate", "invalid"}
    assert mapped_elsewhere(offered) == 0
    assert listing_keys() == []
    assert django_rq.get_queue("default").count == 0, "offers left queued"


def test_batches_a_helper_computed_give_the_same_items(preview, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    alone = preview(1)
    real = mapping.Offers._offer

    def offer_and_help(self, entries, learned):  # type: ignore[no-untyped-def]
        seq = real(self, entries, learned)
        if seq is not None:  # a helper at once, before the listing gets there
            assert mapping.map_batch(self.prefix).endswith(": 1 batches")
        return seq

    monkeypatch.setattr(mapping, "LINGER_SECONDS", 0)
    monkeypatch.setattr(mapping.Offers, "_offer", offer_and_help)
    helped = preview(2)
    assert items_of(helped) == items_of(alone)
    # Batch 1 is the listing's own (the boilerplate is learned from it); 2 to 8 were offered.
    assert mapped_elsewhere(helped) == 40 // BATCH - 1
    assert listing_keys() == []


def helped_at_once(monkeypatch) -> list[mapping.Mapped]:  # type: ignore[no-untyped-def]
    """Have a helper compute each batch as soon as it is offered; returns what the listing
    takes of each offered batch, filled in as the run goes."""
    real_offer, real_take = mapping.Offers._offer, mapping.Offers._take
    taken: list[mapping.Mapped] = []

    def offer_and_help(self, entries, learned):  # type: ignore[no-untyped-def]
        seq = real_offer(self, entries, learned)
        if seq is not None:
            mapping.map_batch(self.prefix)
        return seq

    def take(self, seq, batch, checkpoint):  # type: ignore[no-untyped-def]
        result = real_take(self, seq, batch, checkpoint)
        if seq is not None:
            taken.append(result)
        return result

    monkeypatch.setattr(mapping, "LINGER_SECONDS", 0)
    monkeypatch.setattr(mapping.Offers, "_offer", offer_and_help)
    monkeypatch.setattr(mapping.Offers, "_take", take)
    return taken


def helped_texts(taken: list[mapping.Mapped]) -> list[str]:
    return [p.description_html for m in taken for p in m.postings.values() if p.title]


def test_a_previews_helper_sends_its_postings_back_without_their_texts(
    preview, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    alone = preview(1)
    taken = helped_at_once(monkeypatch)
    helped = preview(2)
    assert items_of(helped) == items_of(alone)
    texts = helped_texts(taken)
    assert texts and set(texts) == {""}


def test_a_keyword_filter_keeps_the_texts_in_a_helpers_postings(work, user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", BATCH)
    source = file_source(user, 40)
    source.include_keywords = ["Python"]
    source.save()
    run = previewer(work, user, monkeypatch, source)
    alone = run(1)
    taken = helped_at_once(monkeypatch)
    helped = run(2)
    assert items_of(helped) == items_of(alone)
    assert {i[3] for i in items_of(alone)} >= {"new", "filtered"}
    texts = helped_texts(taken)
    assert texts and all(texts)


def test_one_helper_job_computes_every_batch_offered_so_far(preview, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    alone = preview(1)
    real = mapping.Offers._take
    helped: list[str] = []

    def help_once_then_take(self, seq, batch, checkpoint):  # type: ignore[no-untyped-def]
        if seq is not None and not helped:
            helped.append(mapping.map_batch(self.prefix))
        return real(self, seq, batch, checkpoint)

    monkeypatch.setattr(mapping, "LINGER_SECONDS", 0)
    monkeypatch.setattr(mapping.Offers, "_take", help_once_then_take)
    again = preview(2)
    assert items_of(again) == items_of(alone)
    # Two live workers: the listing offers 2 × 2 batches ahead, and one job took them all.
    ahead = mapping.AHEAD_PER_WORKER * 2
    assert helped[0].endswith(f": {ahead} batches")
    assert mapped_elsewhere(again) == ahead
    assert listing_keys() == []


def test_the_listing_queues_a_helper_per_other_worker_not_per_offer(preview, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = mapping.queue.get_queue
    queued: list[tuple[Any, ...]] = []

    class Counting:
        def __init__(self) -> None:
            self.connection = real().connection

        def enqueue(self, func: str, *args: Any, **kwargs: Any) -> Any:
            if func == mapping.MAP_BATCH:
                queued.append(args)
            return real().enqueue(func, *args, **kwargs)

    monkeypatch.setattr(mapping.queue, "get_queue", Counting)
    run = preview(3)  # nobody helps: the first helpers queued hold their slots to the end
    prefix = f"intake:listmap:{run.pk}:{run.summary['sources'][0]['sourceId']}"
    assert queued == [(prefix, 0), (prefix, 1)]
    assert mapped_elsewhere(run) == 0
    assert listing_keys() == []
    assert django_rq.get_queue("default").count == 0, "helpers left queued"


def test_a_helper_leaves_at_once_when_the_listing_has_ended() -> None:
    conn = django_rq.get_connection("default")
    prefix = "intake:listmap:0:0"
    conn.rpush(f"{prefix}:offers", mapping.END)
    assert mapping.LINGER_SECONDS >= 1
    began = time.monotonic()
    assert mapping.map_batch(prefix, 0).endswith(": 0 batches")
    assert time.monotonic() - began < mapping.LINGER_SECONDS / 2
    assert listing_keys() == []


def test_a_helper_that_died_holding_its_claim_is_taken_over(preview, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    alone = preview(1)
    real_offer, real_take = mapping.Offers._offer, mapping.Offers._take
    found: list[bytes | None] = []

    def offer_and_die(self, entries, learned):  # type: ignore[no-untyped-def]
        seq = real_offer(self, entries, learned)
        if seq is not None:  # claimed, never answered: its lease lapses
            self.conn.set(f"{self.prefix}:{seq}:claim", "pid 0", px=300)
        return seq

    def take(self, seq, batch, checkpoint):  # type: ignore[no-untyped-def]
        if seq is not None:
            found.append(self.conn.get(f"{self.prefix}:{seq}:claim"))
        return real_take(self, seq, batch, checkpoint)

    monkeypatch.setattr(mapping.Offers, "_offer", offer_and_die)
    monkeypatch.setattr(mapping.Offers, "_take", take)
    again = preview(2)
    assert items_of(again) == items_of(alone)
    assert b"pid 0" in found
    assert mapped_elsewhere(again) == 0
    assert listing_keys() == []


def test_a_boards_jobs_are_mapped_by_the_helper_too(
    boards, work, user, greenhouse_source, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Not only an uploaded file's rows: a board's jobs are offered as parsed, unmapped."""
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", BATCH)
    mount_greenhouse(boards, "acme", list(greenhouse_jobs(40, size=600)))
    run = previewer(work, user, monkeypatch, greenhouse_source)
    alone = run(1)
    taken = helped_at_once(monkeypatch)
    helped = run(2)
    assert items_of(helped) == items_of(alone)
    assert {i[3] for i in items_of(alone)} == {"new"}
    mapped = [len(m.postings) for m in taken]
    assert mapped == [BATCH] * (40 // BATCH - 1)  # the helper's postings, not the listing's


@pytest.mark.slow
def test_a_second_worker_maps_batches_of_the_listing_with_the_same_items(
    worker, procs, tmp_path: Path, user, other_user
) -> None:  # type: ignore[no-untyped-def]
    """Real forked workers, the listing's real batch size: one worker, then two."""
    runs = {}
    queue = django_rq.get_queue("default")
    for owner, workers in ((user, 1), (other_user, 2)):
        while len(procs) < workers:
            procs.append(start_worker(tmp_path, name=f"w{len(procs)}"))
        wait_for(lambda n=workers: Worker.count(queue=queue) >= n, timeout=60, what="live workers")
        source = file_source(owner, 8 * diff.LISTING_BATCH_SIZE)
        run = services.preview_start(owner=owner, source_ids=[source.pk])
        wait_for(
            lambda r=run: IngestionRun.objects.get(pk=r.pk).is_terminal,
            timeout=300,
            what="the run",
        )
        run.refresh_from_db()
        assert run.status == RunStatus.FINISHED, run.error_message
        runs[workers] = run
    assert items_of(runs[2]) == items_of(runs[1])
    assert mapped_elsewhere(runs[1]) == 0
    assert mapped_elsewhere(runs[2]) > 0, "the second worker mapped no batch"
    assert listing_keys() == []


def test_offers_redis_refuses_are_computed_by_the_listing(preview, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    alone = preview(1)
    real = mapping.queue.get_queue

    class Refusing:
        def __init__(self) -> None:
            self.connection = real().connection

        def enqueue(self, func: str, *args: Any, **kwargs: Any) -> Any:
            if func == mapping.MAP_BATCH:
                raise RedisError("Redis is away")
            return real().enqueue(func, *args, **kwargs)

    monkeypatch.setattr(mapping.queue, "get_queue", Refusing)
    again = preview(2)
    assert items_of(again) == items_of(alone)
    assert listing_keys() == []


def test_the_listing_collects_garbage_once_per_batch_not_every_700_allocations(
    preview, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    real = diff.SourceDiff._apply
    seen: list[tuple[int, ...]] = []

    def apply(self, batch):  # type: ignore[no-untyped-def]
        seen.append(gc.get_threshold())
        return real(self, batch)

    monkeypatch.setattr(diff.SourceDiff, "_apply", apply)
    preview(1)
    assert {s[0] for s in seen} == {collector.LISTING_THRESHOLD}
    assert gc.get_threshold() == before


def test_a_helper_maps_a_batch_collecting_as_rarely_as_the_listing(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = mapping.map_entries
    seen: list[int] = []

    def map_entries(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(gc.get_threshold()[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(mapping, "LINGER_SECONDS", 0)
    monkeypatch.setattr(mapping, "map_entries", map_entries)
    offers = mapping.Offers(1, 1, workers=2)
    posting = Posting(external_id="1", title="Engineer", description_html="<p>Hello</p>")
    try:
        assert offers._offer([(0, posting)], (frozenset(), None)) == 1
        assert mapping.map_batch(offers.prefix).endswith(": 1 batches")
    finally:
        offers.close()
    assert seen == [collector.LISTING_THRESHOLD]
    assert gc.get_threshold()[0] != collector.LISTING_THRESHOLD


def test_a_listing_offers_its_batches_once_a_worker_is_free_to_help(
    work, user, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # As when another group of the run's sources ends its listing: the worker that listed it
    # helps this one from then on (ingestion.pipeline.groups).
    monkeypatch.setattr(diff, "LISTING_BATCH_SIZE", BATCH)
    source = file_source(user, 40)
    alone = previewer(work, user, monkeypatch, source)(1)
    real = mapping.Offers._offer

    def offer_and_help(self, entries, learned):  # type: ignore[no-untyped-def]
        seq = real(self, entries, learned)
        if seq is not None:
            assert mapping.map_batch(self.prefix).endswith(": 1 batches")
        return seq

    monkeypatch.setattr(mapping, "LINGER_SECONDS", 0)
    monkeypatch.setattr(mapping.Offers, "_offer", offer_and_help)
    # Counted at the start and before batches 2 to 4: alone; then a second worker is free.
    counts = iter([1, 1, 1, 1])
    monkeypatch.setattr(diff, "live_workers", lambda: next(counts, 2))
    helped = work(services.preview_start(owner=user, source_ids=[source.pk]))
    assert helped.status == RunStatus.FINISHED, helped.error_message
    assert items_of(helped) == items_of(alone)
    # Batches 5 to 8 were offered and computed by the helper.
    assert mapped_elsewhere(helped) == 4
    assert listing_keys() == []

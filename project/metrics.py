"""`GET /metrics`: Prometheus text exposition, read from the database and Redis at scrape time.

Web servers, workers and the cron process are separate processes (on several machines when
scaled out): counters kept in any one process's memory would be that process's share only.
The database and Redis hold the whole truth, so the collector reads them at each scrape, with
bounded, aggregated queries (over the runs table and its snapshot counters, never over the
per-item rows). A part that cannot be read (Redis down) is reported by `intake_redis_up 0`
and its families are left out, rather than failing the whole scrape.

The families are listed in docs/operations.md (Metrics).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from rq import Queue

from ingestion import selectors as ingestion_selectors
from ingestion.models import ItemOutcome
from project.health import health_redis, live_worker_count
from runs import selectors as run_selectors
from runs.models import OutboxEvent
from runs.relay import outbox_lag_seconds

logger = logging.getLogger(__name__)

# Run duration histogram bounds (seconds): from a quick preview to a long ingest.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
# Fetch errors are counted over this window (seconds), from the RawPayload each fetch leaves
# (they are deleted after INTAKE_PAYLOAD_TTL_DAYS, so a lifetime count would fall back).
FETCH_ERROR_WINDOW = 3600


# The totals of runs that ended more than SETTLE_SECONDS ago no longer change: each process
# sums them once every SETTLED_REFRESH_SECONDS (so deleted runs leave the sums within that
# long), and each scrape sums only the rest (the active and the just-ended runs), so a
# scrape costs the same with a year of runs behind it.
SETTLE_SECONDS = 300
SETTLED_REFRESH_SECONDS = 600


@dataclass
class _Settled:
    lock: threading.Lock = field(default_factory=threading.Lock)
    cutoff: datetime | None = None
    computed_at: float = float("-inf")
    totals: dict[tuple[str, str], run_selectors.RunTotals] = field(default_factory=dict)


_settled = _Settled()


def forget_settled() -> None:
    """Sum the settled runs again at the next scrape."""
    with _settled.lock:
        _settled.cutoff = None


def _run_totals() -> dict[tuple[str, str], run_selectors.RunTotals]:
    """Per (kind, status), every run's totals: the settled ones from this process's cache,
    the others read now."""
    read = functools.partial(
        run_selectors.run_totals, bounds=DURATION_BUCKETS, outcomes=ItemOutcome.values
    )
    with _settled.lock:
        if (
            _settled.cutoff is None
            or time.monotonic() - _settled.computed_at > SETTLED_REFRESH_SECONDS
        ):
            cutoff = timezone.now() - timedelta(seconds=SETTLE_SECONDS)
            _settled.totals = read(where=run_selectors.settled_runs(cutoff))
            _settled.cutoff, _settled.computed_at = cutoff, time.monotonic()
        cutoff, settled = _settled.cutoff, dict(_settled.totals)
    for key, fresh in read(where=~run_selectors.settled_runs(cutoff)).items():
        settled[key] = settled[key] + fresh if key in settled else fresh
    return settled


def outbox_backlog() -> tuple[int, float]:
    """The events outbox (`intake:events`, runs/relay.py): (rows not yet published, seconds
    since the oldest of them occurred), read through the partial index of unpublished rows."""
    pending = OutboxEvent.objects.filter(published_at__isnull=True).count()
    return pending, outbox_lag_seconds()


class IntakeCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        began = time.monotonic()
        yield from self._database()
        yield from self._redis()
        yield GaugeMetricFamily(
            "intake_scrape_duration_seconds",
            "How long this scrape's queries took.",
            value=time.monotonic() - began,
        )

    def _database(self) -> Iterator[Metric]:
        try:
            families = list(_database_families())
        except Exception:
            logger.exception("Metrics: the database could not be read")
            families = []
        yield GaugeMetricFamily(
            "intake_database_up",
            "1 when this scrape could read the database, else 0.",
            value=1 if families else 0,
        )
        yield from families

    def _redis(self) -> Iterator[Metric]:
        try:
            families = list(_redis_families())
        except Exception as exc:
            logger.warning("Metrics: Redis could not be read (%s)", exc)
            families = []
        yield GaugeMetricFamily(
            "intake_redis_up",
            "1 when this scrape could read Redis, else 0.",
            value=1 if families else 0,
        )
        yield from families


def _database_families() -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "intake_runs", "Runs in the database, by kind and status.", labels=["kind", "status"]
    )
    durations = HistogramMetricFamily(
        "intake_run_duration_seconds",
        "Ended runs' durations, from started to finished, by kind and how they ended.",
        labels=["kind", "status"],
    )
    items = CounterMetricFamily(
        "intake_run_items",
        "Postings the runs decided an outcome for (new, updated, unchanged, expired, "
        "duplicate, filtered, invalid, error), by run kind and outcome.",
        labels=["kind", "outcome"],
    )
    jobs = CounterMetricFamily(
        "intake_run_jobs",
        "The runs' snapshot counters (new, updated, ready, skipped, expired, failed), by run "
        "kind and counter.",
        labels=["kind", "counter"],
    )
    outcome_sums: dict[tuple[str, str], int] = defaultdict(int)
    counter_sums: dict[tuple[str, str], int] = defaultdict(int)
    totals = _run_totals()
    for (kind, status), total in sorted(totals.items()):
        runs.add_metric([kind, status], total.runs)
        if total.durations_count:
            buckets = [
                (str(float(bound)), at_most)
                for bound, at_most in zip(DURATION_BUCKETS, total.durations_at_most, strict=True)
            ]
            durations.add_metric(
                [kind, status],
                buckets=[*buckets, ("+Inf", total.durations_count)],
                sum_value=total.durations_seconds,
            )
        for outcome, count in total.outcomes.items():
            outcome_sums[(kind, outcome)] += count
        for counter, count in total.counters.items():
            counter_sums[(kind, counter)] += count
    for (kind, outcome), count in sorted(outcome_sums.items()):
        items.add_metric([kind, outcome], count)
    for (kind, counter), count in sorted(counter_sums.items()):
        jobs.add_metric([kind, counter], count)
    yield from (runs, durations, items, jobs)

    since = timezone.now() - timedelta(seconds=FETCH_ERROR_WINDOW)
    errors = GaugeMetricFamily(
        "intake_fetch_errors_last_hour",
        "Outbound fetches that failed after their tries within the last hour, by source kind "
        "('' for a fetch without a source).",
        labels=["source_kind"],
    )
    for kind, count in sorted(ingestion_selectors.fetch_errors_by_kind(since=since).items()):
        errors.add_metric([kind], count)
    yield errors

    failing = GaugeMetricFamily(
        "intake_sources_failing",
        "Sources whose last listing failed, by kind.",
        labels=["source_kind"],
    )
    for kind, count in sorted(ingestion_selectors.failing_sources_by_kind().items()):
        failing.add_metric([kind], count)
    yield failing

    pending, lag = outbox_backlog()
    yield GaugeMetricFamily(
        "intake_outbox_pending", "Outbox events not yet published.", value=pending
    )
    yield GaugeMetricFamily(
        "intake_outbox_lag_seconds",
        "Age of the oldest outbox event not yet published (0 when none).",
        value=lag,
    )


def _redis_families() -> Iterator[Metric]:
    length = GaugeMetricFamily(
        "intake_queue_length", "Jobs waiting in each RQ queue.", labels=["queue"]
    )
    workers = GaugeMetricFamily(
        "intake_workers_live",
        "RQ workers of each queue that beat recently (project/health.py).",
        labels=["queue"],
    )
    with health_redis() as client:
        for name in sorted(settings.RQ_QUEUES):
            length.add_metric([name], Queue(name, connection=client).count)
            workers.add_metric([name], live_worker_count(client, name))
    yield length
    yield workers


def registry() -> CollectorRegistry:
    """Only Intake's own families: the web process's Python and process metrics would
    describe one process of many."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IntakeCollector())
    return registry


def exposition() -> bytes:
    """The text exposition of one scrape."""
    return generate_latest(registry())

#!/usr/bin/env python
"""What one GET /metrics scrape costs (project/metrics.py) against a database with many runs
and fetch records: the first scrape of a process (which sums the settled runs) and the ones
after it, each the median of --repeat.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/intake_metrics_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/metrics.py --runs 20000

Give it a throwaway database: it migrates it and, when it holds no run, fills it with --runs
ended runs (over the last 300 days) of 50 users and 500 sources, and --payloads fetch records
of the last hour (1 in 100 failed). Nothing is asserted (machines are noisy).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from ingestion.models import RawPayload, Source  # noqa: E402
from project import metrics  # noqa: E402
from runs.models import IngestionRun  # noqa: E402


def seed(runs: int, payloads: int) -> None:
    rng = random.Random(1)
    users = [User.objects.get_or_create(username=f"bench{i}")[0] for i in range(50)]
    sources = Source.objects.bulk_create(
        Source(
            owner=users[i % 50],
            company=f"Company {i}",
            kind=rng.choice(["greenhouse", "lever", "ashby"]),
            identifier=f"board{i}",
            last_fetch_ok=i % 7 != 0,
        )
        for i in range(500)
    )
    now = timezone.now()
    batch = []
    for i in range(runs):
        started = now - timedelta(days=rng.random() * 300)
        batch.append(
            IngestionRun(
                owner=users[i % 50],
                kind=rng.choice(["preview", "ingest"]),
                status=rng.choice(["finished", "finished", "error", "aborted"]),
                started_at=started,
                finished_at=started + timedelta(seconds=rng.random() * 3000),
                jobs_new=rng.randint(0, 5000),
                jobs_ready=rng.randint(0, 5000),
                outcome_counts={"new": rng.randint(0, 5000), "unchanged": 4000, "error": 3},
            )
        )
    IngestionRun.objects.bulk_create(batch, batch_size=2000)
    for start in range(0, payloads, 5000):
        RawPayload.objects.bulk_create(
            RawPayload(
                source=sources[i % 500],
                url=f"https://boards.example.com/{i}",
                error="connection refused" if i % 100 == 0 else "",
            )
            for i in range(start, min(payloads, start + 5000))
        )


def timed(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        metrics.exposition()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--payloads", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if not IngestionRun.objects.exists():
        seed(args.runs, args.payloads)
    first = timed(1)
    warm = timed(args.repeat)
    print(
        f"runs={IngestionRun.objects.count():,} fetch records={RawPayload.objects.count():,}: "
        f"first scrape {first:.0f} ms, then median {warm:.0f} ms"
    )


if __name__ == "__main__":
    main()

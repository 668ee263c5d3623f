"""Peak Python memory of the CSV report download, streamed (what the view serves) against
the same CSV gathered whole (what Django did with a sync iterator under ASGI), for 100,000
items of a throwaway run. Run inside Django against a scratch database:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<scratch> \\
        .venv/bin/python manage.py shell < bench/report_memory.py
"""

from __future__ import annotations

import tracemalloc

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from ingestion import report
from ingestion.models import RunItem
from runs.models import IngestionRun

ITEMS = 100_000

user, _ = User.objects.get_or_create(username="bench-report-memory")
IngestionRun.objects.filter(owner=user).delete()
run = IngestionRun.objects.create(owner=user, kind="ingest", status="finished")
RunItem.objects.bulk_create(
    (
        RunItem(
            run=run,
            external_id=str(i),
            title=f"Role {i} Engineer",
            url=f"https://example.com/jobs/{i}",
            outcome="new",
            job_status="ready",
        )
        for i in range(ITEMS)
    ),
    batch_size=5000,
)


async def _consume() -> int:
    size = 0
    async for chunk in report.report_csv_stream(run):
        size += len(chunk)  # each block is dropped once sent, as the response does
    return size


try:
    tracemalloc.start()
    size = async_to_sync(_consume)()
    streamed = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tracemalloc.start()
    whole = list(report.report_csv_blocks(run))
    gathered = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"{ITEMS:,} items, {size:,} bytes of CSV: peak {streamed / 2**20:.1f} MiB streamed, "
        f"{gathered / 2**20:.1f} MiB gathered whole ({gathered / streamed:.1f}x)"
    )
finally:
    IngestionRun.objects.filter(owner=user).delete()
    user.delete()

"""RQ's cron schedule, enqueued by `manage.py cron` (the start command runs it). It lives in
project/ because it wires apps together; runs/ knows nothing of ingestion. The stale-run check
is not here: `manage.py cron` runs it in its own process, since a queued check would wait for a
worker, and no worker may be alive. Several schedulers against one Redis are harmless: each
job below is idempotent."""

from rq import cron

from ingestion.tasks import cleanup_payloads, run_due_schedules
from runs.queue import QUEUE_NAME

# Daily at 03:00 (the scheduler's local time); an interval would also run it at every start.
# With no worker to run it, a day's job is dropped rather than pile up behind the next.
cron.register(cleanup_payloads, QUEUE_NAME, cron="0 3 * * *", ttl=23 * 3600)

# Every minute, and at once when the scheduler starts: start the schedules that are due
# (ingestion.schedules). Each due schedule is claimed by a conditional UPDATE, so a tick
# queued twice (two schedulers) starts it once; a tick no worker picked up within its minute
# is dropped, the next one does its work.
cron.register(run_due_schedules, QUEUE_NAME, interval=60, ttl=60)

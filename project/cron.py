"""RQ's cron scheduler configuration: `manage.py rqcron project.cron` (the start command runs
it). It lives in project/ because it wires apps together; runs/ knows nothing of ingestion.
Several schedulers against one Redis are harmless: each job below is idempotent."""

from django.conf import settings
from rq import cron

from ingestion.tasks import cleanup_payloads
from runs.tasks import QUEUE_NAME, reap_stale_runs

cron.register(reap_stale_runs, QUEUE_NAME, interval=settings.INTAKE_REAPER_INTERVAL)
# Daily at 03:00 (the scheduler's local time); an interval would also run it at every start.
cron.register(cleanup_payloads, QUEUE_NAME, cron="0 3 * * *")

"""RQ's cron scheduler configuration: `manage.py rqcron runs.cron` (the start command runs it).
Several schedulers against one Redis are harmless: each job below is idempotent."""

from django.conf import settings
from rq import cron

from runs.tasks import QUEUE_NAME, reap_stale_runs

cron.register(reap_stale_runs, QUEUE_NAME, interval=settings.INTAKE_REAPER_INTERVAL)

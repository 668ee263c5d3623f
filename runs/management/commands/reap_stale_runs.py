from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from runs import stale


class Command(BaseCommand):
    help = (
        "End active runs whose worker stopped responding (no heartbeat for "
        "INTAKE_RUN_STALE_AFTER seconds, or pending longer than INTAKE_RUN_PENDING_TIMEOUT) "
        "as `error` (as `aborted` when an abort was requested). `manage.py cron` does the "
        "same every INTAKE_REAPER_INTERVAL seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        pass

    def handle(self, *args: Any, **options: Any) -> None:
        reaped = stale.run_reap_stale()
        for run in reaped:
            said = run.events.order_by("-seq").values_list("message", flat=True).first()
            self.stdout.write(f"Run #{run.pk} ({run.owner}) {run.status}: {said}")
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"Reaped {len(reaped)} stale run(s) "
                f"(limit {settings.INTAKE_RUN_STALE_AFTER:g} s without a heartbeat)."
            )

import sys
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs import services, stale
from runs.exceptions import RunError
from runs.workloads import DIAGNOSTIC


class Command(BaseCommand):
    help = (
        "Start a diagnostic run (synthetic items on a worker) to check that workers, "
        "heartbeats and the live feed work; with --wait, follow it to the end."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", required=True, help="Username that owns the run.")
        parser.add_argument("--items", type=int, default=20, help="Items to process (default 20).")
        parser.add_argument(
            "--delay", type=float, default=0.1, help="Seconds per item (default 0.1)."
        )
        parser.add_argument("--wait", action="store_true", help="Follow the run until it ends.")
        parser.add_argument(
            "--timeout", type=float, default=600, help="Give up waiting after this many seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["owner"]).first()
        if user is None:
            raise CommandError(f"No user named {options['owner']!r}.")
        try:
            run = services.run_start(
                owner=user,
                kind=DIAGNOSTIC,
                config={"items": options["items"], "delay": options["delay"]},
            )
        except RunError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Started run #{run.pk}.")
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while not run.is_terminal:
            if time.monotonic() > deadline:
                raise CommandError(
                    f"Run #{run.pk} still {run.status} after {options['timeout']:g} s."
                )
            time.sleep(0.5)
            run.refresh_from_db()
            stale.run_end_if_stale(run)  # every worker may be gone: say so, not wait
            if options["verbosity"] >= 1 and sys.stdout.isatty():
                self.stdout.write(f"\r{run.status}: {run.items_done}/{run.total_jobs}", ending="")
        self.stdout.write(f"\nRun #{run.pk} {run.status}. {run.error_message}".rstrip())
        if run.status != "finished":
            raise CommandError(f"Run #{run.pk} ended {run.status}.")

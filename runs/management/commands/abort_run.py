from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs import services
from runs.exceptions import RunNotActive
from runs.models import IngestionRun


class Command(BaseCommand):
    help = (
        "Abort a run by id. A pending run is aborted at once; a running one stops at its "
        "worker's next checkpoint and keeps the work it finished."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int, help="The run's id (shown on its page).")

    def handle(self, *args: Any, **options: Any) -> None:
        run = IngestionRun.objects.filter(pk=options["run_id"]).first()
        if run is None:
            raise CommandError(f"Run #{options['run_id']} does not exist.")
        try:
            services.run_request_abort(run)
        except RunNotActive as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Run #{run.pk} is {run.status}"
            + (
                "; abort requested, it stops at the next checkpoint."
                if not run.is_terminal
                else "."
            )
        )

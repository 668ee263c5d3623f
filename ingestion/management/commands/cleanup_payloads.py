from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ingestion.services import payload_delete_expired


class Command(BaseCommand):
    help = (
        "Delete raw payloads (the stored bodies of fetches) older than INTAKE_PAYLOAD_TTL_DAYS "
        "days, in batches. The same job is queued daily by `manage.py cron`. Safe "
        "to interrupt: each batch is committed on its own."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="delete payloads older than this many days "
            f"(default: INTAKE_PAYLOAD_TTL_DAYS, now {settings.INTAKE_PAYLOAD_TTL_DAYS:g})",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="rows per DELETE (default: %(default)s)",
        )

    def handle(
        self, *args: Any, days: float | None, dry_run: bool, batch_size: int, **options: Any
    ) -> None:
        days = settings.INTAKE_PAYLOAD_TTL_DAYS if days is None else days
        count = payload_delete_expired(
            older_than_days=days, batch_size=max(1, batch_size), dry_run=dry_run
        )
        if options["verbosity"] >= 1:
            verb = "Would delete" if dry_run else "Deleted"
            self.stdout.write(f"{verb} {count} raw payload(s) older than {days:g} days.")

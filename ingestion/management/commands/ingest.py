import json
import sys
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from ingestion import report, run_kinds, services, vocabulary
from ingestion.models import Source
from runs import stale
from runs.exceptions import RunError
from runs.models import IngestionRun, RunStatus
from runs.numbers import number


class Command(BaseCommand):
    help = (
        "Ingest job postings from sources (by id or company name, default: every enabled "
        "source of the owner) on the RQ workers. --dry-run previews instead (nothing is "
        "written to jobs); --wait follows the run with a progress bar; --json prints the final "
        "run summary as JSON. Exits non-zero when the run ends in error or is aborted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", required=True, help="Username that owns the sources.")
        parser.add_argument(
            "sources",
            nargs="*",
            help="Source ids or company names (case-insensitive). Default: all enabled sources.",
        )
        parser.add_argument("--all", action="store_true", help="Every enabled source (default).")
        parser.add_argument("--dry-run", action="store_true", help="Preview only: write no jobs.")
        parser.add_argument("--wait", action="store_true", help="Follow the run until it ends.")
        parser.add_argument(
            "--json", action="store_true", help="Wait, then print the run's summary as JSON."
        )
        parser.add_argument(
            "--timeout", type=float, default=3600, help="Give up waiting after this many seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user named {options['owner']!r}.")
        source_ids = None if options["all"] else self._resolve(owner, options["sources"])
        try:
            if options["dry_run"]:
                run = services.preview_start(owner=owner, source_ids=source_ids)
            else:
                run = services.ingest_start(owner=owner, source_ids=source_ids)
        except (services.SourceError, RunError) as exc:
            raise CommandError(str(exc)) from exc
        quiet = options["json"] or options["verbosity"] == 0
        if not quiet:
            kind = "preview" if options["dry_run"] else "ingest"
            self.stdout.write(f"Started {kind} run #{run.pk}.")
        if not (options["wait"] or options["json"]):
            return
        run = self._follow(run, options["timeout"], show=not quiet)
        if options["json"]:
            self.stdout.write(json.dumps(report.report_summary(run), indent=2, default=str))
        else:
            self.stdout.write(f"Run #{run.pk} {run.status}. {run.error_message}".rstrip())
            summary = run.events.filter(type="run.summary").order_by("-id").first()
            if summary:
                self.stdout.write(summary.message)
        if run.status != RunStatus.FINISHED:
            raise CommandError(f"Run #{run.pk} ended {run.status}.")

    def _resolve(self, owner: Any, names: list[str]) -> list[int] | None:
        if not names:
            return None
        ids: list[int] = []
        for name in names:
            if name.isdigit():
                ids.append(int(name))
                continue
            matches = list(
                Source.objects.filter(Q(owner=owner) & Q(company__iexact=name)).values_list(
                    "id", flat=True
                )
            )
            if not matches:
                raise CommandError(f"No source of {owner.username} for company {name!r}.")
            ids.extend(matches)
        return ids

    def _follow(self, run: IngestionRun, timeout: float, *, show: bool) -> IngestionRun:
        deadline = time.monotonic() + timeout
        tty = sys.stdout.isatty()
        last_line = ""
        while not run.is_terminal:
            if time.monotonic() > deadline:
                raise CommandError(f"Run #{run.pk} still {run.status} after {timeout:g} s.")
            time.sleep(0.5)
            run.refresh_from_db()
            stale.run_end_if_stale(run)  # every worker may be gone: say so, not wait
            line = _progress_line(run)
            if show and line != last_line:
                self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")
                last_line = line
        if show and tty:
            self.stdout.write("")
        return run


def _progress_line(run: IngestionRun, width: int = 30) -> str:
    tallies = vocabulary.outcomes_text(vocabulary.outcome_counts(run))
    if run.kind == run_kinds.INGEST:
        tallies += f"; jobs: {vocabulary.jobs_text(run.counts())}"
    if run.total_jobs:
        share = min(1.0, run.items_done / run.total_jobs)
        bar = "#" * int(share * width)
        done = f"{number(run.items_done)}/{number(run.total_jobs)}"
        return f"{run.phase} [{bar:<{width}}] {done} {tallies}"
    return f"{run.phase}: {number(run.items_done)} read; {tallies}"

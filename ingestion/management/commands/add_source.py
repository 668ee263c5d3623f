from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingestion import services
from ingestion.adapters import registry
from ingestion.adapters.files import FileAdapter


class Command(BaseCommand):
    help = (
        f"Add a source: a {registry.board_names()} board (kind + identifier, or just paste "
        "its careers URL), a careers page carrying JSON-LD (its URL), or an uploaded file of "
        "postings / list of posting URLs (--file)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", required=True, help="Username that owns the source.")
        parser.add_argument(
            "target",
            nargs="?",
            default="",
            help="A careers URL (board URLs are recognised), or the identifier for --kind: "
            f"{registry.identifier_help()}.",
        )
        parser.add_argument("--kind", choices=registry.kinds(), help="Source kind.")
        parser.add_argument(
            "--company",
            default="",
            help="Company name (default: the board's name; a careers page's postings' "
            "hiringOrganization, its host until read; the company a file's rows name, else "
            "its first posting URL's site).",
        )
        parser.add_argument(
            "--file", type=Path, help="CSV/JSON/JSONL of postings (kind file) or URLs (urls)."
        )
        parser.add_argument("--region", choices=["global", "eu"], help="Lever's host.")
        parser.add_argument("--include", action="append", default=[], help="Include keyword.")
        parser.add_argument("--exclude", action="append", default=[], help="Exclude keyword.")
        parser.add_argument("--location", action="append", default=[], help="Wanted location.")
        parser.add_argument("--remote-only", action="store_true", help="Only remote postings.")
        parser.add_argument("--disabled", action="store_true", help="Add it disabled.")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user named {options['owner']!r}.")
        target: str = options["target"]
        kind = options["kind"]
        if options["file"] and kind is None:
            kind = FileAdapter.kind
        common: dict[str, Any] = {
            "owner": owner,
            "company": options["company"],
            "include_keywords": options["include"],
            "exclude_keywords": options["exclude"],
            "locations": options["location"],
            "remote_only": options["remote_only"],
            "enabled": not options["disabled"],
            "options": {"region": options["region"]} if options["region"] == "eu" else {},
        }
        try:
            if options["file"]:
                path: Path = options["file"]
                if not path.is_file():
                    raise CommandError(f"No such file: {path}")
                with path.open("rb") as upload:
                    source = services.source_create(
                        kind=kind,
                        identifier=target,
                        upload=upload,
                        upload_name=path.name,
                        **common,
                    )
            elif target.lower().startswith(("http://", "https://")) or (target and not kind):
                # Without --kind the target is a URL: checked as one ("javascript:…" refused).
                source = services.source_create(kind=kind, url=target, **common)
            elif kind:
                source = services.source_create(kind=kind, identifier=target, **common)
            else:
                raise CommandError("Give a careers URL, or --kind with an identifier, or --file.")
        except services.SourceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Added source #{source.pk}: {source.company} "
            f"({source.get_kind_display()}: {source.identifier})."
        )

"""`manage.py smoke --base-url URL --token T`: drive a running Intake through its JSON API as a
client would, and exit non-zero naming the first contract that does not hold."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.smoke import ContractBroken, Smoke


class Command(BaseCommand):
    help = (
        "Smoke-test a running Intake through its JSON API: health, the OpenAPI document, "
        "authentication and problem details, source detection (--source-url), a preview "
        "from start to end (idempotency, the 409s, ETag polling, items, the report as JSON "
        "and CSV, live events). Exits 0 when every contract holds, 1 naming the first that "
        "does not. Every response is kept under --out. The token's user must have no run in "
        "progress; the preview reads --source-id, or the user's first enabled source."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
        parser.add_argument("--token", required=True, help="an API token of the user to test as")
        parser.add_argument("--source-id", type=int, help="the source to preview")
        parser.add_argument("--source-url", help="a careers URL to check detection with")
        parser.add_argument(
            "--out",
            help="folder for the responses seen (default: smoke-<UTC time> in the current one)",
        )
        parser.add_argument(
            "--timeout", type=float, default=120.0, help="seconds the preview may take"
        )
        parser.add_argument(
            "--worker-wait",
            type=float,
            default=30.0,
            help="seconds a started run may wait for a worker before the test fails",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = options["base_url"]
        if not base_url.startswith(("http://", "https://")):
            raise CommandError(f"--base-url must start with http:// or https://, not {base_url!r}")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = Path(options["out"] or f"smoke-{stamp}")
        smoke = Smoke(
            base_url=base_url,
            token=options["token"],
            out_dir=out,
            source_id=options["source_id"],
            source_url=options["source_url"],
            timeout=options["timeout"],
            worker_wait=options["worker_wait"],
            say=lambda line: self.stdout.write(line),
        )
        try:
            smoke.run()
        except ContractBroken as exc:
            self.stderr.write(f"FAIL {exc.contract}\n     {exc.detail}")
            self.stderr.write(f"responses kept in {out}/")
            sys.exit(1)
        finally:
            smoke.close()
        self.stdout.write(
            self.style.SUCCESS(f"smoke test passed: {len(smoke.passed)} contracts hold")
            + f" (responses in {out}/)"
        )

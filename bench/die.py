#!/usr/bin/env python
"""Intake's ingest against django-import-export (issue 15 §3): the same postings into the same
model, printed beside the naive per-row loop.

    cd /work/main && .venv/bin/python bench/die.py                 # 20,000 postings
    .venv/bin/python bench/die.py --postings 5000 --sample 1000

One fresh throwaway database and Redis db as bench/ingest.py uses (`BENCH_PG`, `BENCH_DB`,
`BENCH_REDIS`), the postings split between an uploaded CSV and a Greenhouse-shaped board
as there. Timed:

    ingest        one real ingest run on `--workers` RQ workers, end to end (listing, diff,
                  upsert, then every job normalized, sanitized, fingerprinted and checked
                  for near-duplicates: more work per row than either baseline does)

and, in this process, over the same postings as the adapters read them (untimed), each into
an emptied job table:

    naive         per-row Job.objects.update_or_create (bench/baselines.py)
    DIE default   a ModelResource over the job's columns, keyed by the job's unique key
                  (owner, company, external id): per row a lookup, a diff, a save, and a
                  query per foreign key (`--sample` rows, extrapolated)
    DIE tuned     use_bulk (batches of 1,000), skip_diff, CachedInstanceLoader (one query
                  for every instance, so keyed by the external id alone: the bench's ids
                  are unique within its one owner) and the foreign keys as plain ids

django-import-export is a bench dependency (requirements.txt), not a runtime one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402  (the path above first)
from bench import ingest as base  # noqa: E402
from bench.baselines import RAW_COLUMNS, bench_naive, raw_tuples, truncate_jobs  # noqa: E402
from bench.postings import mixed_postings  # noqa: E402

# What each baseline writes: the columns the listing writes for a new job.
COLUMNS = (
    "owner", "source", "company", "external_id", "url", "title", "location", "remote",
    "workplace_type", "employment_type", "department", "raw_description", "needs_detail",
    "posted_at", "valid_through", "salary_min", "salary_max", "salary_currency",
    "salary_period", "salary_text", "status", "content_hash", "first_seen_at", "last_seen_at",
    "last_run",
)  # fmt: skip
FOREIGN_KEYS = ("owner", "source", "last_run")
DIE_BATCH = 1000
TARGET = 1.5  # ingest ÷ DIE tuned, at least (issue 15)


def dataset(rows: list[tuple[Any, Any, str]], owner: Any, run: Any) -> Any:
    """The postings as a tablib Dataset of COLUMNS, foreign keys as ids: the values the raw
    baselines of bench/baselines.py write."""
    import tablib

    raw = {name: n for n, name in enumerate(RAW_COLUMNS)}
    picks = [raw[f"{c}_id" if c in FOREIGN_KEYS else c] for c in COLUMNS]
    data = tablib.Dataset(headers=list(COLUMNS))
    for values in raw_tuples(rows, owner.pk, run.pk):
        data.append(tuple(values[n] for n in picks))
    return data


def resources() -> tuple[type, type]:
    """(default, tuned) ModelResource classes for Job."""
    from import_export import fields, resources
    from import_export.instance_loaders import CachedInstanceLoader

    from ingestion.models import Job

    class DefaultJobResource(resources.ModelResource):
        class Meta:
            model = Job
            fields = COLUMNS
            import_id_fields = ("owner", "company", "external_id")

    plain = [c for c in COLUMNS if c not in FOREIGN_KEYS]

    class TunedJobResource(resources.ModelResource):
        # The ids as they are: a ForeignKeyWidget reads each referenced row per row.
        owner = fields.Field(attribute="owner_id", column_name="owner")
        source = fields.Field(attribute="source_id", column_name="source")
        last_run = fields.Field(attribute="last_run_id", column_name="last_run")

        class Meta:
            model = Job
            fields = (*plain, *FOREIGN_KEYS)
            import_id_fields = ("external_id",)
            use_bulk = True
            batch_size = DIE_BATCH
            skip_diff = True
            instance_loader_class = CachedInstanceLoader

    return DefaultJobResource, TunedJobResource


def die_import(resource_class: type, data: Any) -> float:
    """Seconds to import `data` with `resource_class` (no dry run, errors raised)."""
    began = time.perf_counter()
    result = resource_class().import_data(data, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - began
    if result.has_errors() or result.has_validation_errors():
        raise RuntimeError(f"{resource_class.__name__}: the import reported errors")
    return seconds


def baselines(
    args: argparse.Namespace, ingest_run_id: int, work: Path
) -> dict[str, dict[str, float]]:
    from django.contrib.auth.models import User

    from ingestion.models import Job
    from runs.models import IngestionRun

    owner = User.objects.get(username="bench")
    run = IngestionRun.objects.get(pk=ingest_run_id)
    rows = mixed_postings(owner, run, work)
    sample = rows[: min(args.sample, len(rows))]
    default_class, tuned_class = resources()
    # Built untimed, as the naive loop gets its postings already read.
    default_data, tuned_data = dataset(sample, owner, run), dataset(rows, owner, run)
    timed: list[tuple[str, int, Any]] = [
        ("naive", len(sample), lambda: bench_naive(sample, owner, run)),
        ("die_default", len(sample), lambda: die_import(default_class, default_data)),
        ("die_tuned", len(rows), lambda: die_import(tuned_class, tuned_data)),
    ]
    out: dict[str, dict[str, float]] = {}
    print(f"\n== baselines over the same {len(rows):,} postings (this process)", flush=True)
    for name, count, func in timed:
        busy = harness.wait_idle(args.wait_idle) if args.wait_idle else harness.busy_cpu(0.5)
        truncate_jobs()
        cpu = time.process_time()
        seconds = func()
        cpu = time.process_time() - cpu
        written = Job.objects.count()
        if written != count:
            raise RuntimeError(f"{name} wrote {written:,} jobs, not {count:,}")
        out[name] = {"rows": count, "seconds": seconds, "rate": count / seconds, "cpu": cpu}
        print(
            f"   {name:12} {count:>7,} rows in {seconds:6.1f} s: {count / seconds:8,.0f}/s, "
            f"client CPU {cpu / count * 1e6:,.0f} µs/row (CPUs {busy:.0f}% busy before)",
            flush=True,
        )
    return out


def report(ingest: dict[str, Any], rows: dict[str, dict[str, float]]) -> None:
    rate = ingest["rate"]
    print("\n" + "=" * 80)
    print(f"{'':28} {'rows/s':>10} {'ingest ÷ it':>12}")
    print(f"{'Intake ingest end to end':28} {rate:>10,.0f}")
    labels = {
        "naive": "naive update_or_create",
        "die_default": "DIE default",
        "die_tuned": "DIE tuned",
    }
    for key, label in labels.items():
        print(f"{label:28} {rows[key]['rate']:>10,.0f} {rate / rows[key]['rate']:>11.2f}×")
    ratio = rate / rows["die_tuned"]["rate"]
    verdict = "ok" if ratio >= TARGET else "MISSED"
    print(f"\ningest ÷ DIE tuned {ratio:.2f}×   target >= {TARGET:g}   {verdict}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="environment: BENCH_PG, BENCH_DB, BENCH_REDIS as for bench/ingest.py",
    )
    parser.add_argument("--postings", type=int, default=20_000, help="postings (default 20000)")
    parser.add_argument(
        "--sample", type=int, default=2000, help="rows for the naive loop and DIE default"
    )
    parser.add_argument("--workers", type=int, default=2, help="RQ workers for the ingest")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS")
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, harness.raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="intake-die-"))
    harness.use_bench_environment(work)
    children = harness.Children(work)

    def body() -> None:
        harness.recreate_database()
        import django

        django.setup()
        result = base.bench_size(args.postings, args, children, work, kinds=("ingest",))
        report(result["ingest"], baselines(args, result["ingest"]["run"], work))

    return harness.run_bench(children, work, body, keep_db=args.keep_db)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    sys.exit(main())

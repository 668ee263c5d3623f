"""Migrations that move data: run forwards and backwards over rows written as the schema
before them had it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from ingestion.simhash import bands, to_signed

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("ingestion", "0003_write_path_indexes")]
AFTER = [("ingestion", "0004_job_fingerprints")]


def _migrate(targets: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_0003() -> Iterator[object]:
    apps = _migrate(BEFORE)
    try:
        yield apps
    finally:
        _migrate(executor_leaves())


def executor_leaves() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_ready_jobs_keep_their_band_index_in_job_fingerprints(at_0003) -> None:  # type: ignore[no-untyped-def]
    apps = at_0003
    User = apps.get_model("auth", "User")
    Job = apps.get_model("ingestion", "Job")
    owner = User.objects.create(username="owner")
    now = timezone.now()
    values = {
        "ready": to_signed(0xDEAD_BEEF_0123_4567),
        "skipped": to_signed(0x0123_4567_89AB_CDEF),
        "pending": None,
    }
    for status, value in values.items():
        b0, b1, b2, b3 = bands(value) if value is not None else (None,) * 4
        Job.objects.create(
            owner=owner,
            company="Northwind",
            external_id=status,
            title=status,
            status=status,
            simhash=value,
            simhash_b0=b0,
            simhash_b1=b1,
            simhash_b2=b2,
            simhash_b3=b3,
            first_seen_at=now,
            last_seen_at=now,
        )

    apps = _migrate(AFTER)
    Fingerprint = apps.get_model("ingestion", "JobFingerprint")
    ready = apps.get_model("ingestion", "Job").objects.get(external_id="ready")
    rows = list(
        Fingerprint.objects.values_list(
            "job_id", "owner_id", "simhash", "band0", "band1", "band2", "band3"
        )
    )
    assert rows == [(ready.pk, owner.pk, values["ready"], *bands(values["ready"]))]

    apps = _migrate(BEFORE)  # and back: the bands return to the job
    job = apps.get_model("ingestion", "Job").objects.get(external_id="ready")
    assert (job.simhash_b0, job.simhash_b1, job.simhash_b2, job.simhash_b3) == bands(
        values["ready"]
    )


def test_fingerprints_take_their_jobs_company_key() -> None:
    # The keys the lookup probes with (ingestion.dedupe.company_key) must be the ones the
    # migration gave the fingerprints stored before it, or their duplicates go unfound.
    from ingestion.dedupe import company_key

    before = [("ingestion", "0015_job_statistics_targets")]
    apps = _migrate(before)
    try:
        User = apps.get_model("auth", "User")
        Job = apps.get_model("ingestion", "Job")
        Fingerprint = apps.get_model("ingestion", "JobFingerprint")
        owner = User.objects.create(username="owner")
        now = timezone.now()
        companies = ["Northwind", " NORTHWIND ", "Straße GmbH", "Globex"]
        for n, company in enumerate(companies):
            job = Job.objects.create(
                owner=owner,
                company=company,
                external_id=str(n),
                title="Engineer",
                status="ready",
                simhash=n,
                first_seen_at=now,
                last_seen_at=now,
            )
            Fingerprint.objects.create(
                job_id=job.pk, owner_id=owner.pk, simhash=n, band0=n, band1=0, band2=0, band3=0
            )

        apps = _migrate([("ingestion", "0016_million_fingerprint_company")])
        keys = dict(
            apps.get_model("ingestion", "JobFingerprint").objects.values_list(
                "job__company", "company_key"
            )
        )
        assert keys == {company: company_key(company) for company in companies}
        assert keys["Northwind"] == keys[" NORTHWIND "] != keys["Globex"]
    finally:
        _migrate(executor_leaves())

"""The ON CONFLICT clauses both backends append to their INSERTs (SQLite has had the
PostgreSQL syntax since 3.24), so the two keep one rule."""

from __future__ import annotations

from ingestion.store.records import FingerprintRow, JobRow

# On conflict everything the listing says is taken (its simhash and near-duplicate decision
# too, or NULL where it made none), the job goes back to pending (the ingesting stage
# sanitizes again, and computes what the listing could not decide), and first_seen_at /
# created_at stay. The WHERE skips rows whose content did not change: an unchanged re-run
# writes nothing (and an expired job listed again comes back).
_KEEP = ("owner_id", "company", "external_id", "first_seen_at", "created_at")
JOB_ON_CONFLICT = f"""
ON CONFLICT (owner_id, company, external_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in JobRow._fields if c not in _KEEP)}
WHERE ingestion_job.content_hash <> EXCLUDED.content_hash
   OR ingestion_job.status = 'expired'
""".strip()

FINGERPRINT_ON_CONFLICT = f"""
ON CONFLICT (job_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in FingerprintRow._fields[1:])}
""".strip()

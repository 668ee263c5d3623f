"""Sources, jobs, the per-posting items of a run, raw payloads and uploaded files; one module
each for sources, schedules, jobs, the narrow per-job tables and what a run records, and their
models named here, as Django finds them.

Invariants live in the database: one job per (owner, company, external_id), one source per
(owner, kind, identifier), one item per (run, source, key)."""

from ingestion.models.job_tables import JobFingerprint, JobSeen
from ingestion.models.jobs import Job, JobQuerySet, JobStatus
from ingestion.models.run_records import ChunkStatus, ItemOutcome, RawPayload, RunItem, WorkChunk
from ingestion.models.schedules import Schedule, ScheduleOutcome
from ingestion.models.sources import Source, SourceKind, UploadPart

__all__ = [
    "ChunkStatus",
    "ItemOutcome",
    "Job",
    "JobFingerprint",
    "JobQuerySet",
    "JobSeen",
    "JobStatus",
    "RawPayload",
    "RunItem",
    "Schedule",
    "ScheduleOutcome",
    "Source",
    "SourceKind",
    "UploadPart",
    "WorkChunk",
]

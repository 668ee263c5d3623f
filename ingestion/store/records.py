"""The rows the store writes and reads, as small typed records.

Each record names its columns in the order of its model's fields, so the column list of a
statement and the binary types of its arrays come from the record and the model, once
(`model_columns`, `types`); tests/ingestion/test_store.py fails when a model gains a column its
full-row record (JobRow, ItemRow, FingerprintRow) does not carry."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Model


class JobRow(NamedTuple):
    """A job as the listing writes it: every column of Job but its id. `simhash` and
    `duplicate_of_id` are the listing's near-duplicate decision (None where it had no text
    to decide on, or the job it duplicates has no id yet): written with the row, so a new
    job is written once before the ingesting stage takes it."""

    owner_id: int
    source_id: int | None
    company: str
    external_id: str
    url: str
    title: str
    location: str
    remote: bool | None
    workplace_type: str
    employment_type: str
    department: str
    raw_description: str
    needs_detail: bool
    description: str
    description_text: str
    requirements: str
    posted_at: datetime | None
    valid_through: datetime | None
    salary_min: Decimal | None
    salary_max: Decimal | None
    salary_currency: str
    salary_period: str
    salary_text: str
    status: str
    simhash: int | None
    content_hash: str
    raw_hash: str
    duplicate_of_id: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    expired_at: datetime | None
    last_run_id: int | None
    error_message: str
    created_at: datetime
    updated_at: datetime


# The columns of Job a JobRow leaves out: the database draws it.
JOB_ROW_OMITS = frozenset({"id"})


@dataclass(slots=True)
class ItemRow:
    """A RunItem to insert, as a plain object: the listing makes one per posting, and a model
    instance (with its foreign-key descriptors) costs more to build than the COPY to store.
    The fields follow RunItem's columns; id and the two timestamps the store sets. Those up
    to `outcome` may be passed by position (an unchanged row's item is built that way, a
    keyword call costing several times more), the rest only by name."""

    run_id: int
    source_id: int | None
    job_id: int | None
    external_id: str
    title: str
    url: str
    row: int | None
    outcome: str
    job_status: str = field(default="", kw_only=True)
    reason: str = field(default="", kw_only=True)
    attempts: int = field(default=0, kw_only=True)


ITEM_ROW_OMITS = frozenset({"id", "created_at", "updated_at"})


class FingerprintRow(NamedTuple):
    """A ready job's simhash, its four bands and its company's key, for the near-duplicate
    lookup (ingestion.dedupe)."""

    job_id: int
    owner_id: int
    simhash: int
    band0: int
    band1: int
    band2: int
    band3: int
    company_key: int


@dataclass(slots=True)
class PendingJob:
    """The fields of a pending job the ingesting stage reads and rewrites: a plain object,
    not a model instance (Django's model init costs a tenth of a job's budget; see
    docs/performance.md). Its fields up to `duplicate_of_id` are Job's columns (`pk`: id)."""

    pk: int
    source_id: int | None
    company: str
    external_id: str
    url: str
    title: str
    location: str
    remote: bool | None
    workplace_type: str
    employment_type: str
    raw_description: str
    needs_detail: bool
    posted_at: datetime | None
    salary_min: Decimal | None
    salary_max: Decimal | None
    salary_currency: str
    salary_period: str
    salary_text: str
    # The listing's simhash and near-duplicate decision (ingestion.pipeline.diff), when it had
    # the posting's text.
    simhash: int | None
    duplicate_of_id: int | None
    # This run's items of the job (PostgreSQL), to write its status back to by primary key.
    item_ids: list[int] = field(default_factory=list)
    description: str = ""


# The columns a PendingJob is read from after its id, in Job's order.
PENDING_COLUMNS = tuple(PendingJob.__slots__[1 : PendingJob.__slots__.index("duplicate_of_id") + 1])


class ProcessedJob(NamedTuple):
    """What the ingesting stage writes back to one job: the columns in Job's order, then
    whether it failed (a failed job keeps its raw description and its need of a detail
    fetch, for "retry failed") and its id."""

    url: str
    title: str
    location: str
    remote: bool | None
    workplace_type: str
    employment_type: str
    description: str
    description_text: str
    posted_at: datetime | None
    salary_min: Decimal | None
    salary_max: Decimal | None
    salary_currency: str
    salary_period: str
    status: str
    simhash: int | None
    duplicate_of_id: int | None
    last_run_id: int
    error_message: str
    updated_at: datetime
    failed: bool
    id: int


# The columns a ProcessedJob sets (the last two select the row and its CASEs).
PROCESSED_COLUMNS = ProcessedJob._fields[:-2]


class ItemVerdict(NamedTuple):
    """The ingesting stage's word on one job, for its items of this run."""

    job_id: int
    item_ids: list[int]
    job_status: str
    reason: str


def model_columns(model: type[Model], omit: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """`model`'s columns in its fields' order, but `omit`."""
    return tuple(f.column for f in model._meta.concrete_fields if f.column not in omit)


# PostgreSQL's names for the types Django declares, as a binary COPY wants them (it applies
# no cast: each value must be sent as its column's exact type).
_TYPE_NAMES = {
    "bigint": "int8",
    "integer": "int4",
    "smallint": "int2",
    "boolean": "bool",
    "timestamp with time zone": "timestamptz",
    "double precision": "float8",
}


@functools.cache
def types(model: type[Model], columns: tuple[str, ...], **extra: str) -> tuple[str, ...]:
    """The PostgreSQL types of these columns of `model`, from its fields; a column the model
    does not have takes its type from `extra` (a flag carried beside the row)."""
    fields = {f.column: f for f in model._meta.concrete_fields}
    names = []
    for column in columns:
        if column in extra:
            names.append(extra[column])
            continue
        declared = fields[column].db_type(connection) or "text"
        name = declared.split("(")[0].strip()
        names.append(_TYPE_NAMES.get(name, name))
    return tuple(names)


def positions(record: Any, type_name: str) -> list[int]:
    """The positions of `record`'s fields annotated with `type_name` (alone or `| None`)."""
    annotations = [getattr(t, "__forward_arg__", str(t)) for t in record.__annotations__.values()]
    return [i for i, text in enumerate(annotations) if type_name in text.split(" | ")]


def column_mismatch(record: Any, model: type[Model], omit: frozenset[str]) -> str:
    """How `record`'s fields differ from `model`'s columns but `omit`, in order; "" when
    they are the same."""
    fields = tuple(getattr(record, "_fields", None) or record.__slots__)
    expected = model_columns(model, omit)
    if fields == expected:
        return ""
    return f"{record.__name__} has {fields}, {model.__name__} {expected}"

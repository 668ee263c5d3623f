"""The sources API's request and response bodies, and how a source and an upload's report
are written into them (api.sources holds the endpoints)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from api.schemas import CamelSchema, StrictCamelSchema
from ingestion.adapters.base import public_options
from ingestion.adapters.readers import UploadReport
from ingestion.models import Source

# --- schemas --------------------------------------------------------------------------------


class UploadOut(CamelSchema):
    name: str
    format: str
    size: int


class SourceOut(CamelSchema):
    id: int
    kind: str
    kind_label: str
    company: str
    identifier: str
    options: dict[str, Any]
    include_keywords: list[str]
    exclude_keywords: list[str]
    locations: list[str]
    remote_only: bool
    enabled: bool
    upload: UploadOut | None
    job_count: int
    last_fetched_at: datetime | None
    last_fetch_ok: bool | None
    last_fetch_error: str
    last_listed_count: int | None
    created_at: datetime
    updated_at: datetime
    url: str


class SourceList(CamelSchema):
    items: list[SourceOut]
    next_cursor: str | None


class SourceFilters(CamelSchema):
    kind: str | None = Field(None, description="Only sources of this kind.")
    enabled: bool | None = None
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


Words = list[str] | None


class SourceCreate(StrictCamelSchema):
    url: str | None = Field(
        None,
        max_length=2000,
        description="A careers URL: a recognised board fills in kind and identifier; any "
        "other page is read for its JSON-LD postings.",
    )
    kind: str | None = Field(None, description="Without `url`: the kind (then `identifier`).")
    company: str = Field("", description="Empty: derived as on the Configure page.")
    identifier: str = ""
    lever_region: Literal["", "eu"] = ""
    include_keywords: Words = Field(None, max_length=100)
    exclude_keywords: Words = Field(None, max_length=100)
    locations: Words = Field(None, max_length=100)
    remote_only: bool = False
    enabled: bool = True


class UploadFields(CamelSchema):
    """The parts of an upload besides the file (multipart fields; words comma-separated)."""

    kind: Literal["file", "urls"] = Field(
        "file", description="`file`: postings (CSV, JSON, JSONL); `urls`: posting URLs."
    )
    company: str = Field("", description="Empty: the company the file's rows name.")
    identifier: str = Field("", description="Empty: the file's name.")
    include_keywords: str = ""
    exclude_keywords: str = ""
    locations: str = ""
    remote_only: bool = False
    enabled: bool = True
    save_anyway: bool = Field(False, description="Save it with its bad rows (reported).")


class SourcePatch(StrictCamelSchema):
    """Only the keys sent change. Kind, identifier and URL never do: a different board is a
    different source."""

    company: str | None = None
    lever_region: Literal["", "eu"] | None = None
    include_keywords: Words = Field(None, max_length=100)
    exclude_keywords: Words = Field(None, max_length=100)
    locations: Words = Field(None, max_length=100)
    remote_only: bool | None = None
    enabled: bool | None = None


class DetectIn(StrictCamelSchema):
    url: str = Field(min_length=1, max_length=2000)
    probe: bool = Field(
        False, description="Also list the board now and count its postings (takes seconds)."
    )


class ProbeOut(CamelSchema):
    ok: bool
    found: int
    text: str


class DetectOut(CamelSchema):
    kind: str
    kind_label: str
    identifier: str
    company: str
    options: dict[str, Any]
    board: bool = Field(description="A recognised job board (else a careers page's JSON-LD).")
    existing_source_id: int | None = Field(description="Your source for it, if you have one.")
    probe: ProbeOut | None


class RowErrorOut(CamelSchema):
    row: int
    field: str
    message: str


class UploadReportOut(CamelSchema):
    format: str
    total: int
    good: int
    bad: int
    duplicates: int
    row_errors: list[RowErrorOut]
    error: str


class UploadedSource(CamelSchema):
    source: SourceOut
    report: UploadReportOut


# --- serializers ----------------------------------------------------------------------------


def source_out(source: Source) -> dict[str, Any]:
    upload = None
    if source.upload_name:
        upload = {
            "name": source.upload_name,
            "format": source.upload_format,
            "size": source.upload_size,
        }
    return {
        "id": source.pk,
        "kind": source.kind,
        "kind_label": source.get_kind_display(),
        "company": source.company,
        "identifier": source.identifier,
        "options": public_options(source.options),
        "include_keywords": source.include_keywords,
        "exclude_keywords": source.exclude_keywords,
        "locations": source.locations,
        "remote_only": source.remote_only,
        "enabled": source.enabled,
        "upload": upload,
        # Annotated by selectors.sources_for_owner, which every read here goes through.
        "job_count": getattr(source, "job_count", 0),
        "last_fetched_at": source.last_fetched_at,
        "last_fetch_ok": source.last_fetch_ok,
        "last_fetch_error": source.last_fetch_error,
        "last_listed_count": source.last_listed_count,
        "created_at": source.created_at,
        "updated_at": source.updated_at,
        "url": f"/api/v1/sources/{source.pk}",
    }


def report_out(report: UploadReport | None) -> dict[str, Any]:
    if report is None:
        return {
            "format": "",
            "total": 0,
            "good": 0,
            "bad": 0,
            "duplicates": 0,
            "row_errors": [],
            "error": "",
        }
    return {
        "format": report.fmt,
        "total": report.total,
        "good": report.good,
        "bad": report.bad,
        "duplicates": report.duplicates,
        "row_errors": [
            {"row": e.row, "field": e.field, "message": e.message} for e in report.errors
        ],
        "error": report.error,
    }

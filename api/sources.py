"""Sources: list, create, read, change and delete; detect what a careers URL is; add or replace
an uploaded file or URL list. Thin handlers: the Configure page's forms (ingestion.forms,
ingestion.views.upload_form) validate, ingestion.services writes — the same checks, limits
and messages as the page."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from ninja import File, Form, Query, Status, UploadedFile
from pydantic import Field
from pydantic.alias_generators import to_camel

from api.auth import user_of
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, id_page
from api.problems import Problem
from api.routing import api_router
from api.schemas import CamelSchema, StrictCamelSchema
from ingestion import probe, selectors, services, upload_limits
from ingestion.adapters import registry
from ingestion.adapters.base import public_options
from ingestion.adapters.readers import UploadReport
from ingestion.forms import SourceForm, error_field
from ingestion.models import Source
from ingestion.services import SourceError, SourceExists
from ingestion.views import upload_form

router = api_router(tags=["sources"])

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


# --- helpers --------------------------------------------------------------------------------


def _source_out(source: Source) -> dict[str, Any]:
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


def _report_out(report: UploadReport | None) -> dict[str, Any]:
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


def _get_source(request: HttpRequest, source_id: int) -> Source:
    # Another user's source is a 404, not a 403: its existence is not theirs to know.
    return get_object_or_404(selectors.sources_for_owner(user_of(request)), pk=source_id)


def _form_data(values: dict[str, Any]) -> QueryDict:
    """JSON values as the page's form posts them (words comma-separated, flags as text)."""
    data = QueryDict(mutable=True)
    for name, value in values.items():
        if isinstance(value, list):
            value = ", ".join(str(word) for word in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        data[name] = "" if value is None else str(value)
    return data


def _form_problem(form: SourceForm, *, where: str, report: UploadReport | None = None) -> Problem:
    """The form's errors as one problem: a field error per message, pointing at the request's
    camelCase key (the form's own errors at the body). A source that already exists is a
    409, an unusable upload a 413 (too large) or 415 (not a CSV, JSON or JSONL file)."""
    errors: list[dict[str, str]] = []
    for field, messages in form.errors.items():
        pointer = "#/" if field == "__all__" else "#/" + to_camel(field)
        errors.extend({"in": where, "pointer": pointer, "detail": str(m)} for m in messages)
    detail = errors[0]["detail"] if errors else "The source is not valid."
    extra = {}
    if report is not None:
        extra["report"] = UploadReportOut.model_validate(_report_out(report)).model_dump(
            by_alias=True
        )
    if report is not None and report.error and not report.fmt:
        return Problem(415, detail, kind="unsupported-media-type", errors=errors, extra=extra)
    return Problem(
        422,
        detail,
        kind="validation-failed",
        title="The request is not valid",
        errors=errors,
        extra=extra,
    )


def _exists_problem(exc: SourceExists) -> Problem:
    extra = {}
    if exc.existing is not None:
        extra = {
            "existingSourceId": exc.existing.pk,
            "existingSourceUrl": f"/api/v1/sources/{exc.existing.pk}",
        }
    return Problem(409, str(exc), kind="source-exists", extra=extra)


def _created(response: HttpResponse, source: Source, body: dict[str, Any]) -> Any:
    response["Location"] = f"/api/v1/sources/{source.pk}"
    return Status(201, body)


def _create(
    owner: User, form: SourceForm, *, report: UploadReport | None = None, **upload: Any
) -> Source:
    """services.source_create from the valid form; its refusal as the form's problem."""
    try:
        return services.source_create(owner=owner, **upload, **form.create_fields())
    except SourceExists as exc:
        raise _exists_problem(exc) from None
    except SourceError as exc:
        form.add_error(error_field(str(exc), form), str(exc))
        raise _form_problem(form, where="body", report=report) from None


def _reread(source: Source, owner: User) -> Source:
    return selectors.sources_for_owner(owner).get(pk=source.pk)


# --- endpoints ------------------------------------------------------------------------------


@router.get("", response=SourceList, summary="Your sources, oldest first")
def source_list(request: HttpRequest, filters: Query[SourceFilters]) -> Any:
    sources = selectors.sources_for_owner(user_of(request))
    if filters.kind is not None:
        sources = sources.filter(kind=filters.kind)
    if filters.enabled is not None:
        sources = sources.filter(enabled=filters.enabled)
    page = id_page(sources, filters.cursor, filters.limit)
    return {"items": [_source_out(s) for s in page.rows], "next_cursor": page.next_cursor}


@router.post(
    "",
    response={201: SourceOut, 409: None, 422: None},
    summary="Add a source from a careers URL, or a kind and identifier",
    description=(
        "Validated as the Configure page's form is: field errors in the problem's `errors`. "
        "409 when you already have this source (`existingSourceId`). Sources of an uploaded "
        "file or URL list are added with `POST /sources/upload`."
    ),
)
def source_create(request: HttpRequest, body: SourceCreate, response: HttpResponse) -> Any:
    owner = user_of(request)
    form = SourceForm(_form_data(body.model_dump(by_alias=False)))
    if form.is_valid() and registry.reads_upload(form.cleaned_data["kind"]):
        form.add_error("kind", "A source of this kind is added with POST /sources/upload.")
    if not form.is_valid():
        raise _form_problem(form, where="body")
    source = _create(owner, form)
    return _created(response, source, _source_out(_reread(source, owner)))


@router.post(
    "/detect",
    response={200: DetectOut, 422: None, 429: None},
    summary="What a careers URL is: its kind, board token and company",
    description=(
        "Nothing is saved. With `probe: true` the board is listed now, as the Configure "
        "page's connection test does (bounded in time, counted against your request quota)."
    ),
)
def source_detect(request: HttpRequest, body: DetectIn) -> Any:
    owner = user_of(request)
    try:
        found = services.source_detect(body.url)
    except SourceError as exc:
        raise Problem(
            422,
            str(exc),
            kind="validation-failed",
            title="The request is not valid",
            errors=[{"in": "body", "pointer": "#/url", "detail": str(exc)}],
        ) from None
    existing = Source.objects.filter(owner=owner, kind=found.kind, identifier=found.identifier)
    result = probe.source_probe(owner=owner, url=body.url) if body.probe else None
    return {
        "kind": found.kind,
        "kind_label": registry.entry(found.kind).label,
        "identifier": found.identifier,
        "company": found.company,
        "options": found.options,
        "board": found.board,
        "existing_source_id": existing.values_list("id", flat=True).first(),
        "probe": result,
    }


@router.post(
    "/upload",
    response={201: UploadedSource, 409: None, 413: None, 415: None, 422: None, 429: None},
    summary="Add a source from an uploaded file of postings or a URL list (multipart)",
    description=(
        "`multipart/form-data` with the file in `upload`. Checked row by row as a run reads "
        "it: with bad rows it is refused (422, the row errors in `report`) unless "
        "`saveAnyway` is true; a URL list holds at most INTAKE_URL_LIST_MAX URLs (1,000), "
        "each a public http(s) URL. 413 over INTAKE_UPLOAD_MAX_BYTES; 415 when it is not a "
        "CSV, JSON or JSONL file."
    ),
)
def source_upload(
    request: HttpRequest,
    fields: Form[UploadFields],
    response: HttpResponse,
    upload: File[UploadedFile | None] = None,
) -> Any:
    owner = user_of(request)
    form = SourceForm(_form_data(fields.model_dump(by_alias=False)), request.FILES)
    report = _checked_upload(request, form, form_kind=fields.kind)
    file = form.cleaned_data["upload"]
    source = _create(owner, form, report=report, upload=file, upload_name=file.name)
    body = {"source": _source_out(_reread(source, owner)), "report": _report_out(report)}
    return _created(response, source, body)


def _checked_upload(request: HttpRequest, form: SourceForm, *, form_kind: str) -> UploadReport:
    """The form's file checked as the page checks it; a problem when it must not be saved."""
    refused = upload_limits.refusal(request)
    if refused:
        raise Problem(
            413,
            refused,
            kind="payload-too-large",
            errors=[{"in": "body", "pointer": "#/upload", "detail": refused}],
        )
    if not upload_form.form_valid(form, request):
        raise _form_problem(form, where="body")
    if not form.cleaned_data.get("upload"):
        form.add_error("upload", "Send the file in the `upload` part.")
        raise _form_problem(form, where="body")
    # QuotaExceeded past the hourly uploads: a 429 problem with Retry-After.
    allowed, report = upload_form.upload_allowed(form, form_kind, owner_id=user_of(request).pk)
    if not allowed or report is None:
        raise _form_problem(form, where="body", report=report)
    return report


@router.get("/{int:source_id}", response={200: SourceOut, 404: None}, summary="One source")
def source_detail(request: HttpRequest, source_id: int) -> Any:
    return _source_out(_get_source(request, source_id))


@router.patch(
    "/{int:source_id}",
    response={200: SourceOut, 404: None, 422: None},
    summary="Change a source's company, filters, Lever region or enabled flag",
)
def source_patch(request: HttpRequest, source_id: int, body: SourcePatch) -> Any:
    source = _get_source(request, source_id)
    sent = body.model_dump(exclude_unset=True, by_alias=False)
    form = SourceForm(source=source)
    unfit = [name for name in sent if name not in form.fields]
    if unfit:
        errors = [
            {
                "in": "body",
                "pointer": "#/" + to_camel(name),
                "detail": f"Not a setting of a {source.get_kind_display()} source.",
            }
            for name in unfit
        ]
        raise Problem(422, errors[0]["detail"], kind="validation-failed", errors=errors)
    values = {name: form[name].initial for name in form.fields if name in form.initial}
    form = SourceForm(_form_data(values | sent), source=source)
    if not form.is_valid():
        raise _form_problem(form, where="body")
    try:
        services.source_update(source, **form.update_fields())
    except SourceError as exc:
        form.add_error(error_field(str(exc), form), str(exc))
        raise _form_problem(form, where="body") from None
    return _source_out(_reread(source, user_of(request)))


@router.post(
    "/{int:source_id}/upload",
    response={200: UploadedSource, 404: None, 413: None, 415: None, 422: None, 429: None},
    summary="Replace an uploaded-file or URL-list source's file (multipart)",
    description="Checked as `POST /sources/upload` checks a new one; the rest of the source stays.",
)
def source_replace_upload(
    request: HttpRequest,
    source_id: int,
    save_anyway: Form[bool] = False,
    upload: File[UploadedFile | None] = None,
) -> Any:
    source = _get_source(request, source_id)
    if not registry.reads_upload(source.kind):
        raise Problem(
            422,
            f"Only {registry.upload_names()} sources take an uploaded file.",
            kind="validation-failed",
        )
    values = dict(SourceForm(source=source).initial)
    values["save_anyway"] = save_anyway
    form = SourceForm(_form_data(values), request.FILES, source=source)
    report = _checked_upload(request, form, form_kind=source.kind)
    file = form.cleaned_data["upload"]
    try:
        services.source_update(source, upload=file, upload_name=file.name)
    except SourceError as exc:
        form.add_error("upload", str(exc))
        raise _form_problem(form, where="body", report=report) from None
    source = _reread(source, user_of(request))
    return {"source": _source_out(source), "report": _report_out(report)}


@router.delete(
    "/{int:source_id}",
    response={204: None, 404: None},
    summary="Delete a source (its jobs are kept)",
)
def source_delete(request: HttpRequest, source_id: int) -> Any:
    services.source_delete(_get_source(request, source_id))
    return Status(204, None)

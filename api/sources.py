"""Sources: list, create, read, change and delete; detect what a careers URL is; add or replace
an uploaded file or URL list. Thin handlers: the Configure page's forms (ingestion.forms,
ingestion.views.upload_form) validate, ingestion.services writes — the same checks, limits
and messages as the page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404
from ninja import File, Form, Query, Status, UploadedFile
from pydantic.alias_generators import to_camel

from api.auth import user_of
from api.pagination import id_page
from api.problems import Problem
from api.routing import api_router
from api.source_schemas import (
    DetectIn,
    DetectOut,
    SourceCreate,
    SourceFilters,
    SourceList,
    SourceOut,
    SourcePatch,
    UploadedSource,
    UploadFields,
    UploadReportOut,
    report_out,
    source_out,
)
from ingestion import probe, selectors, services, upload_limits
from ingestion.adapters import registry
from ingestion.adapters.readers import UploadReport
from ingestion.forms import SourceForm, error_field
from ingestion.models import Source
from ingestion.services import SourceError, SourceExists
from ingestion.views import upload_form

router = api_router(tags=["sources"])

# --- helpers --------------------------------------------------------------------------------


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
        extra["report"] = UploadReportOut.model_validate(report_out(report)).model_dump(
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
    return {"items": [source_out(s) for s in page.rows], "next_cursor": page.next_cursor}


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
    return _created(response, source, source_out(_reread(source, owner)))


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
    body = {"source": source_out(_reread(source, owner)), "report": report_out(report)}
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
    return source_out(_get_source(request, source_id))


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
    return source_out(_reread(source, user_of(request)))


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
    return {"source": source_out(source), "report": report_out(report)}


@router.delete(
    "/{int:source_id}",
    response={204: None, 404: None},
    summary="Delete a source (its jobs are kept)",
)
def source_delete(request: HttpRequest, source_id: int) -> Any:
    services.source_delete(_get_source(request, source_id))
    return Status(204, None)

"""A source form's file across its round trips: checked row by row as a run would read it,
refused with the reason, and kept (ingestion/pending_uploads.py) when the form comes back so
"Save anyway" needs no second choice of the file."""

from __future__ import annotations

import dataclasses
from typing import IO, Any, cast

from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest

from ingestion import pending_uploads, upload_limits, uploads
from ingestion.adapters import registry, uploaded
from ingestion.adapters.readers import UploadReport
from ingestion.forms import SourceForm
from ingestion.parse_errors import plain_parse_error
from ingestion.quota import QuotaExceeded, quota_take_upload
from ingestion.views.common import owner_of
from project.params import Params

# Bytes read to tell a file's format when its name does not.
FORMAT_HEAD_BYTES = 4096


def check_upload(upload: UploadedFile, kind: str) -> UploadReport:
    """Parse the uploaded file as a run would; the file is rewound for storing."""
    upload.seek(0)
    head = upload.read(FORMAT_HEAD_BYTES)
    upload.seek(0)
    try:
        fmt = uploads.upload_format(upload.name or "upload", head)
    except uploads.UploadError as exc:
        return UploadReport(fmt="", error=str(exc))
    if not head:
        return UploadReport(fmt=fmt, error=f"{upload.name!r} is empty.")
    try:
        # The underlying file (BytesIO or a temporary file): what the parsers read from.
        report = uploaded.upload_check(cast(IO[bytes], upload.file), kind=kind, fmt=fmt)
    except uploads.UploadError as exc:
        report = UploadReport(fmt=fmt, error=str(exc))
    upload.seek(0)
    # The parsers' wording, for people (where the parsers raise it, the words could be plain
    # at the source; until then the check the user reads says them here).
    report.error = plain_parse_error(report.error)
    report.errors = [
        dataclasses.replace(error, message=plain_parse_error(error.message))
        for error in report.errors
    ]
    return report


def upload_allowed(
    form: SourceForm, kind: str, *, owner_id: int
) -> tuple[bool, UploadReport | None]:
    """Check the form's upload (if any) for a source of `kind`; False (with the errors on the
    form) when it must not be saved yet. The upload counts against the owner's hourly
    uploads first (QuotaExceeded past it: the API answers 429; pages use
    `page_upload_allowed`)."""
    upload = form.cleaned_data.get("upload")
    if not upload or not registry.reads_upload(kind):
        return True, None
    quota_take_upload(owner_id)
    report = check_upload(upload, kind)
    if report.error:
        form.add_error("upload", f"This file cannot be used: {report.error}")
        return False, report
    if report.bad and not form.cleaned_data.get("save_anyway"):
        form.add_error(
            "upload",
            f"{report.bad} of {report.total} rows have errors (listed below). Fix the file, or "
            "tick “Save anyway” to ingest the good rows and report the bad ones (the file is "
            "kept: no need to choose it again).",
        )
        return False, report
    return True, report


def page_upload_allowed(
    form: SourceForm, kind: str, *, owner_id: int
) -> tuple[bool, UploadReport | None]:
    """upload_allowed for a page: the hourly uploads' refusal as the file field's error."""
    try:
        return upload_allowed(form, kind, owner_id=owner_id)
    except QuotaExceeded as exc:
        form.add_error("upload", str(exc))
        return False, None


def form_valid(form: SourceForm, request: HttpRequest) -> bool:
    """form.is_valid(), and no upload refused while it arrived (too large)."""
    valid = form.is_valid()
    refused = upload_limits.refusal(request)
    if refused and "upload" in form.fields:
        form.add_error("upload", f"This file cannot be used: {refused}")
        return False
    return valid


# The form field that carries a kept file's token (ingestion/pending_uploads.py).
PENDING_FIELD = "pending_upload"


def use_kept_upload(request: HttpRequest) -> str:
    """Put the file kept from the form's last round (its token posted, no new file chosen) in
    request.FILES, where the form reads it and Django closes it with the request's files.
    The token when it did, else ""."""
    token = Params(request.POST, strict=False).text(PENDING_FIELD, max_length=64)
    if token and "upload" not in request.FILES:
        owner_id = owner_of(request).pk
        kept = pending_uploads.pending_upload_open(owner_id=owner_id, token=token)
        if kept is not None:
            request.FILES["upload"] = kept
            return token
    return ""


def keep_upload(request: HttpRequest, kept_token: str) -> dict[str, Any] | None:
    """The form is shown again: keep its file for the next round (the browser forgets it), and
    say so on the page. None when there is no usable file."""
    upload = request.FILES.get("upload")
    if upload is None or upload_limits.refusal(request):
        return None
    token = kept_token or pending_uploads.pending_upload_keep(
        owner_id=owner_of(request).pk, upload=upload
    )
    return {"token": token, "name": upload.name, "size": upload.size}


def forget_upload(request: HttpRequest) -> None:
    """Saved: the kept file (if any) is no longer needed."""
    token = Params(request.POST, strict=False).text(PENDING_FIELD, max_length=64)
    if token:
        pending_uploads.pending_upload_discard(owner_id=owner_of(request).pk, token=token)

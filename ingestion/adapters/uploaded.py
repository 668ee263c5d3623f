"""Uploaded files as their adapters read them: the check of a file before it is stored (the
Configure page shows its per-row errors) and the store of a file, refused when its adapter
could never read it. ingestion.uploads only stores and reads the bytes."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from ingestion import uploads
from ingestion.adapters import Adapter, SourceFailed, adapter_class, registry
from ingestion.adapters.readers import UploadReport

if TYPE_CHECKING:
    from ingestion.models import Source


def _upload_adapter(kind: str) -> type[Adapter]:
    if not registry.reads_upload(kind):
        raise uploads.UploadError(f"Sources of kind {kind!r} take no uploaded file.")
    return adapter_class(kind)


def upload_check(fileobj: IO[bytes], *, kind: str, fmt: str) -> UploadReport:
    """Validate a file before it is stored: the adapter of `kind` reads every row as a run
    would (no network); the report has the counts and the first row errors. The caller
    rewinds `fileobj` before storing it."""
    if fmt not in uploads.FORMATS:
        raise uploads.UploadError(f"Unknown file format {fmt!r}: use csv, json or jsonl.")
    adapter = _upload_adapter(kind)
    report = UploadReport(fmt=fmt)
    try:
        # However the file came, no more than the limit is read: the check stops where
        # storing it would be refused.
        for errors in adapter.check_upload(uploads.capped(fileobj), fmt):
            report.add(errors)
    except (SourceFailed, uploads.UploadError) as exc:
        report.error = str(exc)
    return report


def upload_company(source: Source) -> str:
    """A company name for `source`, added without one, read from its stored upload by its
    adapter ("" when the file names none)."""
    with uploads.upload_open(source) as fileobj:
        return adapter_class(source.kind).company_in_upload(fileobj, source.upload_format)


def upload_store(*, source: Source, name: str, fileobj: IO[bytes], fmt: str | None = None) -> None:
    """ingestion.uploads.upload_store, the stored file checked by the source's adapter (a URL
    list of more than INTAKE_URL_LIST_MAX URLs is refused), and the companies its rows name
    learned (Adapter.companies keeps them in the source's options)."""
    reads_upload = registry.reads_upload(source.kind)
    adapter = adapter_class(source.kind)
    check = adapter.check_stored if reads_upload else None
    uploads.upload_store(source=source, name=name, fileobj=fileobj, fmt=fmt, check=check)
    if reads_upload:
        # The companies its rows name decide which sources its runs list side by side
        # (ingestion.pipeline.groups): learned now, with the file just read, rather than
        # by the first run, whose start would wait for a second read of the whole file.
        adapter.companies(source)

"""Writes for sources, starting preview and ingest runs, and housekeeping. Views, commands,
tasks, admin and the API call these: one code path per action."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from ingestion import run_kinds, selectors
from ingestion.adapters import adapter_class, registry, uploaded
from ingestion.adapters.base import public_options
from ingestion.adapters.jsonld import COMPANY_FROM
from ingestion.adapters.readers import company_from_url
from ingestion.adapters.recognize import recognize_careers_url
from ingestion.models import Job, JobStatus, RawPayload, Source
from ingestion.quota import quota_check_run_start
from runs import services as run_services
from runs.models import IngestionRun, RunStatus

# An ingest that ended before processing all it listed: its pending jobs can be resumed.
RESUMABLE_STATUSES = (RunStatus.ABORTED, RunStatus.ERROR)


class SourceError(ValueError):
    """A source could not be created, changed or used; the message says why, for the user."""


class SourceExists(SourceError):
    """The owner already has a source of this kind and identifier (`existing`, when it could
    be read: it may have been deleted meanwhile)."""

    def __init__(self, message: str, *, existing: Source | None) -> None:
        super().__init__(message)
        self.existing = existing


@dataclass(frozen=True)
class DetectedSource:
    """What a pasted careers URL would become: a board (`board`) or a careers page."""

    kind: str
    identifier: str
    options: dict[str, Any]
    company: str
    board: bool


def source_target(url: str, *, kind: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """What a pasted careers URL reads as: (kind, identifier, options). A recognised board URL
    gives its kind; any other URL is a JSON-LD careers page, unless `kind` names another kind
    (then SourceError)."""
    recognized = recognize_careers_url(url)
    if recognized:
        return recognized
    if kind in (None, "", registry.page_kind()):
        return registry.page_kind(), url.strip(), {}
    raise SourceError(
        f"{url!r} is not a {registry.board_names()} board URL; choose the source's "
        "kind and give its identifier instead."
    )


def source_detect(url: str) -> DetectedSource:
    """The source `url` would become, as source_create would make it, without saving or
    fetching anything; SourceError when it cannot be one."""
    kind, identifier, options = source_target(url)
    try:
        identifier = adapter_class(kind).clean_identifier(identifier)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    page = kind == registry.page_kind()
    company = company_from_url(identifier) if page else _company_from(identifier)
    return DetectedSource(kind, identifier, options, company, board=not page)


def source_create(
    *,
    owner: User,
    kind: str | None = None,
    company: str = "",
    identifier: str = "",
    url: str | None = None,
    options: dict[str, Any] | None = None,
    include_keywords: Iterable[str] = (),
    exclude_keywords: Iterable[str] = (),
    locations: Iterable[str] = (),
    remote_only: bool = False,
    enabled: bool = True,
    upload: IO[bytes] | None = None,
    upload_name: str = "",
) -> Source:
    """Create a source. `url` may be a pasted careers URL: a recognised board URL fills in
    kind and identifier; any other http(s) URL becomes a JSON-LD careers page. Kinds that
    read an upload take `upload` (checked and stored with the source, in one transaction: a
    bad file leaves nothing behind).

    Without `company`, one is derived: a board's from its name, a careers page's from its
    host until its first read names the postings' hiringOrganization, an upload's from its
    rows (the company most of them name, else the site of the first posting URL)."""
    options = public_options(options or {})
    if url:
        kind, identifier, extra = source_target(url, kind=kind)
        options = {**extra, **options}
    try:
        entry = registry.entry(kind)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    kind = entry.kind
    if entry.reads_upload:
        if upload is None:
            raise SourceError(f"A {entry.label.lower()} source needs an uploaded file.")
        identifier = (identifier or upload_name).strip()
        if not identifier:
            raise SourceError("Give the uploaded file a name.")
    else:
        try:
            identifier = adapter_class(kind).clean_identifier(identifier)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
    company = company.strip()
    if not company and kind == registry.page_kind():
        company = company_from_url(identifier)
        options[COMPANY_FROM] = "host"
    elif not company and not entry.reads_upload:
        company = _company_from(identifier)
    if not company and not entry.reads_upload:
        raise SourceError("A company name is required.")

    try:
        with transaction.atomic():
            source = Source.objects.create(
                owner=owner,
                company=company[:200],
                kind=kind,
                identifier=identifier[:500],
                options=options,
                include_keywords=_clean_words(include_keywords),
                exclude_keywords=_clean_words(exclude_keywords),
                locations=_clean_words(locations),
                remote_only=remote_only,
                enabled=enabled,
            )
            if upload is not None:
                _store_upload(source, upload, upload_name or identifier)
            if not source.company:
                source.company = uploaded.upload_company(source)[:200]
                if not source.company:
                    raise SourceError(
                        "A company name is required: the file names none (no company column, "
                        "no posting URL)."
                    )
                source.save(update_fields=["company"])
    except IntegrityError:
        existing = Source.objects.filter(owner=owner, kind=kind, identifier=identifier).first()
        name = f" (#{existing.pk}, {existing.company})" if existing else ""
        raise SourceExists(
            f"You already have a {entry.label} source for {identifier!r}{name}.",
            existing=existing,
        ) from None
    return source


def source_update(source: Source, **fields: Any) -> Source:
    """Change a source's company, filters, options or enabled flag; a new `upload` replaces
    its file. Kind and identifier stay (a different board is a different source)."""
    allowed = {
        "company",
        "options",
        "include_keywords",
        "exclude_keywords",
        "locations",
        "remote_only",
        "enabled",
    }
    upload = fields.pop("upload", None)
    upload_name = fields.pop("upload_name", "")
    unknown = set(fields) - allowed
    if unknown:
        raise SourceError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    for key in ("include_keywords", "exclude_keywords", "locations"):
        if key in fields:
            fields[key] = _clean_words(fields[key])
    if "options" in fields:
        fields["options"] = public_options(dict(fields["options"] or {}))
    if "company" in fields:
        fields["company"] = str(fields["company"]).strip()[:200]
        if not fields["company"]:
            raise SourceError("A company name is required.")
        # Named by its user: a careers page's first read no longer renames it.
        options = dict(fields.get("options", source.options))
        if options.pop(COMPANY_FROM, None) is not None and fields["company"] != source.company:
            fields["options"] = options
    if fields.get("enabled") and not source.enabled:
        # Enabled by its user: a paused source gets its failures forgiven and is read again.
        fields.update(failures_in_row=0, paused_at=None, paused_reason="")
    with transaction.atomic():
        for key, value in fields.items():
            setattr(source, key, value)
        source.save()
        if upload is not None:
            if not registry.reads_upload(source.kind):
                raise SourceError(f"Only {registry.upload_names()} sources take an uploaded file.")
            _store_upload(source, upload, upload_name or source.upload_name)
    return source


def source_delete(source: Source) -> None:
    """Delete a source. Its jobs stay (their source becomes empty); a run reading it now
    reports it as deleted."""
    source.delete()


def _store_upload(source: Source, upload: IO[bytes], name: str) -> None:
    try:
        uploaded.upload_store(source=source, name=name, fileobj=upload)
    except ValueError as exc:
        raise SourceError(str(exc)) from None


def _clean_words(values: Iterable[str] | str) -> list[str]:
    if isinstance(values, str):
        values = values.split(",")
    seen: list[str] = []
    for value in values:
        word = str(value).strip()
        if word and word.lower() not in (s.lower() for s in seen):
            seen.append(word[:100])
    return seen


def _company_from(identifier: str) -> str:
    if "/" in identifier or "." in identifier:
        return ""
    return re.sub(r"[-_]+", " ", identifier).strip().title()


# --- runs ---------------------------------------------------------------------------------


def sources_config(sources: Sequence[Source]) -> dict[str, Any]:
    """The run's config: its sources and their filters as they are now (the run reads them
    from here, so editing a source mid-run changes nothing for it)."""
    return {
        "sources": [
            {
                "id": s.pk,
                "company": s.company,
                "kind": s.kind,
                "identifier": s.identifier,
                "filters": s.filters(),
            }
            for s in sources
        ]
    }


def select_sources(owner: User, source_ids: Iterable[int] | None = None) -> list[Source]:
    """The owner's sources with these ids (all of them must exist), or every enabled one."""
    if source_ids is None:
        sources = list(Source.objects.filter(owner=owner, enabled=True).order_by("id"))
        if not sources:
            raise SourceError("You have no enabled sources. Add a source first.")
        return sources
    ids = list(dict.fromkeys(int(i) for i in source_ids))
    found = {s.pk: s for s in Source.objects.filter(owner=owner, pk__in=ids)}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise SourceError(f"No such source: #{', #'.join(missing)}.")
    if not ids:
        raise SourceError("Select at least one source.")
    return [found[i] for i in ids]


def preview_start(
    *,
    owner: User,
    source_ids: Iterable[int] | None = None,
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    origin: Mapping[str, Any] | None = None,
) -> IngestionRun:
    """Start a dry run over these sources (default: every enabled one). `idempotency_key`
    and `request_fingerprint`: see runs.services.run_start. `origin` says what started it,
    when not its owner's click (a schedule): kept in the run's config."""
    quota_check_run_start(owner, idempotency_key=idempotency_key)  # QuotaExceeded: a RunError
    config = _with_origin(sources_config(select_sources(owner, source_ids)), origin)
    return run_services.run_start(
        owner=owner,
        kind=run_kinds.PREVIEW,
        config=config,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
    )


def ingest_start(
    *,
    owner: User,
    source_ids: Iterable[int] | None = None,
    preview: IngestionRun | None = None,
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    origin: Mapping[str, Any] | None = None,
) -> IngestionRun:
    """Start an ingest: over a finished preview's sources and filters (as the preview saw
    them), or over these sources (default: every enabled one). The listing is read again,
    so the ingest applies the boards as they are now; its own items say what it did.
    `origin` as for preview_start."""
    quota_check_run_start(owner, idempotency_key=idempotency_key)  # QuotaExceeded: a RunError
    if preview is not None:
        if preview.owner_id != owner.pk or preview.kind != run_kinds.PREVIEW:
            raise SourceError(f"Run #{preview.pk} is not one of your previews.")
        if preview.status != RunStatus.FINISHED:
            raise SourceError(
                f"Preview #{preview.pk} is {preview.status}; only a finished preview can be "
                "ingested."
            )
        config = dict(preview.config)
    else:
        config = sources_config(select_sources(owner, source_ids))
    config = _with_origin(config, origin)
    return run_services.run_start(
        owner=owner,
        kind=run_kinds.INGEST,
        config=config,
        preview=preview,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
    )


def _with_origin(config: dict[str, Any], origin: Mapping[str, Any] | None) -> dict[str, Any]:
    # A follow-up (retry, resume) copies the config: it was started by a click, not by this.
    config = {key: value for key, value in config.items() if key != "origin"}
    if origin:
        config["origin"] = dict(origin)
    return config


def ingest_retry_failed(*, owner: User, run: IngestionRun) -> IngestionRun:
    """A new ingest over the jobs that failed in `run` only (the boards are not read again)."""
    quota_check_run_start(owner)  # QuotaExceeded: a RunError
    if run.owner_id != owner.pk or run.kind != run_kinds.INGEST:
        raise SourceError(f"Run #{run.pk} is not one of your ingests.")
    if not run.is_terminal:
        raise SourceError(f"Run #{run.pk} is still {run.status}; retry once it has ended.")
    failed = Job.objects.filter(owner=owner, last_run=run, status=JobStatus.ERROR).count()
    if not failed:
        raise SourceError(f"Run #{run.pk} has no failed jobs to retry.")
    config = {**_with_origin(dict(run.config), None), "retry_of": run.pk}
    return run_services.run_start(owner=owner, kind=run_kinds.INGEST, config=config)


def ingest_resume(*, owner: User, run: IngestionRun) -> IngestionRun:
    """A new ingest that processes the jobs an aborted or failed ingest left pending, without
    reading the boards again (the listing already wrote them; only processing is left)."""
    quota_check_run_start(owner)  # QuotaExceeded: a RunError
    if run.owner_id != owner.pk or run.kind != run_kinds.INGEST:
        raise SourceError(f"Run #{run.pk} is not one of your ingests.")
    if run.status not in RESUMABLE_STATUSES:
        raise SourceError(
            f"Run #{run.pk} is {run.status}; only an aborted or failed ingest can be resumed."
        )
    if not selectors.pending_job_count(run):
        raise SourceError(f"Run #{run.pk} left no pending jobs to process.")
    config = {key: value for key, value in run.config.items() if key not in ("retry_of", "origin")}
    config["resume_of"] = run.pk
    return run_services.run_start(owner=owner, kind=run_kinds.INGEST, config=config)


def payload_delete_expired(
    *, older_than_days: float | None = None, batch_size: int = 1000, dry_run: bool = False
) -> int:
    """Delete RawPayloads older than `older_than_days` (INTAKE_PAYLOAD_TTL_DAYS by default) in
    batches of `batch_size`, each its own short transaction: a million rows never become one
    giant DELETE holding locks, and an interrupted run leaves nothing half done. Returns how
    many were deleted (or, with `dry_run`, would be)."""
    days = settings.INTAKE_PAYLOAD_TTL_DAYS if older_than_days is None else older_than_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    expired = RawPayload.objects.filter(created_at__lt=cutoff)
    if dry_run:
        return expired.count()
    deleted = 0
    while True:
        # created_at is indexed; ids in a batch come from that index, the DELETE by primary key.
        ids = list(expired.order_by("created_at", "id").values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        count, _ = RawPayload.objects.filter(id__in=ids).delete()
        deleted += count

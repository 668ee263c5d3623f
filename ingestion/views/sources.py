"""Configure: the user's sources (list with health, add by pasted URL or form, edit, delete,
enable) and the selection a preview starts from. A form's file is handled by upload_form."""

from __future__ import annotations

import logging
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ingestion import (
    probe,
    run_kinds,
    selectors,
    services,
    upload_limits,
)
from ingestion.adapters import registry
from ingestion.adapters.readers import UploadReport
from ingestion.adapters.recognize import recognize_careers_url
from ingestion.forms import QuickAddForm, SourceForm, error_field
from ingestion.models import Source
from ingestion.services import SourceError
from ingestion.views import schedules as schedule_views
from ingestion.views import upload_form
from ingestion.views.common import HtmxHttpRequest, get_source_for_user, owner_of
from project.params import Params
from runs.models import IngestionRun
from runs.numbers import counted

logger = logging.getLogger(__name__)

# How far back "last run" looks: enough for any source used lately, one small query.
LAST_RUNS_LOOKED_AT = 50
# The longest careers URL the forms take.
URL_MAX_LENGTH = 2000


# --- reading helpers ---------------------------------------------------------------------------


def _recent_runs(owner: User) -> list[IngestionRun]:
    """The owner's last previews and ingests, newest first. One query: a run's sources are in
    its config snapshot (JSON), which no index reaches, so the recent runs are read and
    matched here rather than per source."""
    return list(
        IngestionRun.objects.filter(owner=owner, kind__in=(run_kinds.PREVIEW, run_kinds.INGEST))
        .order_by("-created_at", "-id")
        .only("id", "kind", "status", "created_at", "config")[:LAST_RUNS_LOOKED_AT]
    )


def _run_source_ids(run: IngestionRun) -> list[int]:
    entries = run.config.get("sources", []) if isinstance(run.config, dict) else []
    ids = [entry.get("id") if isinstance(entry, dict) else None for entry in entries]
    return [source_id for source_id in ids if isinstance(source_id, int)]


def _last_runs(runs: list[IngestionRun]) -> dict[int, IngestionRun]:
    """The newest of `runs` that read each source."""
    found: dict[int, IngestionRun] = {}
    for run in runs:
        for source_id in _run_source_ids(run):
            found.setdefault(source_id, run)
    return found


def _remembered_selection(runs: list[IngestionRun], sources: list[Source]) -> set[int]:
    """The selection the page starts from: the sources of the user's last preview or ingest
    (kept with the run in the database, so it follows the user to any browser), plus the
    enabled sources added since; before any run, every enabled source. Runs a schedule
    started are left out."""
    # A run a schedule started is not a choice made on this page: it leaves the ticks alone.
    runs = [run for run in runs if not run.origin_label]
    if not runs:
        return {source.pk for source in sources if source.enabled}
    last = runs[0]
    added_since = {s.pk for s in sources if s.enabled and s.created_at > last.created_at}
    return set(_run_source_ids(last)) | added_since


def _decorate(sources: list[Source], owner: User, selected: set[int] | None) -> list[Source]:
    """Attach what a row shows beyond the model: its last run and whether it is selected
    (by default: as remembered from the last run)."""
    runs = _recent_runs(owner)
    last_runs = _last_runs(runs)
    if selected is None:
        selected = _remembered_selection(runs, sources)
    for source in sources:
        source.last_run = last_runs.get(source.pk)  # type: ignore[attr-defined]
        source.selected = source.pk in selected  # type: ignore[attr-defined]
    return sources


def _table_context(owner: User, selected: set[int] | None = None) -> dict[str, Any]:
    sources = list(selectors.sources_for_owner(owner))
    return {"sources": _decorate(sources, owner, selected)}


def _row_context(source: Source, owner: User, selected: set[int] | None) -> dict[str, Any]:
    source = selectors.sources_for_owner(owner).get(pk=source.pk)
    _decorate([source], owner, selected)
    return {"source": source}


def _posted_selection(request: HttpRequest) -> set[int] | None:
    """The ids ticked in the selection form when a request carried it (`selection` marks
    it: no ticked box at all is a selection too), else None (the default)."""
    if "selection" not in request.POST:
        return None
    # A junk value cannot be a ticked box: left out.
    return set(Params(request.POST, strict=False).ids("source"))


def recognition(url: str) -> dict[str, str]:
    """What a pasted URL will become, for the live hint next to the URL field."""
    url = url.strip()
    if not url:
        return {}
    found = recognize_careers_url(url)
    if found:
        kind, identifier, options = found
        text = f"Recognised: {registry.entry(kind).label} '{identifier}'"
        if options.get("region") == "eu":
            text += " (EU)"
        return {"state": "ok", "text": text}
    if url.lower().startswith(("http://", "https://")):
        return {
            "state": "info",
            "text": f"Not a {registry.board_names()} board: read as a careers page (JSON-LD).",
        }
    return {"state": "bad", "text": "Paste a full http(s) URL."}


def _status_oob(text: str) -> str:
    # The page's live region keeps its node (innerHTML), so a screen reader announces the change.
    return f'<p id="configure-status" hx-swap-oob="innerHTML">{escape(text)}</p>'


# --- views -------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD"])
def configure(request: HtmxHttpRequest) -> HttpResponse:
    owner = owner_of(request)
    context = {
        "quick_form": QuickAddForm(),
        **_table_context(owner),
        **schedule_views.list_context(owner),
    }
    # Paused after failing in a row (ingestion.source_health): said at the top of the page,
    # where it is seen without scrolling the table.
    context["paused_sources"] = [s for s in context["sources"] if s.paused_at and not s.enabled]
    context["pause_after"] = settings.INTAKE_SOURCE_PAUSE_AFTER
    return render(request, "ingestion/configure.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def source_new(request: HtmxHttpRequest) -> HttpResponse:
    if request.method != "POST":
        params = Params(request.GET, strict=False)
        url = params.text("url", max_length=URL_MAX_LENGTH)
        hint = {"state": "bad", "text": params.ignored[0]} if params.ignored else recognition(url)
        if request.htmx and "recognize" in request.GET:
            return render(
                request, "ingestion/source_form.html#url-recognized", {"recognized": hint}
            )
        form = SourceForm(initial={"url": url} if url else None)
        context = {"form": form, "recognized": hint}
        return render(request, "ingestion/source_form.html", context)
    if request.POST.get("form") == "quick":
        return _quick_add(request)

    kept_token = upload_form.use_kept_upload(request)
    form = SourceForm(request.POST, request.FILES)
    report = None
    if upload_form.form_valid(form, request):
        allowed, report = upload_form.page_upload_allowed(
            form, form.cleaned_data["kind"], owner_id=owner_of(request).pk
        )
        if allowed:
            upload = form.cleaned_data.get("upload")
            try:
                source = services.source_create(
                    owner=owner_of(request),
                    upload=upload,
                    upload_name=upload.name if upload else "",
                    **form.create_fields(),
                )
            except SourceError as exc:
                form.add_error(error_field(str(exc), form), str(exc))
            else:
                upload_form.forget_upload(request)
                messages.success(request, _added_message(source, report))
                return redirect("ingestion:configure")
    context = {
        "form": form,
        "report": report,
        "recognized": recognition(request.POST.get("url", "")),
        "kept_upload": upload_form.keep_upload(request, kept_token),
    }
    return render(request, "ingestion/source_form.html", context)


def _added_message(source: Source, report: UploadReport | None) -> str:
    text = f"Added source {source.company} ({source.get_kind_display()})."
    if report and report.bad:
        text += (
            f" {counted(report.good, 'good row')} will be ingested; "
            f"{counted(report.bad, 'bad row')} reported."
        )
    return text


def _quick_add(request: HtmxHttpRequest) -> HttpResponse:
    owner = owner_of(request)
    form = QuickAddForm(request.POST)
    if form.is_valid():
        try:
            source = services.source_create(
                owner=owner, url=form.cleaned_data["url"], company=form.cleaned_data["company"]
            )
        except SourceError as exc:
            form.add_error(error_field(str(exc), form), str(exc))
        else:
            text = f"Added source {source.company} ({source.get_kind_display()})."
            if not request.htmx:
                messages.success(request, text)
                return redirect("ingestion:configure")
            selected = _posted_selection(request)
            if selected is not None:
                selected.add(source.pk)
            quick = render_to_string(
                "ingestion/configure.html#quick-add",
                {"quick_form": QuickAddForm(), "added": text},
                request,
            )
            table = render_to_string(
                "ingestion/configure.html#source-table",
                {**_table_context(owner, selected), "oob": True},
                request,
            )
            return HttpResponse(quick + table + _status_oob(text))
    if request.htmx:
        return render(request, "ingestion/configure.html#quick-add", {"quick_form": form})
    context = {
        "quick_form": form,
        **_table_context(owner),
        **schedule_views.list_context(owner),
    }
    return render(request, "ingestion/configure.html", context, status=400)


@login_required
@require_GET
async def source_probe(request: HttpRequest) -> HttpResponse:
    """The connection test of the pasted URL (htmx, once it is pasted or changed): how many
    postings it lists now, or why it cannot be read. Async: the listing may take up to
    INTAKE_PROBE_SECONDS, and waits in a worker thread, not in the one thread that serves
    every synchronous page under ASGI."""
    user = cast(User, await request.auser())  # signed in: login_required
    url = Params(request.GET, strict=False).text("url", max_length=URL_MAX_LENGTH).strip()
    result = None
    hint = recognition(url)
    if hint.get("state") == "bad":
        # Not a URL at all: the hint beside the field says so already; nothing to fetch.
        result = probe.ProbeResult(ok=False, text=hint["text"])
    elif url:
        result = await sync_to_async(_probe, thread_sensitive=False)(user, url)
    return render(request, "ingestion/configure.html#url-probe", {"probe": result})


def _probe(owner: User, url: str) -> probe.ProbeResult:
    try:
        return probe.source_probe(owner=owner, url=url)
    except Exception:
        # Advisory only: whatever went wrong, the page says so and the add still works.
        logger.exception("The connection test of %r failed", url)
        return probe.ProbeResult(ok=False, text="The test itself failed; adding still works.")


@login_required
@require_POST
def source_check_upload(request: HtmxHttpRequest) -> HttpResponse:
    """The check report of the chosen file, before anything is saved (htmx, on file change)."""
    kind = Params(request.POST, strict=False).choice("kind", registry.kinds())
    upload = request.FILES.get("upload")
    context: dict[str, Any] = {"kind": kind}
    refused = upload_limits.refusal(request)
    if refused:
        context["report"] = UploadReport(fmt="", error=refused)
    elif upload is None:
        context["empty"] = True
    elif not registry.reads_upload(kind):
        context["wrong_kind"] = True
    else:
        context["report"] = upload_form.check_upload(upload, kind)
    return render(request, "ingestion/_upload_check.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def source_edit(request: HtmxHttpRequest, source_id: int) -> HttpResponse:
    source = get_source_for_user(request, source_id)
    if request.method != "POST":
        form = SourceForm(source=source)
        return render(request, "ingestion/source_form.html", {"form": form, "source": source})

    kept_token = upload_form.use_kept_upload(request) if registry.reads_upload(source.kind) else ""
    form = SourceForm(request.POST, request.FILES, source=source)
    report = None
    if upload_form.form_valid(form, request):
        allowed, report = upload_form.page_upload_allowed(
            form, source.kind, owner_id=owner_of(request).pk
        )
        if allowed:
            fields = form.update_fields()
            upload = form.cleaned_data.get("upload")
            if upload:
                fields["upload"], fields["upload_name"] = upload, upload.name
            try:
                services.source_update(source, **fields)
            except SourceError as exc:
                form.add_error(error_field(str(exc), form), str(exc))
            else:
                upload_form.forget_upload(request)
                messages.success(request, f"Saved source {source.company}.")
                return redirect("ingestion:configure")
        # A refused save must not leave the object half-changed for the page below.
        source.refresh_from_db()
    context = {
        "form": form,
        "source": source,
        "report": report,
        "kept_upload": upload_form.keep_upload(request, kept_token) if form.takes_upload else None,
    }
    return render(request, "ingestion/source_form.html", context)


@login_required
@require_POST
def source_delete(request: HtmxHttpRequest, source_id: int) -> HttpResponse:
    source = get_source_for_user(request, source_id)
    text = f"Deleted source {source.company}; its jobs are kept."
    services.source_delete(source)
    if not request.htmx:
        messages.success(request, text)
        return redirect("ingestion:configure")
    owner = owner_of(request)
    body = _status_oob(text)
    if not Source.objects.filter(owner=owner).exists():
        # The last row went: the table gives way to the empty state.
        body += render_to_string(
            "ingestion/configure.html#source-table",
            {**_table_context(owner), "oob": True},
            request,
        )
    # Swapped over the row (hx-target="closest tr"): an empty body removes it.
    return HttpResponse(body)


@login_required
@require_POST
def source_toggle(request: HtmxHttpRequest, source_id: int) -> HttpResponse:
    source = get_source_for_user(request, source_id)
    services.source_update(source, enabled=not source.enabled)
    text = f"{'Enabled' if source.enabled else 'Disabled'} source {source.company}."
    if not request.htmx:
        messages.success(request, text)
        return redirect("ingestion:configure")
    # The row keeps the tick the page shows (the form comes along), except that disabling a
    # source unticks it and enabling one ticks it, as "enabled" means "selected by default".
    selected = _posted_selection(request)
    if selected is not None:
        if source.enabled:
            selected.add(source.pk)
        else:
            selected.discard(source.pk)
    row = render_to_string(
        "ingestion/_source_row.html", _row_context(source, owner_of(request), selected), request
    )
    return HttpResponse(row + _status_oob(text))

"""Downloads of a run's report: the JSON summary and the CSV of its items."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from ingestion import report
from ingestion.views.common import get_run_for_user
from project.params import ParamError, Params


@login_required
@require_GET
def run_report_json(request: HttpRequest, run_id: int) -> JsonResponse:
    run = get_run_for_user(request, run_id)
    try:
        download = Params(request.GET, strict=True).flag("download")
    except ParamError as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    response = JsonResponse(report.report_summary(run))
    if download:
        response["Content-Disposition"] = f'attachment; filename="intake-run-{run.pk}.json"'
    return response


@login_required
@require_GET
def run_report_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    run = get_run_for_user(request, run_id)
    # An async iterator: under ASGI Django streams it; a sync one it would gather whole first.
    response = StreamingHttpResponse(
        report.report_csv_stream(run), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="intake-run-{run.pk}-items.csv"'
    return response

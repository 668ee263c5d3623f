"""Operators' endpoints: /healthz (project/health.py) and /metrics (project/metrics.py).
Thin: the JSON API's health endpoint calls the same check_health()."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from project.health import check_health

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when the database, Redis and a worker are all alive, else 503 naming what is not.
    Open to anyone (load balancers probe it); it says nothing of anyone's data."""
    report = check_health()
    response = JsonResponse(report.as_json(), status=200 if report.ok else 503)
    if not report.ok:
        response["Retry-After"] = "5"
        failing = {name: c.detail for name, c in report.checks.items() if not c.ok}
        logger.warning("Health check failed: %s", failing)
        # Instead of Django's generic "Service Unavailable" error line: what is down.
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response

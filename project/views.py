"""Operators' endpoints: /healthz (project/health.py) and /metrics (project/metrics.py).
Thin: the JSON API's health endpoint calls the same check_health()."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from project import metrics as project_metrics
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


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _may_scrape(request: HttpRequest) -> bool:
    """A staff user's session, or `Authorization: Bearer <INTAKE_METRICS_TOKEN>` when that
    setting is set (compared in constant time)."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    expected = settings.INTAKE_METRICS_TOKEN
    token = _bearer_token(request)
    if not expected or token is None:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of the whole Intake (project/metrics.py)."""
    if not _may_scrape(request):
        response = HttpResponse(
            "Metrics need a staff user's session, or "
            "Authorization: Bearer <INTAKE_METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(project_metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

"""GET /api/v1/health: the database, Redis and live workers, each with its latency (the same
check_health() as /healthz). Open without a token, as load balancers and monitors probe it;
it says nothing of anyone's data."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from api.problems import Problem
from api.routing import api_router
from api.schemas import CamelSchema
from project.health import check_health

router = api_router(tags=["health"])


class CheckOut(CamelSchema):
    ok: bool
    latency_ms: float
    detail: str


class HealthOut(CamelSchema):
    ok: bool
    status: str
    checks: dict[str, CheckOut]


@router.get(
    "",
    auth=None,
    response={200: HealthOut, 503: None},
    summary="Database, Redis and live workers, each with its latency",
    description=(
        "200 when all three are up; else a 503 problem (with Retry-After) naming what is "
        "down, carrying the same `ok` and `checks` members."
    ),
)
def health(request: HttpRequest) -> Any:
    report = check_health()
    body = report.as_json()
    if report.ok:
        return JsonResponse(body)
    down = [f"{name} ({c.detail})" for name, c in report.checks.items() if not c.ok]
    raise Problem(
        503,
        "Down: " + "; ".join(down),
        kind="unhealthy",
        extra={"ok": False, "checks": body["checks"]},
        headers={"Retry-After": "5"},
    )

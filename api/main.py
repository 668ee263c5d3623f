"""The JSON API: one NinjaAPI at /api/v1/, its OpenAPI document at /api/v1/openapi.json and
interactive docs at /api/v1/docs (Swagger UI from ninja's own static files: nothing is loaded
from another site, and the page passes the Content-Security-Policy).

Adding endpoints: a module with `router = api_router(tags=[…])` (api.routing) and thin
handlers that call the services, registered in ROUTERS below. See docs/api.md.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI, Router, Swagger

from api import errors, openapi
from api.auth import AUTH
from api.health import router as health_router
from api.jobs import router as jobs_router
from api.parser import JsonOnlyParser
from api.runs import router as runs_router
from api.schedules import router as schedules_router
from api.sources import router as sources_router

# (path prefix, router): each module's endpoints live under its prefix.
ROUTERS: list[tuple[str, Router]] = [
    ("/runs", runs_router),
    ("/sources", sources_router),
    ("/jobs", jobs_router),
    ("/schedules", schedules_router),
    ("/health", health_router),
]


class IntakeAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        return openapi.with_problems(super().get_openapi_schema(**kwargs))


api = IntakeAPI(
    title="Intake API",
    version="1",
    description=(
        "Start and follow ingestion runs, manage sources and read jobs. Authenticate with "
        "`Authorization: Bearer <token>` (make one on the API tokens page), or a signed-in "
        "session with its CSRF token. Every error is `application/problem+json` (RFC 9457)."
    ),
    urls_namespace="api",
    auth=AUTH,
    parser=JsonOnlyParser(),
    # No validator badge: Swagger UI would fetch it from the internet.
    docs=Swagger(settings={"validatorUrl": None}),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
errors.install(api)
for _prefix, _router in ROUTERS:
    api.add_router(_prefix, _router)

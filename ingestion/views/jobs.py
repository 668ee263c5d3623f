"""Jobs: a searchable, filterable list (fast on 100,000 jobs) and a job's page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def job_list(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    raise NotImplementedError

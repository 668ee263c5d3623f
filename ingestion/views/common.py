"""Helpers every ingestion view shares: the signed-in owner and owner-scoped lookups (another
user's object is a 404, not a 403: its existence is not theirs to know)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django_htmx.middleware import HtmxDetails

from ingestion.models import Job, Source
from runs.models import IngestionRun


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def owner_of(request: HttpRequest) -> User:
    # Every view that calls this is behind @login_required.
    return cast(User, request.user)


def get_run_for_user(request: HttpRequest, run_id: int) -> IngestionRun:
    return get_object_or_404(IngestionRun, pk=run_id, owner=request.user)


def get_source_for_user(request: HttpRequest, source_id: int) -> Source:
    return get_object_or_404(Source, pk=source_id, owner=request.user)


def get_job_for_user(request: HttpRequest, job_id: int) -> Job:
    return get_object_or_404(Job.objects.with_last_seen(), pk=job_id, owner=request.user)

"""The stepper's run steps: Preview (a dry run, live, then its diff) and Ingest (the run, live,
then its summary), the items table, retry failed, and home (resume the active run)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def home(request: HttpRequest) -> HttpResponse:
    return redirect("runs:list")


def preview_start(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def preview_page(request: HttpRequest, run_id: int) -> HttpResponse:
    raise NotImplementedError


def ingest_start(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def ingest_page(request: HttpRequest, run_id: int) -> HttpResponse:
    raise NotImplementedError


def run_items(request: HttpRequest, run_id: int) -> HttpResponse:
    raise NotImplementedError


def retry_failed(request: HttpRequest, run_id: int) -> HttpResponse:
    raise NotImplementedError

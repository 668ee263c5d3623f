"""Configure: the user's sources (list with health, add by pasted URL or form, uploads checked
row by row before saving, edit, delete, enable) and the selection a preview starts from."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def configure(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def source_new(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def source_check_upload(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def source_edit(request: HttpRequest, source_id: int) -> HttpResponse:
    raise NotImplementedError


def source_delete(request: HttpRequest, source_id: int) -> HttpResponse:
    raise NotImplementedError


def source_toggle(request: HttpRequest, source_id: int) -> HttpResponse:
    raise NotImplementedError

"""Static files answered in front of Django's handler (project.static_files): the response
WhiteNoise gives through Django, without the middleware stack; everything else to Django."""

from __future__ import annotations

import pytest

from project import static_files
from tests.runs.test_status_poll import Recorder, get

PATH = "/static/css/intake.css"


@pytest.fixture
def django_app() -> Recorder:
    return Recorder()


@pytest.fixture
def front(django_app: Recorder) -> static_files.StaticFiles:
    return static_files.StaticFiles(django_app, django_app.django)


def test_a_static_file_is_answered_in_front_with_djangos_response(front, django_app):
    for headers in ({}, {"accept_encoding": "gzip, br"}):
        answered = get(front, PATH, {}, **headers)
        through_django = get(django_app.django, PATH, {}, **headers)
        assert answered["status"] == through_django["status"] == 200
        assert answered["headers"] == through_django["headers"]
        assert answered["body"] == through_django["body"] and answered["body"]
    assert "x-content-type-options" in answered["headers"]  # SecurityMiddleware's
    assert django_app.calls == 0


def test_a_revalidation_is_not_modified_in_front(front, django_app):
    etag = get(front, PATH, {})["headers"]["etag"]
    answered = get(front, PATH, {}, if_none_match=etag)
    through_django = get(django_app.django, PATH, {}, if_none_match=etag)
    assert answered["status"] == through_django["status"] == 304
    assert answered["headers"] == through_django["headers"] and answered["body"] == b""
    assert django_app.calls == 0


def test_head_is_answered_in_front_without_a_body(front, django_app):
    answered = get(front, PATH, {}, method="HEAD")
    through_django = get(django_app.django, PATH, {}, method="HEAD")
    assert answered["status"] == 200 and answered["body"] == b""
    assert answered["headers"] == through_django["headers"]
    assert django_app.calls == 0


def test_unknown_files_ranges_and_pages_go_to_django(front, django_app):
    assert get(front, "/static/css/no-such.css", {})["status"] == 404
    assert get(front, PATH, {}, range="bytes=0-9")["status"] == 206
    assert get(front, "/login/", {})["status"] == 200
    assert django_app.calls == 3


def test_a_file_too_large_for_the_loop_goes_to_django(front, django_app, monkeypatch):
    monkeypatch.setattr(static_files, "LARGEST_ON_THE_LOOP", 10)
    assert get(front, PATH, {})["status"] == 200
    assert django_app.calls == 1


def test_the_front_is_on_under_the_project_settings():
    assert static_files.enabled()


def test_another_middleware_before_whitenoise_turns_the_front_off(settings):
    settings.MIDDLEWARE = ["django.middleware.gzip.GZipMiddleware", *settings.MIDDLEWARE]
    assert not static_files.enabled()

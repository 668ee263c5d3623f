"""Settings come from the environment through strict readers."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.env import env_bool, env_float, env_int, env_list, env_proxy_ssl_header
from project.settings import grip_key, redis_kwargs


@pytest.mark.parametrize("raw, expected", [("1", True), ("yes", True), ("off", False), ("", False)])
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG") is expected


def test_env_bool_refuses_junk(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG='maybe' is not a boolean"):
        env_bool("X_FLAG")


def test_env_int_and_float_refuse_junk_and_out_of_range(monkeypatch):
    monkeypatch.setenv("X_N", "ten")
    with pytest.raises(ImproperlyConfigured, match="not a whole number"):
        env_int("X_N", 1)
    monkeypatch.setenv("X_N", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_float("X_N", 1.0, minimum=1)


def test_env_defaults_apply_when_unset(monkeypatch):
    monkeypatch.delenv("X_UNSET", raising=False)
    assert env_int("X_UNSET", 7) == 7
    assert env_list("X_UNSET", ["a"]) == ["a"]


def test_env_list_splits_on_commas(monkeypatch):
    monkeypatch.setenv("X_LIST", " a.example, b.example ,,")
    assert env_list("X_LIST", []) == ["a.example", "b.example"]


def test_redis_urls_become_client_keyword_arguments():
    assert redis_kwargs("redis://:pw@cache:6380/2")["host"] == "cache"
    assert redis_kwargs("redis://:pw@cache:6380/2")["port"] == 6380
    assert redis_kwargs("redis://:pw@cache:6380/2")["db"] == 2
    assert redis_kwargs("redis://:pw@cache:6380/2")["password"] == "pw"
    assert redis_kwargs("unix:///tmp/x.sock")["unix_socket_path"] == "/tmp/x.sock"
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme"):
        redis_kwargs("http://nope")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("X-Forwarded-Proto", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("x-forwarded-proto", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("HTTP_X_FORWARDED_PROTO", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("X-Forwarded-Ssl=on", ("HTTP_X_FORWARDED_SSL", "on")),
        ("X-Forwarded-Proto=", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("", None),
    ],
)
def test_the_proxy_ssl_header_is_read_as_a_header_name(monkeypatch, raw, expected):
    monkeypatch.setenv("X_PROXY", raw)
    assert env_proxy_ssl_header("X_PROXY") == expected


@pytest.mark.parametrize("raw", ["X Forwarded Proto", "=https", "a:b", "é", "X-Proto=a b"])
def test_the_proxy_ssl_header_refuses_junk(monkeypatch, raw):
    monkeypatch.setenv("X_PROXY", raw)
    with pytest.raises(ImproperlyConfigured, match="is not a header name"):
        env_proxy_ssl_header("X_PROXY")


@pytest.mark.django_db
def test_the_404s_of_browser_icons_are_not_logged_but_other_404s_are(client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        for path in (
            "/apple-touch-icon.png",
            "/apple-touch-icon-precomposed.png",
            "/no-such-page/",
        ):
            assert client.get(path).status_code == 404, path
        # The site has an icon now: /favicon.ico leads to it, no 404 at all.
        assert client.get("/favicon.ico").status_code == 301

    logged = [record.getMessage() for record in caplog.records if record.name == "django.request"]
    assert logged == ["Not Found: /no-such-page/"]


def test_grip_mode_refuses_a_missing_short_or_example_key():
    for key in ("", "changeme", "short-key"):
        with pytest.raises(ImproperlyConfigured, match="INTAKE_GRIP_KEY must be Pushpin's sig_key"):
            grip_key("http://127.0.0.1:5561", key)
    assert grip_key("http://127.0.0.1:5561", "k" * 32) == "k" * 32
    # GRIP mode off: the key is not used, so it is not asked for.
    assert grip_key("", "") == ""

"""The status poll's fast path (runs.status_poll): the owner's poll answered beside Django's
middleware stack, with the response Django gives; everything else handed to Django."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.asgi import get_asgi_application
from django.test import Client
from django.urls import reverse

from runs import services, status_poll, transitions
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# A real browser's CSRF cookie: the fragment's token is derived from it.
CSRF_SECRET = "a" * 32


class Recorder:
    """Django's ASGI application, counting the requests that reach it."""

    def __init__(self) -> None:
        self.django = get_asgi_application()
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        await self.django(scope, receive, send)


@pytest.fixture
def django_app() -> Recorder:
    return Recorder()


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Any:
    """The fast path's memory starts empty, on a clock the test moves (`clock.advance`)."""
    import time

    class Clock:
        offset = 0.0

        def __call__(self) -> float:
            return time.monotonic() + self.offset

        def advance(self, seconds: float) -> None:
            self.offset += seconds

    fake = Clock()
    monkeypatch.setattr(status_poll, "monotonic", fake)
    status_poll.SESSIONS.clear()
    status_poll.RUNS.clear()
    yield fake
    status_poll.SESSIONS.clear()
    status_poll.RUNS.clear()


def past_the_run_bound(clock: Any) -> None:
    clock.advance(status_poll.RUN_RECHECK_SECONDS + 0.01)


def past_the_session_bound(clock: Any) -> None:
    clock.advance(status_poll.SESSION_RECHECK_SECONDS + 0.01)


@pytest.fixture
def fast(django_app: Recorder) -> status_poll.StatusPoll:
    return status_poll.StatusPoll(django_app, django_app.django)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def get(app: Any, path: str, cookies: dict[str, str], **headers: str) -> dict[str, Any]:
    """One GET through the ASGI application `app`: status, headers (lower-case names,
    Set-Cookie as a list), body."""
    return async_to_sync(aget)(app, path, cookies, **headers)


async def aget(app: Any, path: str, cookies: dict[str, str], **headers: str) -> dict[str, Any]:
    """`get` on the running event loop."""
    method = headers.pop("method", "GET")
    raw_headers = [(b"host", headers.pop("host", "127.0.0.1").encode())]
    if cookies:
        cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
        raw_headers.append((b"cookie", cookie.encode()))
    for name, value in headers.items():
        raw_headers.append((name.replace("_", "-").encode(), value.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages: list[dict[str, Any]] = []

    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected; Django cancels this
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    result: dict[str, Any] = {"status": start["status"], "headers": {}, "cookies": []}
    for name, value in start["headers"]:
        if name.lower() == b"set-cookie":
            result["cookies"].append(value.decode())
        else:
            result["headers"][name.decode().lower()] = value.decode()
    result["body"] = b"".join(m.get("body", b"") for m in messages[1:])
    return result


def start(user: Any) -> IngestionRun:
    return services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 3})


def without_token(body: bytes) -> str:
    return TOKEN.sub('name="csrfmiddlewaretoken" value=""', body.decode())


def test_the_owners_poll_is_answered_beside_django_with_djangos_response(
    fast, django_app, user, redis_client
):
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user), "csrftoken": CSRF_SECRET}
    path = reverse("runs:status", args=[run.pk])

    answered = get(fast, path, cookies, hx_request="true")
    assert django_app.calls == 0
    through_django = get(django_app.django, path, cookies, hx_request="true")

    assert answered["status"] == through_django["status"] == 200
    assert answered["headers"] == through_django["headers"]
    assert without_token(answered["body"]) == without_token(through_django["body"])
    assert 'id="run-status"' in answered["body"].decode()
    # Django renews the CSRF cookie whenever a page carries a token; so does the fast path.
    assert [c.split(";")[0] for c in answered["cookies"]] == [f"csrftoken={CSRF_SECRET}"]
    assert [c.split(";")[0] for c in through_django["cookies"]] == [f"csrftoken={CSRF_SECRET}"]


def test_the_fragments_csrf_token_lets_the_owner_abort_the_run(
    fast, django_app, user, redis_client
):
    run = start(user)
    session = session_cookie(user)
    cookies = {settings.SESSION_COOKIE_NAME: session, "csrftoken": CSRF_SECRET}
    answered = get(fast, reverse("runs:status", args=[run.pk]), cookies)
    match = TOKEN.search(answered["body"].decode())
    assert match

    browser = Client(enforce_csrf_checks=True)
    browser.cookies[settings.SESSION_COOKIE_NAME] = session
    browser.cookies["csrftoken"] = CSRF_SECRET
    response = browser.post(reverse("runs:abort", args=[run.pk]), {"csrfmiddlewaretoken": match[1]})
    assert response.status_code == 302
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ABORTED


def test_a_poll_without_a_csrf_cookie_gets_a_new_one_as_through_django(
    fast, django_app, user, redis_client
):
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    answered = get(fast, reverse("runs:status", args=[run.pk]), cookies)
    assert answered["status"] == 200 and django_app.calls == 0
    assert len(answered["cookies"]) == 1 and answered["cookies"][0].startswith("csrftoken=")


def test_a_revalidating_poll_of_an_unchanged_run_is_not_modified(
    fast, django_app, user, redis_client, clock, django_assert_num_queries
):
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user), "csrftoken": CSRF_SECRET}
    path = reverse("runs:status", args=[run.pk])
    first = get(fast, path, cookies)
    etag = first["headers"]["etag"]

    # The session and the run are remembered from the first poll: no read.
    with django_assert_num_queries(0):
        again = get(fast, path, cookies, if_none_match=etag)
        fresh = get(fast, path, cookies)
    assert fresh["status"] == 200 and fresh["headers"] == first["headers"]
    assert without_token(fresh["body"]) == without_token(first["body"])
    assert again["status"] == 304 and again["body"] == b""
    assert again["headers"]["etag"] == etag
    assert again["headers"] == get(django_app.django, path, cookies, if_none_match=etag)["headers"]

    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    past_the_run_bound(clock)
    moved = get(fast, path, cookies, if_none_match=etag)
    assert moved["status"] == 200 and moved["headers"]["etag"] != etag
    assert "badge-initializing" in moved["body"].decode()
    assert django_app.calls == 0


def test_another_users_run_is_not_found(fast, django_app, user, other_user, redis_client):
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(other_user)}
    answered = get(fast, reverse("runs:status", args=[run.pk]), cookies, if_none_match="*")
    assert answered["status"] == 404
    assert django_app.calls == 1


def test_a_missing_run_is_not_found(fast, django_app, user, redis_client):
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    assert get(fast, reverse("runs:status", args=[987654]), cookies)["status"] == 404


def test_without_a_session_the_poll_redirects_to_the_login(fast, django_app, user, redis_client):
    run = start(user)
    path = reverse("runs:status", args=[run.pk])
    for cookies in ({}, {settings.SESSION_COOKIE_NAME: "no-such-session-key"}):
        answered = get(fast, path, cookies)
        assert answered["status"] == 302
        assert answered["headers"]["location"].startswith(reverse("login"))
    assert django_app.calls == 2


def test_a_session_deleted_elsewhere_stops_reading_the_run_within_the_bound(
    fast, django_app, user, redis_client, clock
):
    run = start(user)
    session = session_cookie(user)
    path = reverse("runs:status", args=[run.pk])
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 200

    Session.objects.filter(session_key=session).delete()  # a logout in another process
    # Remembered for at most SESSION_RECHECK_SECONDS (and rechecked sooner, with the run,
    # whenever the run is read again).
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 200
    assert django_app.calls == 0
    past_the_session_bound(clock)
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 302


def test_a_logout_in_this_process_stops_reading_the_run_at_once(
    fast, django_app, user, redis_client
):
    run = start(user)
    browser = Client()
    browser.force_login(user)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    path = reverse("runs:status", args=[run.pk])
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 200
    assert session in status_poll.SESSIONS

    browser.post(reverse("logout"))
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 302


def test_a_changed_password_or_a_deactivated_user_signs_the_session_out(
    fast, django_app, user, redis_client, clock
):
    run = start(user)
    path = reverse("runs:status", args=[run.pk])
    session = session_cookie(user)
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 200
    user.set_password("another-pass-456")
    user.save()
    past_the_session_bound(clock)
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 302

    session = session_cookie(user)
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 200
    user.is_active = False
    user.save()
    past_the_session_bound(clock)
    assert get(fast, path, {settings.SESSION_COOKIE_NAME: session})["status"] == 302


def test_a_disallowed_host_is_refused_as_through_django(fast, django_app, user, redis_client):
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    answered = get(fast, reverse("runs:status", args=[run.pk]), cookies, host="evil.example")
    assert answered["status"] == 400
    assert django_app.calls == 1


def test_a_changed_middleware_list_turns_the_fast_path_off(django_app, user, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert not status_poll.enabled()
    fast = status_poll.StatusPoll(django_app, django_app.django)
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    get(fast, reverse("runs:status", args=[run.pk]), cookies)
    assert django_app.calls == 1


def test_the_web_application_has_the_fast_path_under_the_project_settings():
    assert status_poll.enabled()


def test_the_cached_fragment_is_what_the_template_renders_for_the_request(
    fast, django_app, user, redis_client
):
    from django.shortcuts import render
    from django.test import RequestFactory

    from runs import views

    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user), "csrftoken": CSRF_SECRET}
    path = reverse("runs:status", args=[run.pk])
    first = get(fast, path, cookies)["body"]
    second = get(fast, path, cookies)["body"]  # from the cache

    request = RequestFactory().get(path)
    request.user = user
    fresh = IngestionRun.objects.get(pk=run.pk)
    rendered = render(request, "runs/_live.html#run-status", views._status_context(fresh))
    assert without_token(first) == without_token(second) == without_token(rendered.content)
    assert TOKEN.search(second.decode())[1] != TOKEN.search(first.decode())[1]  # masked anew


def test_the_poll_ends_a_run_no_worker_picked_up(fast, django_app, user, redis_client):
    from datetime import timedelta

    from django.utils import timezone

    run = start(user)
    limit = settings.INTAKE_RUN_PENDING_TIMEOUT
    IngestionRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(seconds=limit + 60)
    )
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    answered = get(fast, reverse("runs:status", args=[run.pk]), cookies)
    assert answered["status"] == 200 and django_app.calls == 0
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ERROR
    assert "No worker picked the run up" in answered["body"].decode()


def test_a_change_of_the_run_shows_once_its_bound_passes(
    fast, django_app, user, redis_client, clock
):
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    path = reverse("runs:status", args=[run.pk])
    etag = get(fast, path, cookies)["headers"]["etag"]
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    past_the_run_bound(clock)
    moved = get(fast, path, cookies, if_none_match=etag)
    assert moved["status"] == 200 and "badge-initializing" in moved["body"].decode()


def test_a_remembered_session_does_not_read_another_users_run(
    fast, django_app, user, other_user, redis_client
):
    mine, theirs = start(user), start(other_user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    other = {settings.SESSION_COOKIE_NAME: session_cookie(other_user)}
    assert get(fast, reverse("runs:status", args=[mine.pk]), cookies)["status"] == 200
    assert get(fast, reverse("runs:status", args=[theirs.pk]), other)["status"] == 200
    # Both the session and the other user's run are remembered now.
    answered = get(fast, reverse("runs:status", args=[theirs.pk]), cookies)
    assert answered["status"] == 404
    assert django_app.calls == 1


def test_a_remembered_run_past_its_pending_timeout_is_read_and_ended(
    fast, django_app, user, redis_client
):
    from datetime import timedelta

    from django.utils import timezone

    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    path = reverse("runs:status", args=[run.pk])
    assert get(fast, path, cookies)["status"] == 200
    remembered, until = status_poll.RUNS[run.pk]
    limit = settings.INTAKE_RUN_PENDING_TIMEOUT
    old = timezone.now() - timedelta(seconds=limit + 60)
    remembered.created_at = old
    IngestionRun.objects.filter(pk=run.pk).update(created_at=old)
    answered = get(fast, path, cookies)
    assert "No worker picked the run up" in answered["body"].decode()
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ERROR


def test_polls_of_a_run_being_read_wait_for_that_read(
    fast, django_app, user, redis_client, clock, monkeypatch
):
    run = start(user)
    cookies = {settings.SESSION_COOKIE_NAME: session_cookie(user)}
    path = reverse("runs:status", args=[run.pk])
    assert get(fast, path, cookies)["status"] == 200
    reads = []
    read_run = status_poll.read_run
    monkeypatch.setattr(status_poll, "read_run", lambda *a: reads.append(a) or read_run(*a))
    past_the_run_bound(clock)

    async def polls() -> list[dict[str, Any]]:
        return await asyncio.gather(*(aget(fast, path, cookies) for _ in range(10)))

    assert [answer["status"] for answer in async_to_sync(polls)()] == [200] * 10
    assert len(reads) == 1


def test_the_columns_read_beside_the_run_are_converted_as_their_fields_read_them(
    user, redis_client
):
    from django.utils import timezone

    run = start(user)
    key = session_cookie(user)
    read = status_poll.read_run(run.pk, key, timezone.now())
    assert read is not None and read.pk == run.pk
    # As the ORM reads them on every database (SQLite stores text and integers).
    assert read.poll_session_expires == Session.objects.get(session_key=key).expire_date
    assert timezone.is_aware(read.poll_session_expires)
    assert read.poll_owner_active is True

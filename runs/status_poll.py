"""The status poll's fast path: `GET /runs/<id>/status/` answered beside Django's request
handler rather than through it.

A page whose live feed is down polls its run's status every few seconds, so many open pages
mean many polls. Through Django's handler each one pays for the whole middleware stack, hopping
between the event loop and a thread at every sync middleware (WhiteNoise is sync only), and for
three reads (the session, the user, the run). Here a poll costs one hop to a thread and one
read that joins the run, its owner and the session by their keys; the response is still built
by the view's own code (runs.views.status_response) and passes through the same hooks of the
middleware that add headers or cookies, so it is the response Django would give. The next
polls of the same run by the same session, for a bounded time, are answered on the event loop
from what that read found, with no read and no thread (see SESSIONS and RUNS below).

Only the plain case is answered here: a signed-in owner polling their own run. Anything else
(no session, an expired or tampered one, a changed password, another user's run, no such run,
a disallowed host, a redirect to HTTPS, any error) goes to Django, which answers it as it
always has (a login redirect, a 404, a 400 …). The path also steps aside as a whole when the
settings differ from the ones it was written for (another session engine or authentication
backend, a different middleware list): see `enabled()`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from datetime import UTC, datetime
from functools import lru_cache
from time import monotonic
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.db import close_old_connections, connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.crypto import constant_time_compare
from django.utils.dateparse import parse_datetime

from project import middleware as csp
from runs import stale
from runs.models import IngestionRun

logger = logging.getLogger(__name__)

PATH = re.compile(r"/runs/([1-9][0-9]{0,17})/status/")

# Every middleware of settings.MIDDLEWARE, in its order, and what it means for this path:
# the hooks of the first kind are called below (requests in this order, responses in
# reverse); the others do nothing to a status poll. A change to the list turns the fast path
# off until it is looked at again.
MIDDLEWARE_ROLES = {
    "django.middleware.security.SecurityMiddleware": "hooks: HTTPS redirect, headers",
    "api.middleware.api_problems": "nothing: /api/ only",
    "whitenoise.middleware.WhiteNoiseMiddleware": "nothing: /static/ only",
    "django.contrib.sessions.middleware.SessionMiddleware": "read here; Vary: Cookie",
    "django.middleware.common.CommonMiddleware": "hooks: host, user agents, length",
    "django.middleware.csrf.CsrfViewMiddleware": "hooks: the token's cookie",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "checked here, as get_user",
    "django.contrib.messages.middleware.MessageMiddleware": "nothing: the fragment has none",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "hooks: X-Frame-Options",
    "project.middleware.content_security_policy": "hooks: the policy header",
    "project.admin_guard.refuse_nul_in_admin_queries": "nothing: /admin/ only",
    "django_htmx.middleware.HtmxMiddleware": "nothing: the view does not ask",
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def enabled() -> bool:
    """Whether the settings are the ones this path reproduces Django's answer under."""
    return (
        list(settings.MIDDLEWARE) == list(MIDDLEWARE_ROLES)
        and settings.SESSION_ENGINE == SESSION_ENGINE
        and list(settings.AUTHENTICATION_BACKENDS) == [MODEL_BACKEND]
        and settings.AUTH_USER_MODEL == "auth.User"
        and not settings.SESSION_SAVE_EVERY_REQUEST
        and not settings.CSRF_USE_SESSIONS
        and not settings.FORCE_SCRIPT_NAME
    )


def _unused(request: HttpRequest) -> HttpResponseBase:
    raise AssertionError("only the middleware's hooks are called here")


class _Hooks:
    """The middleware whose hooks the fast path calls, built once."""

    def __init__(self) -> None:
        self.security = SecurityMiddleware(_unused)
        self.common = CommonMiddleware(_unused)
        self.csrf = CsrfViewMiddleware(_unused)
        self.xframe = XFrameOptionsMiddleware(_unused)


class StatusPoll:
    """ASGI middleware: answers the status poll of a signed-in owner; hands everything else
    (and the poll too, when enabled() is false) to `app`."""

    def __init__(self, app: Any, handler: ASGIHandler | None = None) -> None:
        self.app = app
        # Its send_response writes the answer as Django writes its own (`app` by default).
        self.handler = handler or app
        self.on = enabled()
        self.hooks = _Hooks() if self.on else None
        self.reading: dict[int, asyncio.Event] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            self.hooks is not None
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("root_path")
            and (match := PATH.fullmatch(scope["path"]))
        ):
            run_id = int(match[1])
            response = answer_from_memory(scope, run_id, self.hooks)
            if response is None and (reading := self.reading.get(run_id)) is not None:
                # The run is being read for another poll: its answer is remembered soon.
                await reading.wait()
                response = answer_from_memory(scope, run_id, self.hooks)
            if response is None:
                response = await self.read(scope, run_id, self.hooks)
            if response is not None:
                await self.handler.send_response(response, send)
                return
        await self.app(scope, receive, send)

    async def read(self, scope: dict[str, Any], run_id: int, hooks: _Hooks) -> Any:
        # One read of a run at a time per process: when its memory ends, the polls that come
        # meanwhile wait for the one read rather than each making its own.
        done = self.reading.setdefault(run_id, asyncio.Event())
        try:
            return await sync_to_async(answer, thread_sensitive=False)(scope, run_id, hooks)
        finally:
            if self.reading.get(run_id) is done:
                del self.reading[run_id]
                done.set()


def answer(scope: dict[str, Any], run_id: int, hooks: Any) -> HttpResponseBase | None:
    """The response to a status poll, or None: Django answers it."""
    # As Django does when a request starts and finishes: a connection this thread was left
    # with is closed if unusable, and the request's goes back to the pool at the end.
    close_old_connections()
    try:
        return _answer(scope, run_id, hooks)
    except Exception:  # Django answers, and reports whatever it was as it always does
        logger.warning("The status poll's fast path failed; Django answers.", exc_info=True)
        return None
    finally:
        close_old_connections()


def _answer(scope: dict[str, Any], run_id: int, hooks: _Hooks) -> HttpResponseBase | None:
    from runs.views import status_response

    checked = _checked_request(scope, hooks)
    if checked is None:
        return None
    request, key = checked
    run = read_run(run_id, key, timezone.now())
    if run is None or not _signed_in_owner(run):
        return None
    response = _respond(request, run, hooks, status_response)
    _remember(key, run)
    return response


def answer_from_memory(
    scope: dict[str, Any], run_id: int, hooks: _Hooks
) -> HttpResponseBase | None:
    """The answer from this process's memory of the session and the run (see SESSIONS and
    RUNS), on the event loop with no read; None when either is not remembered, does not
    match, or the run would have to be ended as stale: `answer` reads them again."""
    try:
        return _answer_from_memory(scope, run_id, hooks)
    except Exception:  # a read attempted on the loop among them: `answer` answers
        logger.warning("The status poll's memory failed; the poll reads.", exc_info=True)
        return None


def _answer_from_memory(
    scope: dict[str, Any], run_id: int, hooks: _Hooks
) -> HttpResponseBase | None:
    from runs.views import status_answer

    checked = _checked_request(scope, hooks)
    if checked is None:
        return None
    request, key = checked
    now, clock = timezone.now(), monotonic()
    session, run_entry = SESSIONS.get(key), RUNS.get(run_id)
    if session is None or run_entry is None:
        return None
    user_id, expires, session_until = session
    run, run_until = run_entry
    if (
        clock >= session_until
        or clock >= run_until
        or now >= expires
        or run.owner_id != user_id
        or stale.run_is_stale(run, now)
    ):
        return None
    return _respond(request, run, hooks, status_answer)


def _checked_request(scope: dict[str, Any], hooks: _Hooks) -> tuple[ASGIRequest, str] | None:
    """The request and its session key, once the request hooks that may refuse or redirect
    it let it through (None: Django answers)."""
    request = ASGIRequest(scope, io.BytesIO())
    if hooks.security.process_request(request) is not None:
        return None  # a redirect to HTTPS
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    # CommonMiddleware checks the Host header (DisallowedHost) and the user agents.
    if hooks.common.process_request(request) is not None:
        return None
    return request, key


def _respond(request: HttpRequest, run: IngestionRun, hooks: _Hooks, view: Any) -> HttpResponseBase:
    hooks.csrf.process_request(request)
    # Typed as HttpResponse: that is what the hooks' stubs take (any response works).
    response = cast(HttpResponse, view(request, run))
    # Each hook sets its headers on the response it is given and returns it (CommonMiddleware
    # returns another only for a 404).
    csp._apply(request, response)
    hooks.xframe.process_response(request, response)
    hooks.csrf.process_response(request, response)
    hooks.common.process_response(request, response)
    patch_vary_headers(response, ("Cookie",))  # SessionMiddleware: the session was read
    hooks.security.process_response(request, response)
    return response


# What this process remembers of the polls it answered after a read, so that the next polls
# of the same run by the same session are answered without one (answer_from_memory):
# session key -> (user id, the session's expiry, until when it is trusted) and run id -> (the
# run as read, until when it is trusted), on the monotonic clock. A session signed out,
# revoked by a password change or a deactivation, or deleted keeps being trusted by a process
# that remembers it for at most SESSION_RECHECK_SECONDS (a logout in this process forgets it at
# once: forget_session); a poll shows the run as it was at most RUN_RECHECK_SECONDS ago, less
# than a poll's interval. Plain dicts, cleared when full; a stale entry is only ever skipped.
SESSION_RECHECK_SECONDS = 5.0
RUN_RECHECK_SECONDS = 1.0
REMEMBERED_MAX = 10_000
SESSIONS: dict[str, tuple[int, datetime, float]] = {}
RUNS: dict[int, tuple[IngestionRun, float]] = {}


def _remember(session_key: str, run: Any) -> None:
    clock = monotonic()
    for memory in (SESSIONS, RUNS):
        if len(memory) >= REMEMBERED_MAX:
            memory.clear()
    SESSIONS[session_key] = (
        run.owner_id,
        _aware(run.poll_session_expires),
        clock + SESSION_RECHECK_SECONDS,
    )
    RUNS[run.pk] = (run, clock + RUN_RECHECK_SECONDS)


def _aware(value: datetime | str) -> datetime:
    """A column read beside the run's own: SQLite gives it as text or a naive datetime in
    UTC (a raw query converts only the model's fields), PostgreSQL as an aware one."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"not a datetime: {value!r}")
        value = parsed
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


@receiver(user_logged_out)
def forget_session(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """A logout in this process ends the session's remembered polls at once."""
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        SESSIONS.pop(key, None)


def read_run(run_id: int, session_key: str, now: datetime) -> IngestionRun | None:
    """The run, with its owner's password hash and active flag and the session's data beside
    it (poll_*), in one read by three primary keys; None when the run or a live session with
    that key is missing."""
    rows = IngestionRun.objects.raw(_sql(), [session_key, now, run_id])
    return next(iter(rows), None)


@lru_cache(maxsize=4)
def _sql_for(vendor: str) -> str:
    q = connection.ops.quote_name
    return (
        f"SELECT r.*, s.{q('session_data')} AS poll_session_data,"
        f" s.{q('expire_date')} AS poll_session_expires,"
        f" u.{q('password')} AS poll_owner_password, u.{q('is_active')} AS poll_owner_active"
        f" FROM {q(IngestionRun._meta.db_table)} r"
        f" JOIN {q(User._meta.db_table)} u ON u.{q('id')} = r.{q('owner_id')}"
        f" JOIN {q(Session._meta.db_table)} s"
        f" ON s.{q('session_key')} = %s AND s.{q('expire_date')} > %s"
        f" WHERE r.{q('id')} = %s"
    )


def _sql() -> str:
    return _sql_for(connection.vendor)


def _signed_in_owner(run: Any) -> bool:
    """Whether the session beside `run` signs its owner in, as django.contrib.auth.get_user
    would judge it (anything it would repair or refuse is left to it)."""
    auth = _session_auth(run.poll_session_data)
    if auth is None or not run.poll_owner_active:
        return False
    user_id, backend, session_hash = auth
    return (
        user_id == str(run.owner_id)
        and backend in settings.AUTHENTICATION_BACKENDS
        and constant_time_compare(session_hash, _auth_hash(run.poll_owner_password))
    )


@lru_cache(maxsize=4096)
def _session_auth(session_data: str) -> tuple[str, str, str] | None:
    # Keyed by the data itself, which is signed: the same data always decodes the same way.
    data = SessionStore().decode(session_data)
    values = (data.get(SESSION_KEY), data.get(BACKEND_SESSION_KEY), data.get(HASH_SESSION_KEY))
    if not all(isinstance(value, str) and value for value in values):
        return None
    return str(values[0]), str(values[1]), str(values[2])


@lru_cache(maxsize=4096)
def _auth_hash(password: str) -> str:
    # A session signed with a fallback secret is verified (and re-keyed) by Django's path.
    return User(password=password).get_session_auth_hash()

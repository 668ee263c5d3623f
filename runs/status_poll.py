"""The status poll's fast path: `GET /runs/<id>/status/` answered beside Django's request
handler rather than through it (and any other poll of one run registered as a Route: the
JSON API's `GET /api/v1/runs/<id>` registers itself, see `register`).

A page whose live feed is down polls its run's status every few seconds, so many open pages
mean many polls. Through Django's handler each one pays for the whole middleware stack, hopping
between the event loop and a thread at every sync middleware (WhiteNoise is sync only), and for
three reads (the session, the user, the run). Here a poll costs one hop to a thread and one
read that joins the run, its owner and the session by their keys; the response is still built
by the view's own code (runs.views.status_response) and passes through the same hooks of the
middleware that add headers or cookies, so it is the response Django would give. The next
polls of the same run by the same session, for a bounded time, are answered on the event loop
from what that read found, with no read and no thread (see SESSIONS and RUNS below).

A Route says what a poll's path is, what credential signs it in (the page's session, the
API's bearer token), how to read the run with that credential beside it and how to answer;
the memory of runs and credentials, the one read shared by concurrent polls and Django's
middleware hooks are this module's, shared by every route.

Only the plain case is answered here: a signed-in owner polling their own run. Anything else
(no session, an expired or tampered one, a changed password, another user's run, no such run,
a disallowed host, a redirect to HTTPS, any error) goes to Django, which answers it as it
always has (a login redirect, a 404, a 400 …). The path also steps aside as a whole when the
settings differ from the ones it was written for (another session engine or authentication
backend, a different middleware list): see `enabled()`.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from time import monotonic
from typing import Any, Protocol, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.db import close_old_connections, connection
from django.db.models import Field
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
    "api.middleware.api_problems": "nothing: errors under /api/ only",
    "whitenoise.middleware.WhiteNoiseMiddleware": "nothing: /static/ only",
    "django.contrib.sessions.middleware.SessionMiddleware": "read here (Route.vary_cookie)",
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


class Route(Protocol):
    """A poll of one run answered here: its path, the credential that signs it in, the one
    read and the answers. A credential is what the request sends (a session key, a token);
    `recall` and `signed_in` say whose it is, from memory and from the read."""

    path: re.Pattern[str]
    # The answer depends on the session cookie (SessionMiddleware adds Vary: Cookie).
    vary_cookie: bool

    def credential(self, request: HttpRequest) -> str | None:
        """What the request signs in with; None: Django answers it."""

    def recall(self, credential: str, now: datetime) -> int | None:
        """The user this process remembers the credential signs in, or None."""

    def read(self, credential: str, run_id: int, now: datetime) -> IngestionRun | None:
        """The run with what judging the credential needs beside it, in one read."""

    def signed_in(self, run: Any, credential: str, now: datetime) -> bool:
        """Whether the credential, as read beside `run`, signs its owner in; remembers it
        when it does (see Memory)."""

    def respond(self, request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
        """The answer after a read (it may end a stale run)."""

    def answer(self, request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
        """The answer from memory, for a run known not to be stale: no read, no write."""


ROUTES: list[Route] = []


def register(route: Route) -> None:
    """Answer this route's polls here too. The plug-in seam for the apps above runs (which
    never imports them): the API registers its run poll when it is ready."""
    if all(type(known) is not type(route) for known in ROUTES):
        ROUTES.append(route)


def route_for(path: str) -> tuple[Route, int] | None:
    for route in ROUTES:
        if match := route.path.fullmatch(path):
            return route, int(match[1])
    return None


class StatusPoll:
    """ASGI middleware: answers the polls of the ROUTES by a signed-in owner; hands
    everything else (and the polls too, when enabled() is false) to `app`."""

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
            and (found := route_for(scope["path"]))
        ):
            route, run_id = found
            response = answer_from_memory(scope, route, run_id, self.hooks)
            if response is None and (reading := self.reading.get(run_id)) is not None:
                # The run is being read for another poll: its answer is remembered soon.
                await reading.wait()
                response = answer_from_memory(scope, route, run_id, self.hooks)
            if response is None:
                response = await self.read(scope, route, run_id, self.hooks)
            if response is not None:
                await self.handler.send_response(response, send)
                return
        await self.app(scope, receive, send)

    async def read(self, scope: dict[str, Any], route: Route, run_id: int, hooks: _Hooks) -> Any:
        # One read of a run at a time per process: when its memory ends, the polls that come
        # meanwhile wait for the one read rather than each making its own.
        done = self.reading.setdefault(run_id, asyncio.Event())
        try:
            return await sync_to_async(answer, thread_sensitive=False)(scope, route, run_id, hooks)
        finally:
            if self.reading.get(run_id) is done:
                del self.reading[run_id]
                done.set()


def answer(scope: dict[str, Any], route: Route, run_id: int, hooks: Any) -> HttpResponseBase | None:
    """The response to a poll, or None: Django answers it."""
    # As Django does when a request starts and finishes: a connection this thread was left
    # with is closed if unusable, and the request's goes back to the pool at the end.
    close_old_connections()
    try:
        return _answer(scope, route, run_id, hooks)
    except Exception:  # Django answers, and reports whatever it was as it always does
        logger.warning("The status poll's fast path failed; Django answers.", exc_info=True)
        return None
    finally:
        close_old_connections()


def _answer(
    scope: dict[str, Any], route: Route, run_id: int, hooks: _Hooks
) -> HttpResponseBase | None:
    checked = _checked_request(scope, route, hooks)
    if checked is None:
        return None
    request, credential = checked
    now = timezone.now()
    run = route.read(credential, run_id, now)
    if run is None or not route.signed_in(run, credential, now):
        return None
    response = _respond(request, run, hooks, route, route.respond)
    _remember_run(run)
    return response


def answer_from_memory(
    scope: dict[str, Any], route: Route, run_id: int, hooks: _Hooks
) -> HttpResponseBase | None:
    """The answer from this process's memory of the credential and the run (see Memory and
    RUNS), on the event loop with no read; None when either is not remembered, does not
    match, or the run would have to be ended as stale: `answer` reads them again."""
    try:
        return _answer_from_memory(scope, route, run_id, hooks)
    except Exception:  # a read attempted on the loop among them: `answer` answers
        logger.warning("The status poll's memory failed; the poll reads.", exc_info=True)
        return None


def _answer_from_memory(
    scope: dict[str, Any], route: Route, run_id: int, hooks: _Hooks
) -> HttpResponseBase | None:
    run_entry = RUNS.get(run_id)
    if run_entry is None:
        return None
    checked = _checked_request(scope, route, hooks)
    if checked is None:
        return None
    request, credential = checked
    now = timezone.now()
    run, run_until = run_entry
    if (
        monotonic() >= run_until
        or route.recall(credential, now) != run.owner_id
        or stale.run_is_stale(run, now)
    ):
        return None
    return _respond(request, run, hooks, route, route.answer)


def _checked_request(
    scope: dict[str, Any], route: Route, hooks: _Hooks
) -> tuple[ASGIRequest, str] | None:
    """The request and its credential, once the request hooks that may refuse or redirect
    it let it through (None: Django answers)."""
    request = ASGIRequest(scope, io.BytesIO())
    if hooks.security.process_request(request) is not None:
        return None  # a redirect to HTTPS
    credential = route.credential(request)
    if not credential:
        return None
    # CommonMiddleware checks the Host header (DisallowedHost) and the user agents.
    if hooks.common.process_request(request) is not None:
        return None
    return request, credential


def _respond(
    request: HttpRequest, run: IngestionRun, hooks: _Hooks, route: Route, view: Any
) -> HttpResponseBase:
    hooks.csrf.process_request(request)
    # Typed as HttpResponse: that is what the hooks' stubs take (any response works).
    response = cast(HttpResponse, view(request, run))
    # Each hook sets its headers on the response it is given and returns it (CommonMiddleware
    # returns another only for a 404).
    csp._apply(request, response)
    hooks.xframe.process_response(request, response)
    hooks.csrf.process_response(request, response)
    hooks.common.process_response(request, response)
    if route.vary_cookie:
        patch_vary_headers(response, ("Cookie",))  # SessionMiddleware: the session was read
    hooks.security.process_response(request, response)
    return response


# What this process remembers of the polls it answered after a read, so that the next polls
# of the same run with the same credential are answered without one (answer_from_memory):
# run id -> (the run as read, until when it is trusted) in RUNS, and each route's credentials
# in a Memory (the page's sessions: SESSIONS). A credential signed out, revoked (a password
# change, a deactivation, a deleted session or token) elsewhere keeps being trusted by a
# process that remembers it for at most SESSION_RECHECK_SECONDS (a logout or a revocation in
# this process forgets it at once); a poll shows the run as it was at most
# RUN_RECHECK_SECONDS ago, less than a poll's interval. Plain dicts, cleared when full; a
# stale entry is only ever skipped. Times `until` are on the monotonic clock.
SESSION_RECHECK_SECONDS = 5.0
RUN_RECHECK_SECONDS = 1.0
REMEMBERED_MAX = 10_000
RUNS: dict[int, tuple[IngestionRun, float]] = {}


@dataclass(frozen=True, slots=True)
class Trusted:
    """A credential as a read found it: whose it is, when it must be read again whatever the
    trust (a session's expiry), until when this process trusts it, and the digest the
    request's credential must match (compared in constant time; "" for none)."""

    user_id: int
    expires: datetime
    until: float
    digest: str


class Memory(dict[str, Trusted]):
    """One route's remembered credentials, by a key the request names (a session key, a
    token's public prefix)."""

    def remember(self, key: str, *, user_id: int, expires: datetime, digest: str = "") -> None:
        if len(self) >= REMEMBERED_MAX:
            self.clear()
        self[key] = Trusted(user_id, expires, monotonic() + SESSION_RECHECK_SECONDS, digest)

    def recall(self, key: str, now: datetime, digest: str = "") -> int | None:
        """Whose the remembered credential is, while it is trusted and not expired."""
        trusted = self.get(key)
        if (
            trusted is None
            or monotonic() >= trusted.until
            or now >= trusted.expires
            or not hmac.compare_digest(trusted.digest, digest)
        ):
            return None
        return trusted.user_id


def _remember_run(run: IngestionRun) -> None:
    if len(RUNS) >= REMEMBERED_MAX:
        RUNS.clear()
    RUNS[run.pk] = (run, monotonic() + RUN_RECHECK_SECONDS)


# --- reading a run with other tables' columns beside it --------------------------------------


def read_run_beside(
    run_id: int, beside: dict[str, tuple[str, Field]], joins: str, params: list[Any]
) -> IngestionRun | None:
    """The run, read with `SELECT r.*, <alias>.<column> AS <name>, … FROM <the run's table> r
    <joins> WHERE r.id = <run_id>` (`params` are the joins'), each column of `beside` (name ->
    the alias of its table and its model field) set on it as its field reads it: a raw query
    converts only the run's own fields."""
    q = connection.ops.quote_name
    columns = "".join(
        f", {alias}.{q(field.column)} AS {name}" for name, (alias, field) in beside.items()
    )
    sql = (
        f"SELECT r.*{columns} FROM {q(IngestionRun._meta.db_table)} r {joins}"
        f" WHERE r.{q('id')} = %s"
    )
    run = next(iter(IngestionRun.objects.raw(sql, [*params, run_id])), None)
    if run is not None:
        for name, (_, field) in beside.items():
            setattr(run, name, from_db(field, getattr(run, name)))
    return run


def from_db(field: Field, value: Any) -> Any:
    """`value` as the ORM would give it for `field`: the backend's converters, then the
    field's (as django.db.models.sql.compiler.SQLCompiler.get_converters picks them), so
    SQLite's text datetimes and integer booleans read as they do everywhere else."""
    column = field.get_col(field.model._meta.db_table)
    converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
    for converter in converters:
        value = converter(value, column, connection)
    return value


# --- the page's poll: `/runs/<id>/status/` with the session ----------------------------------

SESSIONS = Memory()


@receiver(user_logged_out)
def forget_session(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """A logout in this process ends the session's remembered polls at once."""
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        SESSIONS.pop(key, None)


class PagePoll:
    """The run page's status fragment, for a session signed in by Django's ModelBackend."""

    path = PATH
    vary_cookie = True

    def credential(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(settings.SESSION_COOKIE_NAME)

    def recall(self, credential: str, now: datetime) -> int | None:
        return SESSIONS.recall(credential, now)

    def read(self, credential: str, run_id: int, now: datetime) -> IngestionRun | None:
        return read_run(run_id, credential, now)

    def signed_in(self, run: Any, credential: str, now: datetime) -> bool:
        if not _signed_in_owner(run):
            return False
        SESSIONS.remember(credential, user_id=run.owner_id, expires=run.poll_session_expires)
        return True

    def respond(self, request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
        from runs.views import status_response

        return status_response(request, run)

    def answer(self, request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
        from runs.views import status_answer

        return status_answer(request, run)


register(PagePoll())


def read_run(run_id: int, session_key: str, now: datetime) -> IngestionRun | None:
    """The run, with its owner's password hash and active flag and the session's data beside
    it (poll_*), in one read by three primary keys; None when the run or a live session with
    that key is missing."""
    q = connection.ops.quote_name
    joins = (
        f"JOIN {q(User._meta.db_table)} u ON u.{q('id')} = r.{q('owner_id')}"
        f" JOIN {q(Session._meta.db_table)} s"
        f" ON s.{q('session_key')} = %s AND s.{q('expire_date')} > %s"
    )
    return read_run_beside(run_id, _session_beside(), joins, [session_key, now])


@lru_cache(maxsize=1)
def _session_beside() -> dict[str, tuple[str, Field]]:
    session, user = Session._meta, User._meta
    return {
        "poll_session_data": ("s", session.get_field("session_data")),
        "poll_session_expires": ("s", session.get_field("expire_date")),
        "poll_owner_password": ("u", user.get_field("password")),
        "poll_owner_active": ("u", user.get_field("is_active")),
    }


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

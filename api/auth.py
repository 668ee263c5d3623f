"""Who a request to the API is: a bearer token (`Authorization: Bearer intake_…`) or the
browser's signed-in session (with Django's CSRF check on unsafe methods).

A request that names a token is judged by that token alone: a wrong or revoked one is a 401
even when a session cookie rides along, so a script never acts by accident as whoever is
signed in to the browser it runs next to.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from api import tokens
from api.problems import Problem

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="intake"'}


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers=UNAUTHORIZED_HEADERS)


class BearerToken(HttpBearer):
    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("The Authorization header must be `Bearer <token>`.")
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> User:
        user = tokens.token_authenticate(token)
        if user is None:
            raise unauthorized("The API token is unknown or revoked.")
        # The same name the session's user has, so handlers read one attribute.
        request.user = user
        return user


class SessionCookie(APIKeyCookie):
    """Django's session: the pages' sign-in, for the API docs page and the browser."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        # Anonymous: no CSRF verdict, so a request without credentials is a 401, not a 403.
        if not request.user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request):
            raise Problem(
                403,
                "CSRF check failed: a signed-in browser must send the X-CSRFToken header "
                "(scripts use a bearer token instead).",
                kind="csrf-failed",
            )
        return "session"

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return request.user if key else None


def user_of(request: HttpRequest) -> User:
    """The authenticated user of a request that passed the API's auth."""
    user = request.auth  # type: ignore[attr-defined]
    assert isinstance(user, User)
    return user


AUTH = [BearerToken(), SessionCookie()]

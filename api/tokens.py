"""API tokens: made, revoked and checked here, whichever door (the tokens page, the admin,
a request's `Authorization: Bearer …`).

A token reads `intake_<prefix>_<secret>`. The prefix finds its row; the SHA-256 of the whole
token is what is stored and compared (hmac.compare_digest), so a database leak gives nobody
a usable token, and the comparison's time says nothing of how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from api.models import ApiToken

SCHEME = "intake"
PREFIX_BYTES = 6  # 8 characters of URL-safe base64
SECRET_BYTES = 32
# last_used_at is written at most this often per token: a client polling every 2 s must
# not cost a write per request.
LAST_USED_EVERY = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 200


class TokenError(ValueError):
    """A token could not be made; the message says why, for the user."""


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, owner: User, name: str) -> tuple[ApiToken, str]:
    """Make a token for `owner`. Returns the row and the token itself: the only time it is
    known, to show once."""
    name = name.strip()
    if not name:
        raise TokenError("Give the token a name (what will use it).")
    if len(name) > 100:
        raise TokenError("A token's name is at most 100 characters.")
    if any(ord(c) < 32 for c in name):
        # PostgreSQL refuses NUL in text; no control character belongs in a name.
        raise TokenError("A token's name cannot contain control characters.")
    while True:
        prefix = secrets.token_urlsafe(PREFIX_BYTES).replace("_", "x").replace("-", "y")
        if not ApiToken.objects.filter(prefix=prefix).exists():
            break
    raw = f"{SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    token = ApiToken.objects.create(owner=owner, name=name, prefix=prefix, token_hash=_digest(raw))
    return token, raw


def token_revoke(token: ApiToken) -> ApiToken:
    """Revoke a token at once (idempotent: a revoked token keeps its first revocation time)."""
    now = timezone.now()
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        token.revoked_at = now
    else:
        token.refresh_from_db(fields=["revoked_at"])
    return token


def token_authenticate(raw: str) -> User | None:
    """The active user a live token belongs to, or None (unknown, malformed, revoked, or its
    user deactivated)."""
    raw = raw.strip()
    if len(raw) > MAX_TOKEN_LENGTH or not raw.isascii():
        return None
    scheme, _, rest = raw.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != SCHEME or not prefix or not secret:
        return None
    token = (
        ApiToken.objects.select_related("owner")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.token_hash, _digest(raw)):
        return None
    if not token.owner.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.owner


def tokens_for_owner(owner: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=owner).order_by("revoked_at", "-created_at", "-id")

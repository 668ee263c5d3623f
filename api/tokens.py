"""API tokens: made, revoked and checked here, whichever door (the tokens page, the admin,
a request's `Authorization: Bearer …`).

A token reads `intake_<prefix>_<secret>`. The prefix finds its row; the SHA-256 of the whole
token is what is stored and compared (hmac.compare_digest), so a database leak gives nobody
a usable token, and the comparison's time says nothing of how much of a guess was right.

The run poll's fast path (api.run_poll) remembers the tokens it read for a few seconds
(REMEMBERED, a runs.status_poll.Memory keyed by prefix, holding the hash it compares against
in constant time). A token revoked in this process is forgotten at once (token_revoke, and a
deleted token: forget_deleted); one revoked or deleted in another process, or whose user was
deactivated, is still taken by a process that remembers it for at most
runs.status_poll.SESSION_RECHECK_SECONDS — and only by that fast path: every other
endpoint reads the token on each request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from api.models import ApiToken
from runs.status_poll import Memory

SCHEME = "intake"
PREFIX_BYTES = 6  # 8 characters of URL-safe base64
SECRET_BYTES = 32
# last_used_at is written at most this often per token: a client polling every 2 s must
# not cost a write per request.
LAST_USED_EVERY = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 200
REMEMBERED = Memory()


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
    REMEMBERED.pop(token.prefix, None)
    now = timezone.now()
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        token.revoked_at = now
    else:
        token.refresh_from_db(fields=["revoked_at"])
    return token


def token_parse(raw: str) -> tuple[str, str] | None:
    """The prefix that finds a token's row and the digest its row must hold, or None for
    something that is no token of ours."""
    raw = raw.strip()
    if len(raw) > MAX_TOKEN_LENGTH or not raw.isascii():
        return None
    scheme, _, rest = raw.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != SCHEME or not prefix or not secret:
        return None
    return prefix, _digest(raw)


def token_authenticate(raw: str) -> User | None:
    """The active user a live token belongs to, or None (unknown, malformed, revoked, or its
    user deactivated)."""
    parsed = token_parse(raw)
    if parsed is None:
        return None
    prefix, digest = parsed
    token = (
        ApiToken.objects.select_related("owner")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if not token.owner.is_active:
        return None
    token_touch(token.pk, token.last_used_at, timezone.now())
    return token.owner


def token_touch(token_id: int, last_used_at: datetime | None, now: datetime) -> datetime:
    """Record a use of the token, at most once per LAST_USED_EVERY; returns when the next
    use must be recorded."""
    if last_used_at is None or now - last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
        last_used_at = now
    return last_used_at + LAST_USED_EVERY


@receiver(post_delete, sender=ApiToken)
def forget_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    """A token deleted in this process (the admin, its user deleted) is forgotten at once."""
    REMEMBERED.pop(instance.prefix, None)


def tokens_for_owner(owner: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=owner).order_by("revoked_at", "-created_at", "-id")

"""`GET /api/v1/runs/<id>` with a bearer token, answered beside Django's handler: the page's
status poll's fast path (runs.status_poll), given the API's credential and answer.

Many programs poll a run every few seconds. Through Django each poll pays for the middleware
stack and ninja's routing, a read of the token (and its owner) and one of the run. Here the
first poll costs one read joining the run, the token (by its prefix, live, the run owner's)
and the owner; the token and the run are then remembered (runs.status_poll.Memory, RUNS) and
the next polls of the run with that token are answered on the event loop with no read. The
body, the ETag and the 304 are api.runs.run_state_answer's, the headers the middleware's:
the answer Django gives.

Only a live token of the run's owner is answered here. No token, a malformed or unknown one,
a revoked one, a deactivated user, another user's run (a 404), a missing run, a signed-in
session without a token: Django answers, as it always has. How long a token revoked
elsewhere is still taken: api.tokens.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Field
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from api import PREFIX, tokens
from api.models import ApiToken
from runs.models import IngestionRun
from runs.status_poll import read_run_beside

PATH = re.compile(re.escape(PREFIX) + r"runs/([1-9][0-9]{0,17})")


class ApiRunPoll:
    """runs.status_poll.Route for the API's run detail."""

    path = PATH
    vary_cookie = False  # a request with a token never reads the session

    def credential(self, request: HttpRequest) -> str | None:
        # What api.auth.BearerToken takes; anything else is its to refuse. The credential
        # goes on as `<prefix>:<digest>`: the token itself is not kept.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        parsed = tokens.token_parse(token) if scheme.lower() == "bearer" else None
        return None if parsed is None else ":".join(parsed)

    def recall(self, credential: str, now: datetime) -> int | None:
        prefix, _, digest = credential.partition(":")
        return tokens.REMEMBERED.recall(prefix, now, digest)

    def read(self, credential: str, run_id: int, now: datetime) -> IngestionRun | None:
        prefix, _, _ = credential.partition(":")
        q = connection.ops.quote_name
        joins = (
            f"JOIN {q(User._meta.db_table)} u ON u.{q('id')} = r.{q('owner_id')}"
            f" JOIN {q(ApiToken._meta.db_table)} t ON t.{q('prefix')} = %s"
            f" AND t.{q('owner_id')} = r.{q('owner_id')} AND t.{q('revoked_at')} IS NULL"
        )
        return read_run_beside(run_id, _beside(), joins, [prefix])

    def signed_in(self, run: Any, credential: str, now: datetime) -> bool:
        prefix, _, digest = credential.partition(":")
        # The row was found by its prefix alone: the secret is what this compares.
        if not run.poll_owner_active or not hmac.compare_digest(run.poll_token_hash, digest):
            return False
        next_touch = tokens.token_touch(run.poll_token_id, run.poll_token_used, now)
        # Read again once the token's use must be recorded again.
        tokens.REMEMBERED.remember(
            prefix, user_id=run.owner_id, expires=next_touch, digest=run.poll_token_hash
        )
        return True

    # api.runs is imported when a poll is answered, not with this module: every process
    # registers this route at start-up (ApiConfig.ready), and api.runs brings the whole API
    # and the ingestion pipeline with it.
    def respond(self, request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
        from api.runs import run_state_response

        return run_state_response(request, run)

    def answer(self, request: HttpRequest, run: IngestionRun) -> HttpResponseBase:
        from api.runs import run_state_answer

        return run_state_answer(request, run)


@lru_cache(maxsize=1)
def _beside() -> dict[str, tuple[str, Field]]:
    token, user = ApiToken._meta, User._meta
    return {
        "poll_token_id": ("t", token.get_field("id")),
        "poll_token_hash": ("t", token.get_field("token_hash")),
        "poll_token_used": ("t", token.get_field("last_used_at")),
        "poll_owner_active": ("u", user.get_field("is_active")),
    }

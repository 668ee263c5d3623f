"""The API tokens page: make a token (shown once, on the answer to the form), see your tokens
and when each was last used, revoke one."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api import tokens
from api.models import ApiToken


def _owner(request: HttpRequest) -> User:
    # Every view that calls this is behind @login_required.
    return cast(User, request.user)


@never_cache  # the answer to a POST holds a token that is shown once
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    owner = _owner(request)
    context: dict[str, object] = {"name": ""}
    if request.method == "POST":
        name = request.POST.get("name", "")[:200]
        try:
            token, raw = tokens.token_create(owner=owner, name=name)
        except tokens.TokenError as exc:
            context.update(error=str(exc), name=name)
        else:
            context.update(created=token, raw=raw)
    context["tokens"] = list(tokens.tokens_for_owner(owner))
    status = 400 if "error" in context else 200
    return render(request, "api/tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    # Another user's token is a 404: its existence is not theirs to know.
    token = get_object_or_404(ApiToken, pk=token_id, owner=request.user)
    tokens.token_revoke(token)
    messages.success(request, f"Token “{token.name}” is revoked: it no longer works.")
    return redirect("api_pages:tokens")

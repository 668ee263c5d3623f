"""Per-user API tokens. The secret is shown once, when the token is made; only its SHA-256
is kept (api.tokens)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiToken(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The token's public part (`intake_<prefix>_…`): finds the row in one indexed read, and
    # tells the user which token is which without showing the secret.
    prefix = models.CharField(max_length=16, unique=True)
    # SHA-256 (hex) of the whole token; compared in constant time.
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The tokens page: a user's tokens, live ones first.
            models.Index(fields=["owner", "revoked_at"], name="api_apitoken_owner"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="api_apitoken_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (intake_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

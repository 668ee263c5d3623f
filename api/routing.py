"""What every router module of the API builds on (kept apart from api.main, which imports
the routers)."""

from __future__ import annotations

from ninja import Router


def api_router(*, tags: list[str]) -> Router:
    """A router whose responses are written with their camelCase aliases (ninja's default
    writes the Python names)."""
    return Router(tags=tags, by_alias=True)

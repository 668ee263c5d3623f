"""Source adapters, one module per kind, behind ingestion.adapters.base.Adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.utils.module_loading import import_string

from ingestion.adapters import registry
from ingestion.adapters.base import Adapter, Posting, RawRecord, SourceFailed

if TYPE_CHECKING:
    from ingestion.fetching import Fetcher
    from ingestion.models import Source

__all__ = [
    "Adapter",
    "Posting",
    "RawRecord",
    "SourceFailed",
    "adapter_class",
    "get_adapter",
]


def adapter_class(kind: str) -> type[Adapter]:
    """The Adapter subclass of `kind` (its registry entry names it); ValueError for a kind
    that is not registered."""
    return cast(type[Adapter], import_string(registry.entry(kind).adapter))


def get_adapter(source: Source, fetcher: Fetcher) -> Adapter:
    return adapter_class(source.kind)(source, fetcher)

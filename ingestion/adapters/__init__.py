"""Source adapters, one module per kind, behind ingestion.adapters.base.Adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingestion.adapters.base import Adapter, Posting, SourceFailed

if TYPE_CHECKING:
    from ingestion.fetching import Fetcher
    from ingestion.models import Source

__all__ = [
    "Adapter",
    "Posting",
    "SourceFailed",
    "adapter_class",
    "get_adapter",
]


def adapter_class(kind: str) -> type[Adapter]:
    from ingestion.adapters import ashby, files, greenhouse, jsonld, lever, urllist

    classes: dict[str, type[Adapter]] = {
        cls.kind: cls
        for cls in (
            greenhouse.GreenhouseAdapter,
            lever.LeverAdapter,
            ashby.AshbyAdapter,
            jsonld.JsonLdAdapter,
            files.FileAdapter,
            urllist.UrlListAdapter,
        )
    }
    try:
        return classes[kind]
    except KeyError:
        raise ValueError(f"Unknown source kind {kind!r}") from None


def get_adapter(source: Source, fetcher: Fetcher) -> Adapter:
    return adapter_class(source.kind)(source, fetcher)

"""The source kinds, each declared once: one entry per kind, from which the model's choices,
the forms, the URL recognizer and the help texts that name the kinds are derived.

Adding a kind: its adapter module (a subclass of ingestion.adapters.base.Adapter), its tests,
and one entry in KINDS (docs/ingestion.md, "Adding a source kind"). Source.kind's choices and
check constraint come from here, so `manage.py makemigrations ingestion` writes the migration
that lets the database store the new kind.

This module imports nothing of Intake: ingestion.models reads it while it is being defined.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceKindEntry:
    kind: str  # stored in Source.kind (at most 16 characters)
    label: str  # what users see: "Greenhouse board"
    adapter: str  # the dotted path of its Adapter subclass, imported when first used
    name: str  # the product or format, short: "Greenhouse", "JSON-LD"
    identifier: str  # what Source.identifier holds, for help texts: "board token"
    # Its board URLs are recognised (the adapter's `board_in_url`): pasting one picks the kind.
    board: bool = False
    # Sources of this kind read an uploaded file (ingestion.uploads), not the network only.
    reads_upload: bool = False
    # Any other pasted http(s) URL becomes a source of this kind.
    reads_any_page: bool = False


KINDS = (
    SourceKindEntry(
        "greenhouse",
        "Greenhouse board",
        "ingestion.adapters.greenhouse.GreenhouseAdapter",
        name="Greenhouse",
        identifier="board token",
        board=True,
    ),
    SourceKindEntry(
        "lever",
        "Lever postings",
        "ingestion.adapters.lever.LeverAdapter",
        name="Lever",
        identifier="site name",
        board=True,
    ),
    SourceKindEntry(
        "ashby",
        "Ashby job board",
        "ingestion.adapters.ashby.AshbyAdapter",
        name="Ashby",
        identifier="organization name",
        board=True,
    ),
    SourceKindEntry(
        "jsonld",
        "Careers page (JSON-LD)",
        "ingestion.adapters.jsonld.JsonLdAdapter",
        name="JSON-LD",
        identifier="the careers page URL",
        reads_any_page=True,
    ),
    SourceKindEntry(
        "file",
        "Uploaded file",
        "ingestion.adapters.files.FileAdapter",
        name="file",
        identifier="file name",
        reads_upload=True,
    ),
    SourceKindEntry(
        "urls",
        "List of posting URLs",
        "ingestion.adapters.urllist.UrlListAdapter",
        name="URL-list",
        identifier="file name",
        reads_upload=True,
    ),
)

# The kinds in use: KINDS, and any a test registers for a while.
_registered: dict[str, SourceKindEntry] = {entry.kind: entry for entry in KINDS}


def register(entry: SourceKindEntry) -> None:
    """Add a kind beside KINDS (a test's toy kind); ValueError if the kind is taken."""
    if entry.kind in _registered:
        raise ValueError(f"The source kind {entry.kind!r} is registered already.")
    _registered[entry.kind] = entry


def unregister(kind: str) -> None:
    if kind in {entry.kind for entry in KINDS}:
        raise ValueError(f"The source kind {kind!r} is declared in KINDS.")
    _registered.pop(kind, None)


def entries() -> list[SourceKindEntry]:
    return list(_registered.values())


def kinds() -> list[str]:
    return list(_registered)


def entry(kind: str | None) -> SourceKindEntry:
    """The entry of `kind`; ValueError naming the kinds there are for any other."""
    found = _registered.get(kind) if isinstance(kind, str) else None
    if found is None:
        raise ValueError(f"Unknown source kind {kind!r}; choose one of {', '.join(_registered)}.")
    return found


def choices() -> list[tuple[str, str]]:
    """(kind, label) of every kind, for model and form choices."""
    return [(e.kind, e.label) for e in _registered.values()]


def reads_upload(kind: str | None) -> bool:
    found = _registered.get(kind or "")
    return found is not None and found.reads_upload


def page_kind() -> str:
    """The kind a pasted http(s) URL that is no recognised board becomes."""
    return next(e.kind for e in _registered.values() if e.reads_any_page)


def _either(words: list[str], conjunction: str) -> str:
    return (
        f"{', '.join(words[:-1])} {conjunction} {words[-1]}" if len(words) > 1 else "".join(words)
    )


def board_names(conjunction: str = "or") -> str:
    """The products whose board URLs are recognised: "Greenhouse, Lever or Ashby"."""
    return _either([e.name for e in _registered.values() if e.board], conjunction)


def upload_names() -> str:
    """The kinds that read an upload, by name: "file and URL-list"."""
    return _either([e.name for e in _registered.values() if e.reads_upload], "and")


def identifier_help() -> str:
    """What the identifier is for each kind read from the network: "board token
    (Greenhouse), site name (Lever), … or the careers page URL (JSON-LD)"."""
    return _either(
        [f"{e.identifier} ({e.name})" for e in _registered.values() if not e.reads_upload], "or"
    )

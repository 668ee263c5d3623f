"""Recognize a pasted careers URL as a board an adapter reads through its public API.

    recognize_careers_url("https://boards.greenhouse.io/acme/jobs/123")
    -> ("greenhouse", "acme", {})
    recognize_careers_url("https://jobs.eu.lever.co/acme") -> ("lever", "acme", {"region": "eu"})

Each kind whose registry entry says `board` is asked (its adapter's `board_in_url`). Anything
else gives None: the caller then treats an http(s) URL as a careers page read for its JSON-LD.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from ingestion.adapters import adapter_class, registry

# Board tokens, Lever sites and Ashby organization names as the public APIs accept them.
_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")


def valid_token(token: str) -> bool:
    """A token the public APIs could name: safe to put in a URL path as is (".." is not)."""
    return bool(_TOKEN.fullmatch(token)) and token.strip(".") != ""


def recognize_careers_url(url: str) -> tuple[str, str, dict] | None:
    """(kind, identifier, options) for a board URL of a kind the registry marks `board`, else
    None.

    Hosts are matched case-insensitively; the query (unless the adapter reads it) and the
    fragment are ignored; a URL without a scheme ("jobs.lever.co/acme") is accepted."""
    text = url.strip()
    if not text:
        return None
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:  # e.g. an invalid port or bracketed host
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    for entry in registry.entries():
        if not entry.board:
            continue
        found = adapter_class(entry.kind).board_in_url(host, segments, parts.query)
        if found is not None:
            identifier, options = found
            return (entry.kind, identifier, options) if valid_token(identifier) else None
    return None


def clean_board_identifier(kind: str, identifier: str) -> str:
    """The board adapters' clean_identifier: a bare token, or a pasted board URL of the same
    kind reduced to its token. ValueError (with a message for the user) otherwise."""
    name = registry.entry(kind).name
    label = f"{name} {registry.entry(kind).identifier}"
    identifier = identifier.strip()
    if not identifier:
        raise ValueError(f"Enter the {label}.")
    if "/" in identifier or ":" in identifier:
        found = recognize_careers_url(identifier)
        if found is None:
            raise ValueError(f"No {name} board found in {identifier!r}.")
        found_kind, token, _options = found
        if found_kind != kind:
            found_name = registry.entry(found_kind).name
            raise ValueError(
                f"That URL points to {found_name}; choose {found_name} as the source kind instead."
            )
        return token
    if not valid_token(identifier):
        raise ValueError(
            f"{identifier!r} is not a valid {label}: use only letters, digits, '.', '_' and '-'."
        )
    return identifier

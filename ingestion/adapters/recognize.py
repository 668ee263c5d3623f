"""Recognize a pasted careers URL as a board an adapter reads through its public API.

    recognize_careers_url("https://boards.greenhouse.io/acme/jobs/123")
    -> ("greenhouse", "acme", {})
    recognize_careers_url("https://jobs.eu.lever.co/acme") -> ("lever", "acme", {"region": "eu"})

Anything else gives None: the caller then treats an http(s) URL as a careers page read for
its JSON-LD.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

# Board tokens, Lever sites and Ashby organization names as the public APIs accept them.
_TOKEN = re.compile(r"[A-Za-z0-9_.-]+")

# Hosts whose first path segment is the Greenhouse board token.
_GREENHOUSE_BOARD_HOSTS = {"boards.greenhouse.io", "job-boards.greenhouse.io"}
# Hosts of the Greenhouse job board API (api.greenhouse.io is its older name).
_GREENHOUSE_API_HOSTS = {"boards-api.greenhouse.io", "api.greenhouse.io"}
# The embed script's pages name the board in ?for=, not in the path.
_GREENHOUSE_EMBED = {"embed"}


def valid_token(token: str) -> bool:
    """A token the public APIs could name: safe to put in a URL path as is (".." is not)."""
    return bool(_TOKEN.fullmatch(token)) and token.strip(".") != ""


def recognize_careers_url(url: str) -> tuple[str, str, dict] | None:
    """(kind, identifier, options) for a Greenhouse, Lever or Ashby board URL, else None.

    Hosts are matched case-insensitively; the query (except Greenhouse's embed ?for=) and the
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
    found = _recognize(host, segments, parts.query)
    if found is None or not valid_token(found[1]):
        return None
    return found


def _recognize(host: str, segments: list[str], query: str) -> tuple[str, str, dict] | None:
    first = segments[0] if segments else ""
    if host in _GREENHOUSE_BOARD_HOSTS:
        if first.lower() in _GREENHOUSE_EMBED:
            # boards.greenhouse.io/embed/job_board?for=acme (and job_app?for=acme&token=…)
            board = parse_qs(query).get("for", [""])[0]
            return ("greenhouse", board, {}) if board else None
        return ("greenhouse", first, {}) if first else None
    if host in _GREENHOUSE_API_HOSTS:
        # boards-api.greenhouse.io/v1/boards/acme/jobs[?content=true]
        if len(segments) >= 3 and segments[0] == "v1" and segments[1] == "boards":
            return "greenhouse", segments[2], {}
        return None

    if host in ("jobs.lever.co", "jobs.eu.lever.co"):
        # jobs.lever.co/acme[/<posting id>[/apply]]
        options = {"region": "eu"} if host == "jobs.eu.lever.co" else {}
        return ("lever", first, options) if first else None
    if host in ("api.lever.co", "api.eu.lever.co"):
        # api.lever.co/v0/postings/acme[?mode=json]
        if len(segments) >= 3 and segments[0] == "v0" and segments[1] == "postings":
            options = {"region": "eu"} if host == "api.eu.lever.co" else {}
            return "lever", segments[2], options
        return None

    if host == "jobs.ashbyhq.com":
        # jobs.ashbyhq.com/acme[/<job id>[/application]]
        return ("ashby", first, {}) if first else None
    if host == "api.ashbyhq.com":
        # api.ashbyhq.com/posting-api/job-board/acme[?includeCompensation=true]
        if len(segments) >= 3 and segments[0] == "posting-api" and segments[1] == "job-board":
            return "ashby", segments[2], {}
        return None
    return None


def clean_board_identifier(kind: str, label: str, identifier: str) -> str:
    """The adapters' clean_identifier: a bare token, or a pasted board URL of the same kind
    reduced to its token. ValueError (with a message for the user) otherwise."""
    identifier = identifier.strip()
    if not identifier:
        raise ValueError(f"Enter the {label}.")
    if "/" in identifier or ":" in identifier:
        found = recognize_careers_url(identifier)
        if found is None:
            raise ValueError(f"No {_KIND_NAMES[kind]} board found in {identifier!r}.")
        found_kind, token, _options = found
        if found_kind != kind:
            raise ValueError(
                f"That URL points to {_KIND_NAMES[found_kind]}; choose "
                f"{_KIND_NAMES[found_kind]} as the source kind instead."
            )
        return token
    if not valid_token(identifier):
        raise ValueError(
            f"{identifier!r} is not a valid {label}: use only letters, digits, '.', '_' and '-'."
        )
    return identifier


_KIND_NAMES = {"greenhouse": "Greenhouse", "lever": "Lever", "ashby": "Ashby"}

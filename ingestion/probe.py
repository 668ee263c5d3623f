"""The connection test of a pasted careers URL, before anything is saved: the source it would
become is listed as a preview would list it, and the page says "600 postings found" or why it
failed.

The listing goes through the same adapter and Fetcher as a run: the SSRF guard, the size caps
and the owner's daily request quota apply. It is bounded in time (INTAKE_PROBE_SECONDS, across
every request it makes) and in memory (postings are counted, not kept), and writes nothing: no
Source, no RawPayload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User

from ingestion.adapters import SourceFailed, adapter_class
from ingestion.fetching import Fetcher, FetchError
from ingestion.models import Source
from ingestion.quota import take_request_for
from ingestion.services import SourceError, source_detect


@dataclass(frozen=True)
class ProbeResult:
    """What the connection test found: `ok` with `found` postings, or the reason it failed."""

    ok: bool
    text: str
    found: int = 0


def source_probe(*, owner: User, url: str) -> ProbeResult:
    """List the source `url` would become, within INTAKE_PROBE_SECONDS, and count its postings."""
    try:
        detected = source_detect(url)
    except SourceError as exc:
        return ProbeResult(ok=False, text=str(exc))
    kind = detected.kind
    # Never saved: the adapter reads only these fields.
    source = Source(
        owner=owner, kind=kind, identifier=detected.identifier, options=detected.options
    )
    seconds = settings.INTAKE_PROBE_SECONDS
    ends_at = time.monotonic() + seconds
    found = invalid = 0
    try:
        with Fetcher(store=False, on_request=take_request_for(owner.pk), ends_at=ends_at) as f:
            for posting in adapter_class(kind)(source, f).postings():
                found += 1
                invalid += bool(posting.invalid_reasons)
                if time.monotonic() > ends_at:
                    return ProbeResult(
                        ok=True,
                        found=found,
                        text=f"At least {_postings(found)} found (still listing after "
                        f"{seconds:g} s); a preview reads them all.",
                    )
    except (SourceFailed, FetchError) as exc:
        # Both say what failed in the user's words ("Could not fetch …: HTTP 404").
        return ProbeResult(ok=False, text=str(exc))
    if not found:
        return ProbeResult(ok=True, text="Reachable, but no postings found there right now.")
    text = f"{_postings(found)} found"
    if invalid:
        text += f" ({invalid:,} of them unusable: a preview will say why)"
    return ProbeResult(ok=True, found=found, text=text + ".")


def _postings(count: int) -> str:
    return f"{count:,} posting{'s' if count != 1 else ''}"

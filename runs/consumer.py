"""A consumer of Intake's event stream, the one docs/events.md describes and
`manage.py consume_events` runs: a member of a consumer group that reads with XREADGROUP,
skips an event it has handled already (by eventId: the relay delivers at least once) and
acknowledges each with XACK once handled.

On start it first reads what was delivered to it and not acknowledged (it stopped while
handling them), then new events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings

# How long a handled eventId is remembered for the dedupe: longer than the relay can take to
# republish after a crash, and than a stream of INTAKE_EVENTS_MAXLEN entries is kept.
SEEN_TTL_SECONDS = 7 * 24 * 3600


def decode_entry(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """A stream entry's fields as the event's envelope (payload parsed, runId an int or
    None, eventVersion an int)."""
    text = {k.decode(): v.decode() for k, v in fields.items()}
    return {
        "eventId": text["eventId"],
        "eventType": text["eventType"],
        "eventVersion": int(text["eventVersion"]),
        "occurredAt": text["occurredAt"],
        "runId": int(text["runId"]) if text.get("runId") else None,
        "payload": json.loads(text.get("payload") or "{}"),
    }


@dataclass
class EventConsumer:
    client: redis.Redis
    group: str
    name: str
    handle: Callable[[dict[str, Any]], None]
    stream: str = field(default_factory=lambda: settings.INTAKE_EVENTS_STREAM)
    handled: int = 0
    duplicates: int = 0
    backlog: bool = True  # still reading what was delivered to it and not acknowledged

    def ensure_group(self, start: str = "0") -> None:
        """Create the group if it does not exist, reading from `start` ("0": every event the
        stream still holds; "$": only new ones)."""
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _seen_key(self, event_id: str) -> str:
        return f"{self.stream}:seen:{self.group}:{event_id}"

    def poll(self, *, count: int, block_ms: int) -> int:
        """Read up to `count` events (waiting up to `block_ms` for new ones), handle each not
        seen before and acknowledge them all. Returns how many entries it read."""
        start = "0" if self.backlog else ">"
        # Typed loosely: redis-py's stub does not know the RESP2 reply's shape.
        reply: Any = self.client.xreadgroup(
            self.group,
            self.name,
            {self.stream: start},
            count=count,
            block=None if self.backlog else block_ms,
        )
        entries = reply[0][1] if reply else []
        if self.backlog and not entries:
            self.backlog = False
        for entry_id, fields in entries:
            if fields:  # an entry trimmed away while pending comes back without fields
                self._deliver(decode_entry(fields))
            self.client.xack(self.stream, self.group, entry_id)
        return len(entries)

    def _deliver(self, event: dict[str, Any]) -> None:
        key = self._seen_key(event["eventId"])
        if self.client.exists(key):
            self.duplicates += 1
            return
        self.handle(event)
        # Remembered after handling: a crash in between handles the event again (at least
        # once), never loses it.
        self.client.set(key, 1, ex=SEEN_TTL_SECONDS)
        self.handled += 1

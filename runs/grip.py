"""GRIP mode of the run stream: Pushpin (https://pushpin.org/) holds the streams, not us.

With `INTAKE_GRIP_URL` set (Pushpin's control URL, e.g. http://127.0.0.1:5561), a stream
request that came through Pushpin (a valid `Grip-Sig` header, signed with `INTAKE_GRIP_KEY`)
is answered once, at once, with the replay and hold instructions for channel `run-<id>`;
Pushpin keeps the client's connection and writes every event published to that channel.
Each committed run event is published to Pushpin's control API as well as to Redis.

Reliability (Pushpin's "reliable streaming"): Pushpin item ids are the run's event `seq`
(contiguous per run), and each item names its predecessor (`prev-id = seq - 1`). Intake's
event ids are global across runs, so `id - 1` (django-eventstream's assumption) is not the
run's previous event; the seq is. When an item's prev-id is not the last one a held stream
got (an event published out of commit order, or lost), Pushpin does not write it but asks
the `Grip-Link rel=next` URL, with `Grip-Last: run-<id>; last-id=<seq>`, and writes what that
answers: the events after that seq, from the database, in order. Pushpin sends no cookies
with that request, so the link carries its own signed token naming the run and its owner.

The stream ends after the run's terminal event: a terminal event's item is followed by a
`close` item chained to it, and a replay that reaches the terminal event is answered without
a hold, which ends the client's response.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from runs import feed, stream

logger = logging.getLogger(__name__)

TOKEN_SALT = "intake.grip.next"
# What the web process's own streams send first and when idle (runs/stream.py).
PADDING = stream.STREAM_OPEN
KEEP_ALIVE = stream.KEEP_ALIVE.decode()


def enabled() -> bool:
    return bool(settings.INTAKE_GRIP_URL)


def is_proxied(request: HttpRequest) -> bool:
    """True when GRIP mode is on and the request came through Pushpin (its Grip-Sig header
    verifies with INTAKE_GRIP_KEY). Anyone can send the header; only Pushpin can sign it."""
    token = request.META.get("HTTP_GRIP_SIG")
    if not token or not enabled():
        return False
    from gripcontrol import validate_sig

    return bool(validate_sig(token, settings.INTAKE_GRIP_KEY))


def next_link(run_id: int, user_id: int) -> str:
    token = signing.dumps({"r": run_id, "u": user_id}, salt=TOKEN_SALT, compress=True)
    return f"{reverse('runs:grip_next', args=[run_id])}?token={token}"


def hold_response(run_id: int, *, after_id: int, user_id: int, first: bool) -> HttpResponse:
    """The replay after `after_id`, and (unless the run's terminal event is in it) the
    instructions to hold the stream on `run-<id>` from the last event replayed."""
    chunks = [PADDING] if first else []
    last_id, last_seq, ended = after_id, None, False
    while True:
        rows, base_seq = stream._replay(run_id, last_id)
        if last_seq is None:
            last_seq = base_seq
        for event in rows:
            chunks.append(event.frame)
            last_id, last_seq, ended = event.id, event.seq, event.terminal
        if len(rows) < stream.REPLAY_BATCH:
            break
    response = HttpResponse(b"".join(chunks), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    if ended:
        return response  # no hold: Pushpin sends this and ends the response
    channel = feed.channel_for(run_id)
    response["Grip-Hold"] = "stream"
    response["Grip-Channel"] = f"{channel}; prev-id={last_seq}"
    # With a timeout Pushpin also asks the link when the stream has been silent that long:
    # a lost terminal event has no later event whose prev-id would reveal it.
    response["Grip-Link"] = (
        f"<{next_link(run_id, user_id)}>; rel=next; timeout={settings.INTAKE_GRIP_RECHECK_SECONDS}"
    )
    keep_alive = KEEP_ALIVE.replace("\n", "\\n")
    response["Grip-Keep-Alive"] = (
        f"{keep_alive}; format=cstring; timeout={int(stream.KEEPALIVE_SECONDS)}"
    )
    return response


def next_response(request: HttpRequest, run_id: int) -> HttpResponse:
    """Pushpin's recovery request (the Grip-Link): the events after the last one it has."""
    from runs.models import IngestionRun, RunEvent

    if not is_proxied(request):
        return HttpResponse("Only Pushpin asks this.\n", status=403, content_type="text/plain")
    try:
        claim = signing.loads(request.GET.get("token", ""), salt=TOKEN_SALT)
        user_id = int(claim["u"])
        if int(claim["r"]) != run_id:
            raise ValueError
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return HttpResponse("Bad token.\n", status=403, content_type="text/plain")
    last_seq = _last_seq(request.META.get("HTTP_GRIP_LAST", ""), feed.channel_for(run_id))
    with feed.short_lived_connection():
        if not IngestionRun.objects.filter(pk=run_id, owner_id=user_id).exists():
            return HttpResponse("No such run.\n", status=404, content_type="text/plain")
        after = 0
        if last_seq:
            found = RunEvent.objects.filter(run_id=run_id, seq=last_seq).values_list("id")
            after = (found.first() or (0,))[0]
    return hold_response(run_id, after_id=after, user_id=user_id, first=False)


def _last_seq(header: str, channel: str) -> int:
    """The seq in `Grip-Last: run-7; last-id=12` for our channel (0 when absent)."""
    for entry in header.split(","):
        name, _, params = entry.strip().partition(";")
        if name.strip() != channel:
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "last-id" and value.strip().isdigit():
                return int(value.strip())
    return 0


# --- publishing ------------------------------------------------------------------------------


def items_for(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    """Pushpin publish items for one committed event (and the close after a terminal one)."""
    run_id, seq = int(envelope["runId"]), int(envelope["seq"])
    channel = feed.channel_for(run_id)
    frame = stream._sse(f"{channel}:{envelope['id']}", feed.encode(envelope))
    items = [
        {
            "channel": channel,
            "id": str(seq),
            "prev-id": str(seq - 1),
            "formats": {"http-stream": {"content": frame}},
        }
    ]
    if envelope["run"].get("terminal"):
        items.append(
            {
                "channel": channel,
                "id": f"{seq}.end",
                "prev-id": str(seq),
                "formats": {"http-stream": {"action": "close"}},
            }
        )
    return items


class GripPublisher:
    """Posts events to Pushpin's control API: short timeouts, and after a failure it skips
    publishing for PAUSE_SECONDS (held streams catch up through Pushpin's recovery request
    on the next event that arrives), saying so once per outage.

    One keep-alive connection per process, with http.client: a post cost 0.6 ms of CPU and
    3.6 ms in all, against httpx's 2.1 ms and 17 ms (same Pushpin, same machine)."""

    TIMEOUT = 0.5
    PAUSE_SECONDS = 5.0

    def __init__(self) -> None:
        self._conn: http.client.HTTPConnection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._down = False

    def publish(self, envelope: dict[str, Any]) -> bool:
        if not enabled():
            return False
        body = json.dumps({"items": items_for(envelope)}).encode()
        with self._lock:
            if time.monotonic() < self._paused_until:
                return False
            try:
                self._post(body)
            except Exception as exc:
                self._close()
                self._paused_until = time.monotonic() + self.PAUSE_SECONDS
                first, self._down = not self._down, True
                if first:
                    logger.warning(
                        "Could not publish to Pushpin at %s (%s); streams held there catch "
                        "up when it answers again. Trying again every %g s.",
                        settings.INTAKE_GRIP_URL,
                        exc,
                        self.PAUSE_SECONDS,
                    )
                return False
            was_down, self._down = self._down, False
        if was_down:
            logger.warning("Publishing to Pushpin again.")
        return True

    def _post(self, body: bytes) -> None:
        url = urlsplit(settings.INTAKE_GRIP_URL)
        path = url.path.rstrip("/") + "/publish/"
        for attempt in (1, 2):
            if self._conn is None or self._pid != os.getpid():  # a forked work horse
                self._conn = http.client.HTTPConnection(
                    url.hostname or "127.0.0.1", url.port or 80, timeout=self.TIMEOUT
                )
                self._pid = os.getpid()
                fresh = True
            else:
                fresh = False
            try:
                self._conn.request(
                    "POST", path, body=body, headers={"Content-Type": "application/json"}
                )
                response = self._conn.getresponse()
                text = response.read()
            except OSError as exc:
                self._close()
                if fresh or attempt == 2 or isinstance(exc, TimeoutError):
                    raise
                continue  # a kept-alive connection that was dropped: once more, afresh
            if response.status != 200:
                raise RuntimeError(f"{response.status} {text[:200]!r}")
            return

    def _close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


PUBLISHER = GripPublisher()


def publish(envelope: dict[str, Any]) -> None:
    PUBLISHER.publish(envelope)

"""GRIP mode (runs/grip.py): a real Pushpin from Debian in front of a real ASGI server, a real
worker publishing to it. Pushpin holds the streams; the web process answers each once."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from django.test import Client

from runs import grip, services, stale, transitions
from runs.models import IngestionRun, RunEvent
from runs.workloads import DIAGNOSTIC
from tests import pushpin
from tests.support import (
    Proc,
    SSEClient,
    free_port,
    session_cookies,
    start_asgi,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

needs_pushpin = pytest.mark.skipif(
    not pushpin.available(),
    reason="Debian's pushpin is not installed (apt-get install -y pushpin; .ci/run does)",
)


# How long a held stream's silence lasts before Pushpin asks its next link anyway (in the web
# process: INTAKE_GRIP_RECHECK_SECONDS), short here so a lost last event shows quickly.
RECHECK_SECONDS = 2


@pytest.fixture
def proxy(
    procs: list[Proc], tmp_path: Path, redis_client, settings
) -> Iterator[tuple[pushpin.Pushpin, str]]:
    """Pushpin on its own ports in front of uvicorn, both told of each other; this process
    (which publishes a run's first event) and the worker publish to Pushpin too."""
    port = free_port()
    proxy = pushpin.Pushpin(f"127.0.0.1:{port}", directory=tmp_path / "pushpin")
    env = {
        "INTAKE_GRIP_URL": proxy.control_url,
        "INTAKE_GRIP_KEY": pushpin.SIG_KEY,
        "INTAKE_GRIP_RECHECK_SECONDS": str(RECHECK_SECONDS),
    }
    settings.INTAKE_GRIP_URL, settings.INTAKE_GRIP_KEY = env["INTAKE_GRIP_URL"], pushpin.SIG_KEY
    try:
        web, _ = start_asgi(tmp_path, port=port, **env)
        procs.append(web)
        yield proxy, env
    finally:
        proxy.stop()


def published_to(proxy: pushpin.Pushpin, run: IngestionRun) -> int:
    """How many of Pushpin's publishes on the run's channel reached a held stream."""
    log = proxy.output()
    return log.count(f"publish channel=run-{run.pk} receivers=1")


def next_links_answered(proxy: pushpin.Pushpin) -> int:
    """How many of Pushpin's recovery requests (the Grip-Link) it has had the answer to: its
    handler logs one when the answer is in, zurl another as soon as the request goes out."""
    return sum(
        1
        for line in proxy.output().splitlines()
        if "[handler] GET " in line and "/grip-next/" in line
    )


def stored(run: IngestionRun) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run=run).order_by("id"))


@needs_pushpin
def test_a_run_reaches_a_stream_held_by_pushpin_in_order_and_it_ends(user, proxy, procs, tmp_path):
    proxy_, env = proxy
    procs.append(start_worker(tmp_path, **env))
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 12, "delay": 0.15})
    client = SSEClient(
        proxy_.url, f"/runs/{run.pk}/stream/", cookies=session_cookies(user), params={"after": "0"}
    )
    try:
        received = client.messages_until(lambda e: e["run"]["terminal"], timeout=60)
        # Pushpin ends the response after the terminal event (the close item chained to it).
        assert client.closed.wait(10), "the stream stayed open after the run ended"
    finally:
        client.close()

    rows = stored(run)
    assert [e["id"] for e in received] == [e.pk for e in rows]
    assert [e["seq"] for e in received] == list(range(1, len(rows) + 1))
    assert [e["_sse_id"] for e in received] == [f"run-{run.pk}:{e.pk}" for e in rows]
    assert received[-1]["run"]["status"] == "finished"
    # Live through Pushpin's fan-out, not only replayed by the web process.
    assert sum(1 for e in received if e["type"] == "run.progress") >= 2
    assert published_to(proxy_, run) >= 2, proxy_.output()[-3000:]


@needs_pushpin
def test_a_reconnect_with_last_event_id_resumes_through_pushpin(user, proxy, procs, tmp_path):
    proxy_, env = proxy
    procs.append(start_worker(tmp_path, **env))
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 20, "delay": 0.15})
    cookies = session_cookies(user)
    first = SSEClient(proxy_.url, f"/runs/{run.pk}/stream/", cookies=cookies, params={"after": "0"})
    try:
        before = [first.next_message(timeout=30) for _ in range(4)]
    finally:
        first.close()
    run.refresh_from_db()
    assert not run.is_terminal, "the run ended before the reconnect: make it longer"

    second = SSEClient(
        proxy_.url,
        f"/runs/{run.pk}/stream/",
        cookies=cookies,
        headers={"Last-Event-ID": before[-1]["_sse_id"]},
    )
    try:
        after = second.messages_until(lambda e: e["run"]["terminal"], timeout=60)
    finally:
        second.close()
    rows = stored(run)
    assert [e["id"] for e in before + after] == [e.pk for e in rows]  # no gap, no duplicate
    assert any(e["type"] == "run.progress" for e in after)


@needs_pushpin
def test_a_missed_publish_is_recovered_from_the_database_in_order(user, proxy, settings):
    """An event Pushpin never got (published while it was unreachable, or arriving after a
    later one): the next event's prev-id does not match, so Pushpin asks the stream's next
    link and writes both, in order."""
    proxy_, _ = proxy
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    client = SSEClient(proxy_.url, f"/runs/{run.pk}/stream/", cookies=session_cookies(user))
    try:
        opened = client.next_message(timeout=15)
        # Pushpin asks the next link once about a second after it holds a stream (for what
        # was published between the replay and the hold): let that pass first, so what
        # follows is the recovery of a prev-id that does not match. Until its answer is in,
        # Pushpin queues a publish, then drops it if it does not follow that answer (the
        # answer may predate test.missed): wait for the answer, not for the request.
        wait_for(lambda: next_links_answered(proxy_) >= 1, timeout=15, what="the first recovery")
        url = settings.INTAKE_GRIP_URL
        settings.INTAKE_GRIP_URL = ""  # this one reaches the database, not Pushpin
        transitions.publish_event(run, type="test.missed")
        settings.INTAKE_GRIP_URL = url
        transitions.publish_event(run, type="test.next")
        got = [client.next_message(timeout=15), client.next_message(timeout=15)]
        assert client.drain(wait=0.5) == []
    finally:
        client.close()
    assert [e["type"] for e in got] == ["test.missed", "test.next"]
    assert [e["seq"] for e in [opened, *got]] == [1, 2, 3]


@needs_pushpin
def test_a_lost_terminal_event_reaches_the_stream_when_pushpin_asks_again(user, proxy, settings):
    """The run's terminal event never reached Pushpin, and no later event's prev-id reveals
    the gap: after the stream's silence (the Grip-Link's timeout) Pushpin asks the next link
    anyway, writes the event and ends the stream."""
    proxy_, _ = proxy
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    client = SSEClient(proxy_.url, f"/runs/{run.pk}/stream/", cookies=session_cookies(user))
    try:
        client.next_message(timeout=15)
        wait_for(lambda: next_links_answered(proxy_) >= 1, timeout=15, what="the first recovery")
        transitions.publish_event(run, type="test.reached")
        assert client.next_message(timeout=15)["type"] == "test.reached"
        url = settings.INTAKE_GRIP_URL
        settings.INTAKE_GRIP_URL = ""  # the run ends without a word to Pushpin
        services.run_request_abort(run)
        stale.run_end_if_stale(run)
        settings.INTAKE_GRIP_URL = url
        got = client.messages_until(lambda e: e["run"]["terminal"], timeout=RECHECK_SECONDS + 20)
        assert client.closed.wait(10), "the stream stayed open after the run ended"
    finally:
        client.close()
    assert got[-1]["id"] == stored(run)[-1].pk
    assert got[-1]["run"]["status"] == "aborted"


@needs_pushpin
def test_a_fresh_subscriber_of_an_ended_run_gets_its_last_event_and_the_end(user, proxy):
    proxy_, _ = proxy
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    services.run_request_abort(run)
    stale.run_end_if_stale(run)
    run.refresh_from_db()
    client = SSEClient(proxy_.url, f"/runs/{run.pk}/stream/", cookies=session_cookies(user))
    try:
        last = client.next_message(timeout=15)
        assert client.closed.wait(10)
    finally:
        client.close()
    assert last["id"] == stored(run)[-1].pk


# --- without Pushpin: what the GRIP door refuses ----------------------------------------------


def signature(key: str, *, expires_in: float = 60) -> str:
    return jwt.encode({"iss": "pushpin", "exp": int(time.time() + expires_in)}, key)


@pytest.fixture
def grip_on(settings):
    settings.INTAKE_GRIP_URL = "http://127.0.0.1:9"  # publishing fails fast, and is skipped
    settings.INTAKE_GRIP_KEY = "k" * 32


def test_a_stream_request_signed_by_pushpin_gets_hold_instructions(user, grip_on):
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    client = Client()
    client.force_login(user)
    response = client.get(
        f"/runs/{run.pk}/stream/", {"after": "0"}, HTTP_GRIP_SIG=signature("k" * 32)
    )
    assert response.status_code == 200
    assert response["Grip-Hold"] == "stream"
    assert response["Grip-Channel"] == f"run-{run.pk}; prev-id=1"
    assert response["Grip-Link"].startswith(f"</runs/{run.pk}/stream/grip-next/?token=")
    assert f"id: run-{run.pk}:{stored(run)[0].pk}" in response.content.decode()


@pytest.mark.parametrize("sig", ["wrong-key", "expired", "junk"])
def test_a_forged_grip_signature_gets_the_ordinary_stream(user, grip_on, sig):
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    token = {
        "wrong-key": signature("x" * 32),
        "expired": signature("k" * 32, expires_in=-10),
        "junk": "not.a.jwt",
    }[sig]
    client = Client()
    client.force_login(user)
    response = client.get(f"/runs/{run.pk}/stream/", {"after": "0"}, HTTP_GRIP_SIG=token)
    assert response.status_code == 200 and response.streaming
    assert "Grip-Hold" not in response
    response.close()


def test_the_next_link_is_for_pushpin_and_the_runs_owner_only(user, other_user, grip_on):
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    link = grip.next_link(run.pk, user.pk)
    sig = {"HTTP_GRIP_SIG": signature("k" * 32)}
    anonymous = Client()
    assert anonymous.get(link).status_code == 403  # not through Pushpin
    ok = anonymous.get(link, HTTP_GRIP_LAST=f"run-{run.pk}; last-id=0", **sig)
    assert ok.status_code == 200 and ok["Grip-Channel"] == f"run-{run.pk}; prev-id=1"
    assert f"id: run-{run.pk}:" in ok.content.decode()
    # Caught up: nothing more to write, the hold goes on from the same seq.
    done = anonymous.get(link, HTTP_GRIP_LAST=f"run-{run.pk}; last-id=1", **sig)
    assert done.content == b"" and done["Grip-Channel"] == f"run-{run.pk}; prev-id=1"
    other = grip.next_link(run.pk, other_user.pk)
    assert anonymous.get(other, **sig).status_code == 404  # not their run
    forged = link.replace("token=", "token=x")
    assert anonymous.get(forged, **sig).status_code == 403
    another_run = grip.next_link(run.pk + 1, user.pk).split("?")[1]
    elsewhere = f"/runs/{run.pk}/stream/grip-next/?{another_run}"
    assert anonymous.get(elsewhere, **sig).status_code == 403


def test_a_terminal_event_is_followed_by_a_close_chained_to_it(user):
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    envelope = stored(run)[0].envelope()
    [item] = grip.items_for(envelope)
    assert (item["id"], item["prev-id"]) == ("1", "0")
    envelope["run"]["terminal"] = True
    event, close = grip.items_for(envelope)
    assert close["prev-id"] == event["id"] == "1"
    assert close["formats"] == {"http-stream": {"action": "close"}}


class _Control(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Pushpin's control API
    bodies: list[dict] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b"Published\n")

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def test_an_unreachable_pushpin_is_skipped_for_a_while_and_said_once(user, settings, caplog):
    run = services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    envelope = stored(run)[0].envelope()
    port = free_port()
    settings.INTAKE_GRIP_URL = f"http://127.0.0.1:{port}"
    publisher = grip.GripPublisher()
    caplog.set_level(logging.WARNING, logger="runs.grip")
    assert publisher.publish(envelope) is False
    assert publisher.publish(envelope) is False  # paused: not even tried
    assert len([r for r in caplog.records if "Could not publish" in r.message]) == 1

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Control)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        publisher._paused_until = 0  # the pause is over
        assert publisher.publish(envelope) is True
        assert any("again" in r.message for r in caplog.records)
        # A kept-alive connection that was dropped meanwhile: one retry on a fresh one.
        publisher._conn.sock.close()  # type: ignore[union-attr]
        assert publisher.publish(envelope) is True
    finally:
        server.shutdown()
        server.server_close()
    assert [body["items"][0]["channel"] for body in _Control.bodies] == [f"run-{run.pk}"] * 2

"""A run executed by a real RQ worker, followed over SSE from a real ASGI server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from runs import listener as runs_listener
from runs import services, transitions
from runs.models import IngestionRun, RunEvent, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.support import SSEClient, session_cookies, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, **config) -> IngestionRun:  # type: ignore[no-untyped-def]
    return services.run_start(owner=user, kind=DIAGNOSTIC, config=config)


def finished(envelope: dict) -> bool:
    return envelope["run"]["terminal"]


def wait_terminal(run: IngestionRun, timeout: float = 60) -> IngestionRun:
    def done() -> bool:
        run.refresh_from_db()
        return run.is_terminal

    wait_for(done, timeout=timeout, interval=0.1, what=f"run {run.pk} to end")
    return run


def test_a_run_on_a_real_worker_reaches_an_sse_client_in_order(user, worker, asgi):
    run = start(user, items=12, delay=0.15)
    client = SSEClient(
        asgi, f"/runs/{run.pk}/stream/", cookies=session_cookies(user), params={"after": "0"}
    )
    try:
        received = client.messages_until(finished, timeout=60)
    finally:
        client.close()

    stored = list(RunEvent.objects.filter(run=run).order_by("id"))
    assert [e["id"] for e in received] == [e.pk for e in stored]
    assert [e["seq"] for e in received] == list(range(1, len(stored) + 1))
    assert [e["_sse_id"] for e in received] == [f"run-{run.pk}:{e.pk}" for e in stored]
    statuses = [e["run"]["status"] for e in received]
    assert statuses[0] == "pending" and statuses[-1] == "finished"
    order = ["pending", "initializing", "ingesting", "finished"]
    assert [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]] == order
    assert received[-1]["run"]["counts"]["ready"] == 12
    assert received[-1]["run"]["itemsDone"] == 12
    assert any(e["type"] == "run.progress" for e in received)
    # Delivered live, not only replayed: the run was still going when the stream opened.
    assert sum(1 for e in received if e["type"] == "run.progress") >= 2


def test_a_fresh_subscriber_gets_the_latest_state_at_once(user, worker, asgi):
    run = wait_terminal(start(user, items=3, delay=0))
    client = SSEClient(asgi, f"/runs/{run.pk}/stream/", cookies=session_cookies(user))
    try:
        first = client.next_message(timeout=10)
        assert client.drain(wait=0.5) == []
    finally:
        client.close()
    assert first["type"] == "run.finished"
    assert first["run"]["status"] == "finished" and first["run"]["itemsDone"] == 3


@pytest.mark.parametrize("how", ["last-event-id", "last-event-id-bare", "after"])
def test_reconnecting_replays_exactly_the_missed_events(user, worker, asgi, how):
    run = wait_terminal(start(user, items=6, delay=0.05))
    stored = list(RunEvent.objects.filter(run=run).order_by("id"))
    assert len(stored) >= 5
    seen = stored[2]
    headers, params = {}, {}
    if how == "last-event-id":
        headers["Last-Event-ID"] = f"run-{run.pk}:{seen.pk}"
    elif how == "last-event-id-bare":
        headers["Last-Event-ID"] = str(seen.pk)
    else:
        params["after"] = str(seen.pk)
    client = SSEClient(
        asgi,
        f"/runs/{run.pk}/stream/",
        cookies=session_cookies(user),
        headers=headers,
        params=params,
    )
    try:
        replayed = client.drain(wait=1.0)
    finally:
        client.close()
    assert [e["id"] for e in replayed] == [e.pk for e in stored[3:]]


def test_a_client_that_reconnects_mid_run_misses_nothing_and_sees_nothing_twice(user, worker, asgi):
    run = start(user, items=20, delay=0.1)
    cookies = session_cookies(user)
    first = SSEClient(asgi, f"/runs/{run.pk}/stream/", cookies=cookies, params={"after": "0"})
    try:
        before = [first.next_message(timeout=20) for _ in range(4)]
    finally:
        first.close()
    time.sleep(0.8)  # events go by while disconnected
    second = SSEClient(
        asgi,
        f"/runs/{run.pk}/stream/",
        cookies=cookies,
        headers={"Last-Event-ID": before[-1]["_sse_id"]},
    )
    try:
        after = second.messages_until(finished, timeout=60)
    finally:
        second.close()
    ids = [e["id"] for e in before + after]
    assert ids == list(RunEvent.objects.filter(run=run).order_by("id").values_list("id", flat=True))


def refused(base: str, run: IngestionRun, **kwargs) -> SSEClient:  # type: ignore[no-untyped-def]
    """Open the run's stream expecting a refusal; returns the closed client."""
    client = SSEClient(base, f"/runs/{run.pk}/stream/", **kwargs)
    try:
        client.closed.wait(10)
    finally:
        client.close()
    return client


def test_another_user_cannot_read_the_channel(user, other_user, asgi, redis_client):
    run = start(user, items=1)
    client = refused(asgi, run, cookies=session_cookies(other_user), params={"after": "0"})
    assert client.status_code == 404
    assert "data:" not in client.body and "run.created" not in client.body


def test_an_anonymous_client_cannot_read_the_channel(user, asgi, redis_client):
    run = start(user, items=1)
    client = refused(asgi, run, params={"after": "0"})
    assert client.status_code == 403
    assert "data:" not in client.body


def test_junk_resume_ids_are_refused(user, asgi, redis_client):
    run = start(user, items=1)
    client = refused(asgi, run, cookies=session_cookies(user), params={"after": "x1"})
    assert client.status_code == 400


def test_abort_stops_a_running_run_within_two_seconds_and_keeps_its_work(user, worker, asgi):
    run = start(user, items=400, delay=0.05)
    wait_for(
        lambda: IngestionRun.objects.filter(pk=run.pk, items_done__gte=5).exists(),
        timeout=30,
        what="some items done",
    )
    services.run_request_abort(IngestionRun.objects.get(pk=run.pk))
    requested = time.monotonic()
    wait_terminal(run, timeout=10)
    assert time.monotonic() - requested < 2.5
    assert run.status == RunStatus.ABORTED
    assert 5 <= run.items_done < 400
    assert run.jobs_ready == run.items_done  # every finished item was kept, none half-done
    assert run.events.filter(type="run.aborted").exists()


def test_abort_of_a_pending_run_means_the_worker_never_runs_it(user, procs, tmp_path, redis_client):
    from tests.support import start_worker

    run = start(user, items=50, delay=0.05)
    services.run_request_abort(run)
    procs.append(start_worker(tmp_path))
    time.sleep(3)
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED
    assert run.started_at is None and run.items_done == 0


def test_an_internal_error_ends_the_run_as_error_with_the_reason(user, worker):
    run = wait_terminal(start(user, items=5, delay=0, crash_at=3))
    assert run.status == RunStatus.ERROR
    assert "diagnostic crash at item 3" in run.error_message
    assert run.items_done == 2


def test_events_published_out_of_order_or_twice_reach_a_stream_once_in_order(
    user, asgi, redis_client
):
    """Two processes publishing for one run can land on pub/sub out of commit order, and a
    publish can repeat: the stream still writes each event once, in the run's order."""
    from unittest import mock

    from runs import feed

    run = start(user, items=1)
    created = run.events.get()
    client = SSEClient(
        asgi,
        f"/runs/{run.pk}/stream/",
        cookies=session_cookies(user),
        params={"after": str(created.pk)},
    )
    try:
        client.opened.wait(10)
        time.sleep(0.5)  # the stream is subscribed
        with mock.patch("runs.feed.broadcast") as held:
            transitions.publish_event(run, type="test.first")
            transitions.publish_event(run, type="test.second")
        first, second = (call.args[0] for call in held.call_args_list)
        feed.broadcast(second)  # overtakes the first
        feed.broadcast(first)  # arrives late
        feed.broadcast(second)  # and once more
        transitions.publish_event(run, type="test.third")
        received = client.messages_until(lambda e: e["type"] == "test.third", timeout=15)
        received += client.drain(wait=1.0)
    finally:
        client.close()
    assert [e["type"] for e in received] == ["test.first", "test.second", "test.third"]
    assert [e["seq"] for e in received] == [2, 3, 4]


def test_the_stream_ends_after_the_terminal_event_and_a_resume_after_it_gets_204(
    user, worker, asgi
):
    run = start(user, items=5, delay=0.1)
    cookies = session_cookies(user)
    client = SSEClient(asgi, f"/runs/{run.pk}/stream/", cookies=cookies, params={"after": "0"})
    try:
        last = client.messages_until(finished, timeout=30)[-1]
        assert client.closed.wait(5), "the stream should end after the terminal event"
    finally:
        client.close()
    again = SSEClient(
        asgi, f"/runs/{run.pk}/stream/", cookies=cookies, headers={"Last-Event-ID": last["_sse_id"]}
    )
    try:
        again.closed.wait(10)
    finally:
        again.close()
    assert again.status_code == 204


def test_the_first_subscription_makes_open_streams_re_read_what_they_missed(
    monkeypatch, redis_client
):
    """The process's first stream starts the Redis listener; until its subscription is live,
    an event published after the stream's replay reaches no one, so once subscribed the
    listener wakes every stream to re-read the database (not only after an outage)."""
    woken: list[bool] = []
    monkeypatch.setattr(runs_listener, "wake_all_streams", lambda: woken.append(True))

    async def subscribe_once() -> None:
        listener = runs_listener.ResilientRedisListener()
        task = asyncio.create_task(listener.start())
        for _ in range(200):
            if listener.connected:
                break
            await asyncio.sleep(0.05)
        assert listener.connected
        await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(subscribe_once())
    assert woken[:1] == [True]


def test_a_burst_of_item_events_reaches_a_batching_stream_in_a_few_batch_events(
    user, asgi, redis_client
):
    """A run emitting hundreds of per-item events a second: a `?batch=1` stream gets them
    coalesced into a few `batch` events that together carry every one, once, in order; a
    plain stream gets each as its own `message`; and once the burst is over a lone event
    goes out at once as a `message`."""
    from django.db import transaction

    run = start(user, items=1)
    after = str(run.events.get().pk)
    cookies = session_cookies(user)
    batching = SSEClient(
        asgi, f"/runs/{run.pk}/stream/", cookies=cookies, params={"after": after, "batch": "1"}
    )
    plain = SSEClient(asgi, f"/runs/{run.pk}/stream/", cookies=cookies, params={"after": after})
    burst = 300

    def frames(client: SSEClient, until_seq: int) -> list[tuple[str, list[dict]]]:
        got: list[tuple[str, list[dict]]] = []
        deadline = time.monotonic() + 30
        while not got or got[-1][1][-1]["seq"] < until_seq:
            event = client.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event["event"] in ("message", "batch"):
                data = json.loads(event["data"])
                got.append((event["event"], data if isinstance(data, list) else [data]))
        return got

    try:
        for client in (batching, plain):
            client.opened.wait(10)
        time.sleep(0.5)  # both streams are subscribed
        with transaction.atomic():  # broadcast back to back once it commits
            for number in range(burst):
                transitions.publish_event(run, type="item.invalid", payload={"item": number})
        got = frames(batching, until_seq=1 + burst)
        each = frames(plain, until_seq=1 + burst)
        time.sleep(1.0)  # the burst's allowance refills
        transitions.publish_event(run, type="test.lone")
        lone = frames(batching, until_seq=2 + burst)
    finally:
        batching.close()
        plain.close()

    carried = [e["payload"]["item"] for _, envelopes in got for e in envelopes]
    assert carried == list(range(burst))
    assert [e["seq"] for _, envelopes in got for e in envelopes] == list(range(2, 2 + burst))
    assert len(got) <= burst / 10, f"{len(got)} stream events for {burst} item events"
    assert any(kind == "batch" for kind, _ in got)
    assert all(kind == "message" for kind, _ in each)
    assert [e["payload"]["item"] for _, (e,) in each] == list(range(burst))
    assert [(kind, [e["type"] for e in envelopes]) for kind, envelopes in lone] == [
        ("message", ["test.lone"])
    ]

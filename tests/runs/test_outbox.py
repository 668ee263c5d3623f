"""The transactional outbox and its relay (runs.outbox, runs.relay) on the real database and
the real Redis: what commits is published, what rolls back is not, a relay that dies between
XADD and marking publishes again and the consumer (manage.py consume_events) dedupes."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
import redis
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from runs import relay, services, transitions
from runs.models import OutboxEvent, RunStatus
from runs.outbox import outbox_append

pytestmark = pytest.mark.django_db(transaction=True)

STREAM = "intake:events"


def entries(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(STREAM)
    ]


def relay_all(client: redis.Redis) -> int:
    publisher = relay.Relay(client)
    try:
        while publisher.relay_once():
            pass
    finally:
        publisher.release_lock()
    return publisher.published


def consume(*args: str) -> tuple[list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("consume_events", "--block", "100", *args, stdout=out, stderr=err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_a_committed_run_start_publishes_run_requested_in_the_envelope(redis_client, user):
    run = services.run_start(owner=user, kind="preview")
    assert relay_all(redis_client) == 1
    (entry,) = entries(redis_client)
    assert set(entry) == {"eventId", "eventType", "eventVersion", "occurredAt", "runId", "payload"}
    assert entry["eventType"] == "run.requested" and entry["runId"] == str(run.pk)
    assert entry["eventVersion"] == "1"
    uuid.UUID(entry["eventId"])
    payload = json.loads(entry["payload"])
    assert payload["ownerId"] == user.pk
    assert payload["run"]["id"] == run.pk and payload["run"]["status"] == "pending"
    assert OutboxEvent.objects.get().published_at is not None
    assert relay_all(redis_client) == 0  # published once


def test_a_rolled_back_transition_publishes_nothing(redis_client, user):
    run = services.run_start(owner=user, kind="preview")
    with pytest.raises(RuntimeError), transaction.atomic():
        transitions.run_transition(run, to=RunStatus.INITIALIZING)
        assert OutboxEvent.objects.count() == 2  # written with the change …
        raise RuntimeError("the change fails after the transition")
    relay_all(redis_client)
    # … and gone with it.
    assert [e["eventType"] for e in entries(redis_client)] == ["run.requested"]


def test_each_lifecycle_transition_has_its_event(redis_client, user, other_user):
    run = services.run_start(owner=user, kind="preview")
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    transitions.run_transition(run, to=RunStatus.INGESTING)  # a phase: no event of its own
    transitions.run_transition(run, to=RunStatus.FINISHED)
    failed = services.run_start(owner=user, kind="preview")
    services.run_fail(failed, message="boom")
    aborted = services.run_start(owner=other_user, kind="preview")
    services.run_request_abort(aborted)
    relay_all(redis_client)
    seen = [(e["eventType"], int(e["runId"])) for e in entries(redis_client)]
    assert seen == [
        ("run.requested", run.pk),
        ("run.started", run.pk),
        ("run.finished", run.pk),
        ("run.requested", failed.pk),
        ("run.failed", failed.pk),
        ("run.requested", aborted.pk),
        ("run.aborted", aborted.pk),
    ]
    finished = json.loads(entries(redis_client)[2]["payload"])["run"]
    assert finished["status"] == "finished" and finished["finishedAt"]
    assert json.loads(entries(redis_client)[4]["payload"])["run"]["errorMessage"] == "boom"


def test_a_relay_that_dies_after_xadd_publishes_again_and_the_consumer_dedupes(redis_client, user):
    services.run_start(owner=user, kind="preview")
    # The relay's round up to its crash: appended to the stream, not yet marked.
    relay.publish(redis_client, relay.pending_events(10))
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1
    # The restarted relay publishes the unmarked row again.
    assert relay_all(redis_client) == 1
    first, again = entries(redis_client)
    assert first == again

    events, summary = consume("--group", "g1", "--drain")
    assert [e["eventType"] for e in events] == ["run.requested"]
    assert "Handled 1 events (1 duplicates skipped)" in summary
    # Both entries were acknowledged: nothing is left pending for the group.
    assert redis_client.xpending(STREAM, "g1")["pending"] == 0


def test_a_second_relay_waits_while_the_first_holds_the_lock(redis_client, user):
    first, second = relay.Relay(redis_client), relay.Relay(redis_client)
    services.run_start(owner=user, kind="preview")
    assert first.hold_lock()
    assert second.relay_once() == 0  # nothing published twice, nothing out of order
    assert entries(redis_client) == []
    assert first.relay_once() == 1
    first.release_lock()
    outbox_append(event_type="test.later", payload={})
    assert second.relay_once() == 1
    second.release_lock()
    assert [e["eventType"] for e in entries(redis_client)] == ["run.requested", "test.later"]


def test_events_are_published_in_the_order_they_were_written(redis_client, settings):
    settings.INTAKE_OUTBOX_BATCH = 7  # several rounds
    for number in range(30):
        outbox_append(event_type="test.numbered", payload={"n": number})
    assert relay_all(redis_client) == 30
    assert [json.loads(e["payload"])["n"] for e in entries(redis_client)] == list(range(30))


def test_the_stream_is_trimmed_to_about_its_retention(redis_client, settings):
    settings.INTAKE_EVENTS_MAXLEN = 100
    OutboxEvent.objects.bulk_create(
        OutboxEvent(event_type="test.bulk", payload={"n": n}) for n in range(1000)
    )
    relay_all(redis_client)
    # MAXLEN ~ trims whole stream nodes: about the retention, never the whole history.
    assert 100 <= redis_client.xlen(STREAM) < 400


def test_old_published_rows_are_pruned_and_the_rest_kept(settings):
    settings.INTAKE_OUTBOX_KEEP_HOURS = 24
    now = timezone.now()
    old = outbox_append(event_type="test.old", payload={})
    recent = outbox_append(event_type="test.recent", payload={})
    unpublished = outbox_append(event_type="test.unpublished", payload={})
    OutboxEvent.objects.filter(pk=old.pk).update(published_at=now - timedelta(hours=25))
    OutboxEvent.objects.filter(pk=recent.pk).update(published_at=now - timedelta(hours=1))
    assert relay.prune_published(now=now) == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, unpublished.pk}


def test_the_consumer_gets_back_what_it_had_not_acknowledged(redis_client, user):
    services.run_start(owner=user, kind="preview")
    relay_all(redis_client)
    consume("--group", "g2", "--drain", "--from", "first", "--count", "1", "--consumer", "c")
    # Delivered to c but c died before XACK: simulated by reading without acknowledging.
    outbox_append(event_type="test.unacked", payload={})
    relay_all(redis_client)
    redis_client.xreadgroup("g2", "c", {STREAM: ">"}, count=1)
    assert redis_client.xpending(STREAM, "g2")["pending"] == 1
    events, _ = consume("--group", "g2", "--drain", "--consumer", "c")
    assert [e["eventType"] for e in events] == ["test.unacked"]
    assert redis_client.xpending(STREAM, "g2")["pending"] == 0


def test_consume_events_refuses_a_count_below_one():
    with pytest.raises(CommandError, match="positive number"):
        call_command("consume_events", "--count", "0")


def test_the_outbox_lag_is_the_age_of_the_oldest_unpublished_event(redis_client):
    assert relay.outbox_lag_seconds() == 0.0
    event = outbox_append(event_type="test.waiting", payload={})
    OutboxEvent.objects.filter(pk=event.pk).update(
        occurred_at=timezone.now() - timedelta(seconds=90)
    )
    assert 90 <= relay.outbox_lag_seconds() < 120
    relay_all(redis_client)
    assert relay.outbox_lag_seconds() == 0.0


def test_a_relay_without_redis_waits_and_keeps_the_events(user):
    from tests.support import free_port

    services.run_start(owner=user, kind="preview")
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=1)
    assert relay.Relay(unreachable)._round() == relay.RETRY_SECONDS  # no crash
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1


def test_relay_events_once_publishes_what_is_pending_and_exits(redis_client, user):
    services.run_start(owner=user, kind="preview")
    out = io.StringIO()
    call_command("relay_events", "--once", stdout=out)
    assert "Published 1 events." in out.getvalue()
    assert [e["eventType"] for e in entries(redis_client)] == ["run.requested"]

"""The run pages and endpoints, through Django's test client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from runs import services, transitions
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def signed_in(client, user):  # type: ignore[no-untyped-def]
    client.force_login(user)
    return client


def start(user, **config) -> IngestionRun:  # type: ignore[no-untyped-def]
    return services.run_start(owner=user, kind=DIAGNOSTIC, config=config or {"items": 3})


@pytest.mark.parametrize("name", ["runs:list"])
def test_pages_need_a_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_run_pages_of_another_user_are_not_found(client, user, other_user, redis_client):
    run = start(user)
    client.force_login(other_user)
    for name in ("runs:detail", "runs:status", "runs:events"):
        assert client.get(reverse(name, args=[run.pk])).status_code == 404
    assert client.post(reverse("runs:abort", args=[run.pk])).status_code == 404
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.PENDING
    assert f"#{run.pk}" not in client.get(reverse("runs:list")).content.decode()


def test_the_history_lists_the_users_runs_with_status_and_filters(signed_in, user, redis_client):
    first = start(user)
    services.run_request_abort(first)
    second = start(user)
    page = signed_in.get(reverse("runs:list")).content.decode()
    assert f"#{first.pk}" in page and f"#{second.pk}" in page
    assert "Aborted" in page and "Pending" in page
    filtered = signed_in.get(reverse("runs:list"), {"status": "aborted"}, HTTP_HX_REQUEST="true")
    body = filtered.content.decode()
    assert body.lstrip().startswith('<div id="run-table">')
    assert f"#{first.pk}" in body and f"#{second.pk}<" not in body


def test_starting_a_diagnostic_run_from_the_page_redirects_to_it(signed_in, user, redis_client):
    response = signed_in.post(reverse("runs:start_diagnostic"), {"items": "5", "delay": "0"})
    run = IngestionRun.objects.get(owner=user)
    assert response.status_code == 302 and response["Location"] == reverse(
        "runs:detail", args=[run.pk]
    )
    assert run.config == {"items": 5, "delay": 0.0}


def test_starting_while_a_run_is_active_shows_the_active_run(signed_in, user, redis_client):
    active = start(user)
    response = signed_in.post(reverse("runs:start_diagnostic"), {"items": "5"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("runs:detail", args=[active.pk])
    assert f"Run #{active.pk}" in response.content.decode()
    assert IngestionRun.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize(
    "items, delay, message",
    [
        ("x", "0", "Items must be a whole number from 1 to 100,000"),
        ("0", "0", "Items must be"),
        ("200000", "0", "Items must be"),
        ("٣", "0", "Items must be"),
        ("5", "99", "Seconds per item must be a number from 0 to 10"),
        ("5", "nan", "Seconds per item must be"),
        ("5", "1e400", "Seconds per item must be"),
    ],
)
def test_bad_diagnostic_input_gets_a_clear_message_and_starts_nothing(
    signed_in, user, items, delay, message
):
    response = signed_in.post(
        reverse("runs:start_diagnostic"), {"items": items, "delay": delay}, follow=True
    )
    assert message in response.content.decode()
    assert not IngestionRun.objects.filter(owner=user).exists()


def test_the_run_page_shows_status_counts_feed_and_the_stream_to_resume(
    signed_in, user, redis_client
):
    run = start(user)
    last = run.events.order_by("-id").first()
    page = signed_in.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert f"Run #{run.pk}" in page
    assert 'data-role="badge">Queued<' in page
    stream = reverse("runs:stream", args=[run.pk])
    assert f'sse-connect="{stream}?batch=1&amp;after={last.pk}"' in page
    assert "run.created" in page
    assert 'aria-live="polite"' in page


def test_a_terminal_run_page_does_not_open_a_stream(signed_in, user, redis_client):
    run = start(user)
    services.run_request_abort(run)
    page = signed_in.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "sse-connect" not in page
    assert 'data-role="badge">Aborted<' in page


def test_abort_from_htmx_returns_the_status_fragment(signed_in, user, redis_client):
    run = start(user)
    response = signed_in.post(reverse("runs:abort", args=[run.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="run-status"')
    assert "Aborted" in body
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ABORTED


def test_abort_from_a_plain_form_redirects_back_with_a_message(signed_in, user, redis_client):
    run = start(user)
    response = signed_in.post(reverse("runs:abort", args=[run.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("runs:detail", args=[run.pk])
    assert "Abort requested" in response.content.decode()


def test_abort_of_a_finished_run_says_why_it_cannot(signed_in, user, redis_client):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    transitions.run_transition(run, to=RunStatus.FINISHED)
    response = signed_in.post(reverse("runs:abort", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert "already finished" in response.content.decode()


def test_abort_needs_a_post(signed_in, user, redis_client):
    run = start(user)
    assert signed_in.get(reverse("runs:abort", args=[run.pk])).status_code == 405


def test_events_endpoint_returns_events_after_an_id_with_the_run_state(
    signed_in, user, redis_client
):
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    ids = list(run.events.order_by("id").values_list("id", flat=True))
    body = signed_in.get(reverse("runs:events", args=[run.pk]), {"after": ids[0]}).json()
    assert [e["id"] for e in body["events"]] == ids[1:]
    assert body["run"]["status"] == "initializing"
    assert body["more"] is False
    assert signed_in.get(reverse("runs:events", args=[run.pk]), {"after": "x"}).status_code == 400


def test_admin_lists_runs_and_aborts_through_the_service(
    client, django_user_model, user, redis_client
):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")
    client.force_login(admin)
    run = start(user)
    assert client.get(reverse("admin:runs_ingestionrun_changelist")).status_code == 200
    assert client.get(reverse("admin:runs_ingestionrun_change", args=[run.pk])).status_code == 200
    assert client.get(reverse("admin:runs_runevent_changelist")).status_code == 200
    response = client.post(
        reverse("admin:runs_ingestionrun_changelist"),
        {"action": "abort_runs", "_selected_action": [run.pk]},
        follow=True,
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED
    assert run.events.filter(type="run.aborted").exists()


def test_admin_cannot_edit_lifecycle_fields(client, django_user_model, user, redis_client):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")
    client.force_login(admin)
    run = start(user)
    client.post(reverse("admin:runs_ingestionrun_change", args=[run.pk]), {"status": "finished"})
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.PENDING


def stale_running(user, settings) -> IngestionRun:  # type: ignore[no-untyped-def]
    """A running run whose worker went silent past INTAKE_RUN_STALE_AFTER."""
    settings.INTAKE_RUN_STALE_AFTER = 30
    run = start(user)
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    IngestionRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=60)
    )
    return run


@pytest.mark.parametrize("name", ["runs:events", "runs:status", "runs:detail"])
def test_polling_a_run_whose_worker_stopped_responding_ends_it(
    signed_in, user, redis_client, settings, name
):
    run = stale_running(user, settings)
    response = signed_in.get(reverse(name, args=[run.pk]))
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert "worker stopped responding" in run.error_message
    if name == "runs:events":
        assert response.json()["run"]["status"] == "error"
        assert response.json()["events"][-1]["type"] == "run.error"


def test_the_run_list_does_not_offer_a_dead_run_as_the_active_one(
    signed_in, user, redis_client, settings
):
    run = stale_running(user, settings)
    response = signed_in.get(reverse("runs:list"))
    assert response.context["active_run"] is None
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ERROR


def test_abort_of_a_run_whose_worker_stopped_responding_ends_it_at_once(
    signed_in, user, redis_client, settings
):
    run = stale_running(user, settings)
    response = signed_in.post(reverse("runs:abort", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert 'data-role="badge">Aborted<' in response.content.decode()
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ABORTED


def test_starting_from_the_page_replaces_a_dead_run(signed_in, user, redis_client, settings):
    dead = stale_running(user, settings)
    response = signed_in.post(reverse("runs:start_diagnostic"), {"items": 2, "delay": 0})
    new = IngestionRun.objects.exclude(pk=dead.pk).get()
    assert response["Location"] == reverse("runs:detail", args=[new.pk])
    assert IngestionRun.objects.get(pk=dead.pk).status == RunStatus.ERROR


@pytest.mark.parametrize(
    "query, note",
    [
        ("status=%00", "status must be one of"),
        ("kind=%00", "kind must be one of"),
        ("status=bogus", "status must be one of"),
        ("page=%C2%B2", "page must be a whole number"),
        ("page=9223372036854775808", "page must be a whole number from 1 to 1,000,000"),
    ],
)
def test_a_bad_history_filter_is_ignored_with_a_note(signed_in, user, redis_client, query, note):
    run = start(user)
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = signed_in.get(f"{reverse('runs:list')}?{query}", **headers)
        assert response.status_code == 200
        body = response.content.decode()
        assert f"#{run.pk}" in body and f"Ignored: {note}" in body


@pytest.mark.parametrize("after", ["²", "¹²", "٣", "9223372036854775808", "-1", "1.0", "a\x00"])
def test_the_events_endpoint_refuses_a_bad_after_with_400(signed_in, user, redis_client, after):
    run = start(user)
    response = signed_in.get(reverse("runs:events", args=[run.pk]), {"after": after})
    assert response.status_code == 400
    assert "after must be a whole number" in response.json()["detail"]


@pytest.mark.parametrize(
    "where, value",
    [
        ("after", "²"),
        ("after", "9223372036854775808"),
        ("lastEventId", "¹"),
        ("Last-Event-ID", "²"),
        ("Last-Event-ID", "run-999999:5"),
    ],
)
def test_the_stream_refuses_a_bad_resume_id_with_400(signed_in, user, redis_client, where, value):
    run = start(user)
    url = reverse("runs:stream", args=[run.pk])
    if where == "Last-Event-ID":
        response = signed_in.get(url, headers={"Last-Event-ID": value})
    else:
        response = signed_in.get(url, {where: value})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert f"{where} must be an event id" in response.content.decode()


def test_the_stream_resumes_from_its_own_channel_id(signed_in, user, redis_client):
    run = start(user)
    services.run_request_abort(run)  # terminal: with nothing after the id, a 204
    last = run.events.order_by("-id").first()
    url = reverse("runs:stream", args=[run.pk])
    response = signed_in.get(url, headers={"Last-Event-ID": f"run-{run.pk}:{last.pk}"})
    assert response.status_code == 204


def test_the_historys_filters_and_page_live_in_the_url(signed_in, user, redis_client):
    # 26 finished diagnostic runs: two pages of 25.
    runs = IngestionRun.objects.bulk_create(
        IngestionRun(owner=user, kind=DIAGNOSTIC, status=RunStatus.FINISHED, config={})
        for _ in range(26)
    )
    page = signed_in.get(reverse("runs:list"), {"status": "finished", "page": "2"})
    body = page.content.decode()
    # A reload or a shared link shows the same filter, selected, and the same page.
    assert '<option value="finished" selected>' in body
    assert "Page 2 of 2" in body
    assert f"#{min(r.pk for r in runs)}<" in body
    assert 'href="?page=1&status=finished&kind="' in body
    # The filter form pushes its state into the address bar.
    assert 'hx-push-url="true"' in body and 'method="get"' in body


def test_a_status_poll_with_the_current_etag_answers_not_modified(signed_in, user, redis_client):
    run = start(user)
    url = reverse("runs:status", args=[run.pk])
    first = signed_in.get(url, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and first["ETag"]
    assert "no-cache" in first["Cache-Control"]

    again = signed_in.get(url, HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == first["ETag"]

    # Once the run moves on, the same validator gets the new fragment.
    transitions.run_transition(run, to=RunStatus.INITIALIZING)
    moved = signed_in.get(url, HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=first["ETag"])
    assert moved.status_code == 200 and moved["ETag"] != first["ETag"]
    assert "badge-initializing" in moved.content.decode()


def test_a_status_poll_of_another_users_run_is_not_found_whatever_the_etag(
    client, other_user, user, redis_client
):
    run = start(user)
    client.force_login(other_user)
    url = reverse("runs:status", args=[run.pk])
    assert client.get(url, HTTP_IF_NONE_MATCH="*").status_code == 404

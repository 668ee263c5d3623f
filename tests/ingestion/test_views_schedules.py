"""Schedules on the pages: Configure schedules the ticked sources and lists the schedules
(enable/disable, delete), warns about paused sources; the runs history and the run's step
say which schedule started a run; the admin registers schedules and validates like the
services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ingestion import schedules, services
from ingestion.models import Schedule, Source
from runs.models import IngestionRun, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_source(user) -> Source:  # type: ignore[no-untyped-def]
    return Source.objects.create(owner=user, company="Beta", kind="lever", identifier="beta")


def test_configure_schedules_the_ticked_sources_every_n_hours(
    signed_in, user, greenhouse_source, other_source
):
    response = signed_in.post(
        reverse("ingestion:schedule_create"),
        {
            "selection": "1",
            "source": [str(other_source.pk)],
            "schedule_name": "Beta board",
            "timing": "hours",
            "every_hours": "4",
            "cron": "ignored",
            "schedule_kind": "ingest",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/configure/"
    schedule = Schedule.objects.get(owner=user)
    assert schedule.name == "Beta board" and schedule.interval_hours == 4 and schedule.cron == ""
    assert list(schedule.sources.all()) == [other_source]
    page = signed_in.get(reverse("ingestion:configure")).content.decode()
    assert "Scheduled Beta board; its first run is at" in page
    assert 'id="schedule-list"' in page and "every 4 hours" in page
    assert "Schedule these sources" in page


def test_configure_schedules_by_cron_and_answers_htmx_with_the_list(
    signed_in, user, greenhouse_source
):
    response = signed_in.post(
        reverse("ingestion:schedule_create"),
        {"source": [str(greenhouse_source.pk)], "timing": "cron", "cron": "30 6 * * 1-5"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<section id="schedule-list"')
    assert "cron 30 6 * * 1-5" in body and "msg-success" in body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"timing": "hours", "every_hours": "0"}, "from 1 to 720, not 0"),
        ({"timing": "cron", "cron": "99 * * * *"}, "is not a valid cron expression"),
        ({"timing": "cron", "cron": ""}, "Choose either every N hours or a cron expression"),
        ({"timing": "weekly"}, "timing must be one of cron, hours"),
        ({"timing": "hours", "every_hours": "6", "schedule_kind": "purge"}, "schedule_kind"),
        ({"timing": "hours", "every_hours": "6", "cron": "x\x00"}, None),
    ],
)
def test_a_bad_schedule_is_refused_with_its_reason_not_a_500(
    signed_in, user, greenhouse_source, data, message
):
    response = signed_in.post(
        reverse("ingestion:schedule_create"),
        {"source": [str(greenhouse_source.pk)], **data},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 200
    if message:
        assert "Not scheduled: " in body and message in body and "msg-error" in body
    assert Schedule.objects.count() == (1 if message is None else 0)


def test_nothing_ticked_is_refused(signed_in, user, greenhouse_source):
    response = signed_in.post(
        reverse("ingestion:schedule_create"), {"timing": "hours", "every_hours": "6"}, follow=True
    )
    assert "Not scheduled: Select at least one source." in response.content.decode()


def test_a_schedule_is_disabled_enabled_and_deleted_from_configure(
    signed_in, user, greenhouse_source
):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=6, name="Six"
    )
    toggle = reverse("ingestion:schedule_toggle", args=[schedule.pk])
    body = signed_in.post(toggle, HTTP_HX_REQUEST="true").content.decode()
    schedule.refresh_from_db()
    assert not schedule.enabled and "Disabled schedule Six." in body
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(days=2))
    assert signed_in.post(toggle).status_code == 302
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_run_at > timezone.now()
    delete = reverse("ingestion:schedule_delete", args=[schedule.pk])
    body = signed_in.post(delete, HTTP_HX_REQUEST="true").content.decode()
    assert "Deleted schedule Six" in body and "No schedules yet" in body
    assert not Schedule.objects.exists()


def test_another_users_schedule_is_a_404(user, other_user, greenhouse_source):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=6
    )
    client = Client()
    client.force_login(other_user)
    for name in ("ingestion:schedule_toggle", "ingestion:schedule_delete"):
        assert client.post(reverse(name, args=[schedule.pk])).status_code == 404
    assert Schedule.objects.filter(pk=schedule.pk, enabled=True).exists()
    assert client.get(reverse("ingestion:schedule_toggle", args=[schedule.pk])).status_code == 405


def test_a_paused_source_is_warned_about_on_configure(signed_in, user, greenhouse_source):
    Source.objects.filter(pk=greenhouse_source.pk).update(
        enabled=False,
        failures_in_row=3,
        paused_at=timezone.now(),
        paused_reason="its listing failed 3 times in a row (last: HTTP 404).",
    )
    page = signed_in.get(reverse("ingestion:configure")).content.decode()
    assert 'data-role="paused-warning"' in page
    assert "1 source paused</strong> after failing 3 times in a row" in page
    assert "Paused: its listing failed 3 times in a row (last: HTTP 404)." in page
    # Enabled again by its user: no warning.
    signed_in.post(reverse("ingestion:source_toggle", args=[greenhouse_source.pk]))
    page = signed_in.get(reverse("ingestion:configure")).content.decode()
    assert "paused-warning" not in page and "Paused:" not in page


def test_the_runs_history_and_the_step_say_which_schedule_started_a_run(
    signed_in, user, greenhouse_source
):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=6, name="Morning"
    )
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now())
    schedules.schedules_run_due()
    schedule.refresh_from_db()
    run = schedule.last_run
    history = signed_in.get(reverse("runs:list")).content.decode()
    assert "by schedule “Morning”" in history
    step = signed_in.get(reverse("ingestion:ingest", args=[run.pk])).content.decode()
    assert "Started by schedule “Morning”." in step
    configure = signed_in.get(reverse("ingestion:configure")).content.decode()
    assert f"Ingest #{run.pk}" in configure


def test_the_admin_lists_creates_and_validates_schedules(admin_client, user, greenhouse_source):
    schedule = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], cron="0 5 * * *", name="Five"
    )
    assert admin_client.get(reverse("admin:ingestion_schedule_changelist")).status_code == 200
    change = reverse("admin:ingestion_schedule_change", args=[schedule.pk])
    assert "Five" in admin_client.get(change).content.decode()
    add = reverse("admin:ingestion_schedule_add")
    assert admin_client.get(add).status_code == 200
    base = {"owner": user.pk, "sources": str(greenhouse_source.pk), "options": '{"kind": "ingest"}'}
    refused = admin_client.post(add, {**base, "name": "Bad", "cron": "0 0 31 2 *"})
    assert refused.status_code == 200 and "never comes round" in refused.content.decode()
    created = admin_client.post(add, {**base, "name": "Hourly", "interval_hours": "1"})
    assert created.status_code == 302
    hourly = Schedule.objects.get(name="Hourly")
    assert hourly.interval_hours == 1 and hourly.next_run_at > timezone.now()
    response = admin_client.post(
        change,
        {
            "sources": str(greenhouse_source.pk),
            "name": "Five",
            "interval_hours": "2",
            "cron": "",
            "options": '{"kind": "preview"}',
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule.refresh_from_db()
    assert (
        schedule.interval_hours == 2
        and schedule.cron == ""
        and schedule.options == {"kind": "preview"}
    )


def test_the_admin_shows_a_paused_source_with_its_reason(admin_client, greenhouse_source):
    Source.objects.filter(pk=greenhouse_source.pk).update(
        enabled=False, failures_in_row=3, paused_at=timezone.now(), paused_reason="it failed."
    )
    listing = admin_client.get(reverse("admin:ingestion_source_changelist") + "?paused=yes")
    assert listing.status_code == 200 and "Acme" in listing.content.decode()
    page = admin_client.get(reverse("admin:ingestion_source_change", args=[greenhouse_source.pk]))
    assert "Paused " in page.content.decode() and "it failed." in page.content.decode()


def test_a_scheduled_run_leaves_the_configure_ticks_as_the_user_left_them(
    signed_in, user, greenhouse_source, other_source
):
    services.preview_start(owner=user, source_ids=[greenhouse_source.pk, other_source.pk])
    IngestionRun.objects.update(status=RunStatus.FINISHED)
    schedule = schedules.schedule_create(owner=user, source_ids=[other_source.pk], interval_hours=6)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now())
    schedules.schedules_run_due()
    sources = signed_in.get(reverse("ingestion:configure")).context["sources"]
    assert {s.pk for s in sources if s.selected} == {greenhouse_source.pk, other_source.pk}


def test_the_admin_refuses_a_name_the_owner_already_uses(admin_client, user, greenhouse_source):
    schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=1, name="Taken"
    )
    other = schedules.schedule_create(
        owner=user, source_ids=[greenhouse_source.pk], interval_hours=1, name="Free"
    )
    response = admin_client.post(
        reverse("admin:ingestion_schedule_change", args=[other.pk]),
        {
            "sources": str(greenhouse_source.pk),
            "name": "Taken",
            "interval_hours": "1",
            "cron": "",
            "options": "{}",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "already has a schedule named &#x27;Taken&#x27;" in response.content.decode()

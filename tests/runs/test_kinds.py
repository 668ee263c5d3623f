"""Run kinds come from the registry the apps declare them in (runs.executors): a new kind is
one `register` line in its own app, with no migration in runs/."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import pytest
from django.urls import reverse

from runs import executors, services, tasks
from runs.context import RunContext
from runs.exceptions import RunError
from runs.models import IngestionRun, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def toy_kind() -> Iterator[str]:
    """A kind declared the way an app declares one, for this test only."""
    with mock.patch.dict(executors._KINDS):

        @executors.register("toy", label="Toy run")
        def toy(ctx: RunContext) -> None:
            ctx.set_stage(RunStatus.INGESTING)
            ctx.progress(done=1, total=1, increments={"ready": 1})

        yield "toy"


def test_a_declared_kind_starts_executes_and_shows_its_label(user, redis_client, toy_kind):
    run = services.run_start(owner=user, kind=toy_kind)
    assert tasks.execute_run(run.pk) == "finished"
    run.refresh_from_db()
    assert (run.status, run.jobs_ready) == (RunStatus.FINISHED, 1)
    assert run.get_kind_display() == "Toy run"


def test_an_unknown_kind_is_refused_naming_the_declared_ones(user, toy_kind):
    with pytest.raises(RunError, match=r"Unknown run kind 'bogus'; expected one of .*\btoy\b"):
        services.run_start(owner=user, kind="bogus")


def test_the_runs_page_filters_by_every_declared_kind(client, user, redis_client, toy_kind):
    services.run_start(owner=user, kind=toy_kind)
    client.force_login(user)
    html = client.get(reverse("runs:list")).content.decode()
    assert '<option value="toy">Toy run</option>' in html
    assert '<option value="diagnostic">Diagnostic</option>' in html
    assert "<td>Toy run</td>" in html
    filtered = client.get(reverse("runs:list"), {"kind": "toy"}).content.decode()
    assert '<option value="toy" selected>Toy run</option>' in filtered


def test_the_admin_filters_and_shows_runs_by_declared_kind(admin_client, user, toy_kind):
    IngestionRun.objects.create(owner=user, kind=toy_kind, status=RunStatus.FINISHED)
    html = admin_client.get(reverse("admin:runs_ingestionrun_changelist")).content.decode()
    assert "?kind__exact=toy" in html and ">Toy run</a>" in html  # the list filter
    assert '<td class="field-kind">Toy run</td>' in html


def test_a_run_of_a_kind_no_app_declares_any_more_ends_saying_so(client, user, redis_client):
    run = IngestionRun.objects.create(owner=user, kind="retired")
    assert tasks.execute_run(run.pk) == "error"
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert "Runs of kind 'retired' cannot be executed by this version of Intake." in (
        run.error_message
    )
    client.force_login(user)
    assert "<td>retired</td>" in client.get(reverse("runs:list")).content.decode()
    assert client.get(reverse("runs:detail", args=[run.pk])).status_code == 200


def test_a_kind_longer_than_the_kind_column_is_refused():
    with pytest.raises(ValueError, match="1 to 16 characters"):
        executors.register("x" * 17, label="Too long")


def test_the_kinds_users_start_are_listed_before_the_diagnostic_run() -> None:
    listed = executors.kinds()
    assert listed.index("preview") < listed.index("ingest") < listed.index("diagnostic")
    assert [value for value, _ in executors.kind_choices()] == listed


def test_a_kinds_upkeep_runs_once_its_run_is_finished_and_cannot_fail_it(user, redis_client):
    seen: list[tuple[str, bool]] = []

    def upkeep(run: IngestionRun) -> None:
        stored = IngestionRun.objects.get(pk=run.pk)
        seen.append((stored.status, stored.finished_at is not None))
        raise RuntimeError("upkeep broke")

    with mock.patch.dict(executors._KINDS):

        @executors.register("upkept", label="Upkept", after_finish=upkeep)
        def upkept(ctx: RunContext) -> None:
            ctx.progress(done=1, total=1)

        run = services.run_start(owner=user, kind="upkept")
        assert tasks.execute_run(run.pk) == "finished"
    assert seen == [(RunStatus.FINISHED, True)]
    run.refresh_from_db()
    assert (run.status, run.error_message) == (RunStatus.FINISHED, "")

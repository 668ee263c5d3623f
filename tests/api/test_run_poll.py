"""The API's run poll (`GET /api/v1/runs/<id>` with a bearer token) answered by the status
poll's fast path (api.run_poll over runs.status_poll): Django's answer, without Django's
handler and, once remembered, without a read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from api import tokens
from api.models import ApiToken
from runs import services, status_poll
from runs.models import IngestionRun, RunStatus
from tests.runs.test_status_poll import Recorder, get, start
from tests.runs.test_status_poll import clock as page_poll_clock  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def django_app() -> Recorder:
    return Recorder()


@pytest.fixture(autouse=True)
def clock(request: Any) -> Any:
    """The page poll's clock and empty memories, and an empty token memory too."""
    tokens.REMEMBERED.clear()
    yield request.getfixturevalue("page_poll_clock")
    tokens.REMEMBERED.clear()


@pytest.fixture
def fast(django_app: Recorder) -> status_poll.StatusPoll:
    return status_poll.StatusPoll(django_app, django_app.django)


@pytest.fixture
def queries(monkeypatch) -> list[str]:
    """The SQL every connection runs, on whichever thread (the fast path reads on its own)."""
    from django.db.backends.utils import CursorWrapper

    ran: list[str] = []
    execute = CursorWrapper._execute_with_wrappers

    def counted(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        ran.append(sql)
        return execute(self, sql, *args, **kwargs)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", counted)
    return ran


def path_of(run: IngestionRun) -> str:
    return f"/api/v1/runs/{run.pk}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def past_the_token_bound(clock: Any) -> None:
    clock.advance(status_poll.SESSION_RECHECK_SECONDS + 0.01)


def past_the_run_bound(clock: Any) -> None:
    clock.advance(status_poll.RUN_RECHECK_SECONDS + 0.01)


def assert_unauthorized(answer: dict[str, Any]) -> None:
    assert answer["status"] == 401
    assert answer["headers"]["content-type"].startswith("application/problem+json")
    assert answer["headers"]["www-authenticate"].startswith("Bearer")


def test_the_api_registers_its_run_poll_with_the_fast_path():
    assert status_poll.route_for("/api/v1/runs/7") is not None
    assert status_poll.route_for("/api/v1/runs/7/items") is None


def test_the_owners_poll_is_answered_beside_django_with_djangos_response(
    fast, django_app, user, token, redis_client
):
    run = start(user)
    answered = get(fast, path_of(run), {}, **bearer(token))
    assert django_app.calls == 0
    through_django = get(django_app.django, path_of(run), {}, **bearer(token))

    assert answered["status"] == through_django["status"] == 200
    assert answered["headers"] == through_django["headers"]
    assert answered["body"] == through_django["body"]
    assert answered["cookies"] == through_django["cookies"] == []
    # The body is the run's snapshot (camelCase) with its links, as the endpoint documents.
    body = Client().get(path_of(run), headers={"Authorization": f"Bearer {token}"}).json()
    assert body["id"] == run.pk and body["status"] == "pending"
    assert body["links"]["statusUrl"] == path_of(run)
    assert set(run.snapshot()) <= set(body)


def test_a_revalidating_poll_of_an_unchanged_run_is_not_modified_without_a_read(
    fast, django_app, user, token, redis_client, clock, queries
):
    run = start(user)
    first = get(fast, path_of(run), {}, **bearer(token))
    etag = first["headers"]["etag"]

    queries.clear()
    again = get(fast, path_of(run), {}, **bearer(token), if_none_match=etag)
    fresh = get(fast, path_of(run), {}, **bearer(token))
    assert queries == []
    assert again["status"] == 304 and again["body"] == b""
    assert again["headers"]["etag"] == etag
    through_django = get(django_app.django, path_of(run), {}, **bearer(token), if_none_match=etag)
    assert again["headers"] == through_django["headers"]
    assert fresh["status"] == 200 and fresh["body"] == first["body"]

    services.run_transition(run, to=RunStatus.INITIALIZING)
    past_the_run_bound(clock)
    moved = get(fast, path_of(run), {}, **bearer(token), if_none_match=etag)
    assert moved["status"] == 200 and moved["headers"]["etag"] != etag
    assert b'"status":"initializing"' in moved["body"]
    assert django_app.calls == 0


def test_the_fast_path_reads_once_where_django_reads_the_token_and_the_run(
    fast, django_app, user, token, redis_client, queries
):
    run = start(user)
    # A token used a moment ago: its use is not recorded again (no write on either path).
    ApiToken.objects.filter(owner=user).update(last_used_at=timezone.now())
    queries.clear()
    assert get(django_app.django, path_of(run), {}, **bearer(token))["status"] == 200
    assert len(queries) == 2, queries  # the token with its owner, then the run
    queries.clear()
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    assert len(queries) == 1, queries  # the run, the token and the owner, joined
    queries.clear()
    for _ in range(3):
        assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    assert queries == []
    assert django_app.calls == 0


def test_the_fast_path_records_the_tokens_use_as_django_does(
    fast, django_app, user, token, redis_client, clock
):
    run = start(user)
    assert ApiToken.objects.get(owner=user).last_used_at is None
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    used = ApiToken.objects.get(owner=user).last_used_at
    assert used is not None

    # Remembered, but read again (and its use recorded) once a use is due.
    later = used + tokens.LAST_USED_EVERY + timedelta(seconds=1)
    assert tokens.REMEMBERED.recall(tokens.token_parse(token)[0], later, "") is None
    ApiToken.objects.filter(owner=user).update(last_used_at=used - tokens.LAST_USED_EVERY)
    tokens.REMEMBERED.clear()
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    assert ApiToken.objects.get(owner=user).last_used_at > used - tokens.LAST_USED_EVERY


def test_a_token_revoked_in_this_process_is_refused_at_once(
    fast, django_app, user, token, redis_client
):
    run = start(user)
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    tokens.token_revoke(ApiToken.objects.get(owner=user))
    assert_unauthorized(get(fast, path_of(run), {}, **bearer(token)))
    assert django_app.calls == 1


def test_a_token_revoked_on_the_tokens_page_is_refused_at_once(
    fast, django_app, user, token, redis_client
):
    run = start(user)
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    browser = Client()
    browser.force_login(user)
    row = ApiToken.objects.get(owner=user)
    browser.post(reverse("api_pages:token_revoke", args=[row.pk]))
    assert_unauthorized(get(fast, path_of(run), {}, **bearer(token)))


def test_a_token_deleted_in_this_process_is_refused_at_once(
    fast, django_app, user, token, redis_client
):
    run = start(user)
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    ApiToken.objects.get(owner=user).delete()
    assert_unauthorized(get(fast, path_of(run), {}, **bearer(token)))


def test_a_token_revoked_elsewhere_is_refused_within_the_bound(
    fast, django_app, user, token, redis_client, clock
):
    run = start(user)
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    # Another process revokes it: this one trusts what it remembers for a bounded time.
    ApiToken.objects.filter(owner=user).update(revoked_at=timezone.now())
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    past_the_token_bound(clock)
    assert_unauthorized(get(fast, path_of(run), {}, **bearer(token)))


def test_a_deactivated_user_is_refused_within_the_bound(
    fast, django_app, user, token, redis_client, clock
):
    run = start(user)
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    user.is_active = False
    user.save()
    past_the_token_bound(clock)
    assert_unauthorized(get(fast, path_of(run), {}, **bearer(token)))


def test_another_users_run_is_not_found_even_when_both_are_remembered(
    fast, django_app, user, other_user, token, redis_client
):
    mine, theirs = start(user), start(other_user)
    their_token = tokens.token_create(owner=other_user, name="theirs")[1]
    assert get(fast, path_of(mine), {}, **bearer(token))["status"] == 200
    assert get(fast, path_of(theirs), {}, **bearer(their_token))["status"] == 200
    answered = get(fast, path_of(theirs), {}, **bearer(token), if_none_match="*")
    assert answered["status"] == 404
    assert answered["headers"]["content-type"].startswith("application/problem+json")
    assert django_app.calls == 1


def test_a_wrong_secret_with_a_known_prefix_is_refused(fast, django_app, user, token, redis_client):
    run = start(user)
    assert get(fast, path_of(run), {}, **bearer(token))["status"] == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_unauthorized(get(fast, path_of(run), {}, **bearer(forged)))
    assert django_app.calls == 1


@pytest.mark.parametrize(
    "authorization", ["", "Basic abc", "Bearer ", "Bearer intake_nope", "Bearer intake_x_y"]
)
def test_a_poll_without_a_live_token_is_djangos_to_answer(
    fast, django_app, user, redis_client, authorization
):
    run = start(user)
    headers = {"authorization": authorization} if authorization else {}
    answered = get(fast, path_of(run), {}, **headers)
    assert_unauthorized(answered)
    assert django_app.calls == 1


def test_a_missing_run_is_not_found(fast, django_app, user, token, redis_client):
    answered = get(fast, "/api/v1/runs/987654", {}, **bearer(token))
    assert answered["status"] == 404
    assert django_app.calls == 1


def test_the_poll_ends_a_run_no_worker_picked_up(fast, django_app, user, token, redis_client):
    from django.conf import settings

    run = start(user)
    limit = settings.INTAKE_RUN_PENDING_TIMEOUT
    IngestionRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(seconds=limit + 60)
    )
    answered = get(fast, path_of(run), {}, **bearer(token))
    assert answered["status"] == 200 and django_app.calls == 0
    assert IngestionRun.objects.get(pk=run.pk).status == RunStatus.ERROR
    assert b'"status":"error"' in answered["body"]

"""The schedules endpoints: create, list, read, change, delete a schedule through the same
service functions as Configure; clear problems for bad timings and sources; another user's
schedule is a 404."""

from __future__ import annotations

import json

import pytest

from ingestion.models import Schedule, Source
from tests.api.conftest import ApiClient, assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def sources(user) -> list[Source]:  # type: ignore[no-untyped-def]
    return [
        Source.objects.create(
            owner=user, company=f"Acme {n}", kind="greenhouse", identifier=f"a{n}"
        )
        for n in range(2)
    ]


def test_a_schedule_is_created_listed_changed_and_deleted(api: ApiClient, sources):
    ids = [s.pk for s in sources]
    created = api.post("/schedules", json={"sourceIds": ids, "intervalHours": 6, "name": "Boards"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert created["Location"] == f"/api/v1/schedules/{body['id']}"
    assert body["sourceIds"] == sorted(ids) and body["intervalHours"] == 6
    assert body["cron"] is None and body["enabled"] is True and body["nextRunAt"]
    assert body["options"] == {"kind": "ingest"}

    listed = api.get("/schedules").json()
    assert [s["id"] for s in listed["items"]] == [body["id"]] and listed["nextCursor"] is None

    changed = api.request(
        "PATCH",
        f"/schedules/{body['id']}",
        data=json.dumps({"cron": "0 6 * * 1-5", "intervalHours": None, "enabled": False}),
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["cron"] == "0 6 * * 1-5" and changed.json()["intervalHours"] is None
    assert changed.json()["enabled"] is False

    assert api.request("DELETE", f"/schedules/{body['id']}").status_code == 204
    assert not Schedule.objects.exists()
    assert_problem(api.get(f"/schedules/{body['id']}"), 404)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"intervalHours": 6, "cron": "0 * * * *"}, "not both"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 0 31 2 *"}, ""),
        ({"intervalHours": 0}, "hour"),
        ({}, ""),
    ],
)
def test_bad_timings_are_422_problems(api: ApiClient, sources, payload, words):
    response = api.post("/schedules", json={"sourceIds": [sources[0].pk], **payload})
    problem = assert_problem(response, 422)
    assert words.lower() in problem["detail"].lower()
    assert not Schedule.objects.exists()


def test_another_users_sources_and_schedules_are_not_yours(api: ApiClient, other_user, sources):
    theirs = Source.objects.create(owner=other_user, company="B", kind="lever", identifier="b")
    assert_problem(api.post("/schedules", json={"sourceIds": [theirs.pk], "intervalHours": 3}), 422)
    other = ApiClient(None)
    from api import tokens

    other.token = tokens.token_create(owner=other_user, name="o")[1]
    mine = api.post("/schedules", json={"sourceIds": [sources[0].pk], "intervalHours": 3}).json()
    assert_problem(other.get(f"/schedules/{mine['id']}"), 404)
    assert_problem(other.request("DELETE", f"/schedules/{mine['id']}"), 404)
    assert other.get("/schedules").json()["items"] == []


def test_the_schedules_need_a_token(anonymous: ApiClient):
    assert_problem(anonymous.get("/schedules"), 401)

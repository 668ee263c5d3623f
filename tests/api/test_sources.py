"""The sources endpoints: CRUD with the Configure page's validation and messages, detect, and
file and URL list uploads with the page's limits and per-row errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api import tokens
from api.models import ApiToken
from ingestion.models import Source, UploadPart
from ingestion.services import source_create
from tests.api.conftest import ApiClient, assert_problem
from tests.fixture_server import FixtureServer
from tests.ingestion.boards import greenhouse_job, mount_greenhouse
from tests.ingestion.conftest import boards  # noqa: F401 (a fixture)
from tests.ingestion.pages import posting_row, postings_csv, url_list_csv

pytestmark = pytest.mark.django_db

GREENHOUSE = "https://boards.greenhouse.io/acme"


def _create(api: ApiClient, **body: Any) -> Any:
    return api.post("/sources", json=body)


def _upload(api: ApiClient, path: str = "/sources/upload", **fields: Any) -> Any:
    return api.post(path, data=fields)


def _csv(name: str = "jobs.csv", data: bytes | None = None) -> SimpleUploadedFile:
    if data is None:
        data = postings_csv([posting_row(1), posting_row(2, title=""), posting_row(3)])
    return SimpleUploadedFile(name, data, content_type="text/csv")


# --- create, read, list --------------------------------------------------------------------


def test_a_board_url_becomes_a_source(api: ApiClient, user: Any) -> None:
    response = _create(api, url=GREENHOUSE, includeKeywords=["python", "go"])
    assert response.status_code == 201, response.content
    body = response.json()
    source = Source.objects.get(owner=user)
    assert response["Location"] == f"/api/v1/sources/{source.pk}"
    assert (body["kind"], body["identifier"], body["company"]) == ("greenhouse", "acme", "Acme")
    assert body["kindLabel"] == "Greenhouse board"
    assert body["includeKeywords"] == ["python", "go"] == source.include_keywords
    assert body["enabled"] is True and body["jobCount"] == 0 and body["upload"] is None
    assert api.get(f"/sources/{source.pk}").json() == body


def test_a_kind_and_identifier_make_a_source_with_a_lever_region(api: ApiClient) -> None:
    response = _create(api, kind="lever", identifier="acme", company="Acme", leverRegion="eu")
    assert response.status_code == 201, response.content
    assert response.json()["options"] == {"region": "eu"}


def test_the_page_s_validation_and_words_come_back_as_field_errors(api: ApiClient) -> None:
    body = assert_problem(_create(api), 422, "validation-failed")
    assert body["errors"] == [
        {
            "in": "body",
            "pointer": "#/kind",
            "detail": "Choose a kind, or paste a careers URL above.",
        }
    ]
    body = assert_problem(_create(api, kind="nope", identifier="x"), 422, "validation-failed")
    assert body["errors"][0]["pointer"] == "#/kind"
    # The service's refusal lands on the field it names, as on the page.
    body = assert_problem(_create(api, kind="greenhouse", identifier="a/../b"), 422)
    assert body["errors"][0]["pointer"] == "#/identifier"
    assert not Source.objects.exists()


def test_an_unknown_key_is_refused(api: ApiClient) -> None:
    body = assert_problem(_create(api, url=GREENHOUSE, colour="red"), 422, "validation-failed")
    assert body["errors"][0]["pointer"] == "#/colour"


def test_a_source_you_already_have_is_a_409_naming_it(api: ApiClient) -> None:
    first = _create(api, url=GREENHOUSE).json()
    body = assert_problem(_create(api, url=GREENHOUSE + "/jobs/1"), 409, "source-exists")
    assert body["existingSourceId"] == first["id"]
    assert "You already have a Greenhouse board source for 'acme'" in body["detail"]


def test_a_file_source_is_added_by_upload_not_json(api: ApiClient) -> None:
    body = assert_problem(_create(api, kind="file", company="Acme"), 422)
    assert "POST /sources/upload" in body["errors"][0]["detail"]


def test_the_list_pages_with_a_cursor_and_filters(api: ApiClient, user: Any) -> None:
    ids = [
        source_create(owner=user, kind="greenhouse", identifier=f"b{n}", enabled=n != 1).pk
        for n in range(5)
    ]
    first = api.get("/sources", data={"limit": 2}).json()
    assert [s["id"] for s in first["items"]] == ids[:2]
    second = api.get("/sources", data={"limit": 2, "cursor": first["nextCursor"]}).json()
    third = api.get("/sources", data={"limit": 2, "cursor": second["nextCursor"]}).json()
    assert [s["id"] for s in second["items"] + third["items"]] == ids[2:]
    assert third["nextCursor"] is None
    disabled = api.get("/sources", data={"enabled": "false"}).json()["items"]
    assert [s["id"] for s in disabled] == [ids[1]]
    assert api.get("/sources", data={"kind": "lever"}).json()["items"] == []
    assert_problem(api.get("/sources", data={"cursor": "nope"}), 400, "bad-cursor")
    assert_problem(api.get("/sources", data={"limit": 0}), 422, "validation-failed")


# --- change, delete ------------------------------------------------------------------------


def test_patch_changes_only_what_it_sends(api: ApiClient, user: Any) -> None:
    source = source_create(owner=user, kind="greenhouse", identifier="acme", locations=["Berlin"])
    response = api.request(
        "PATCH",
        f"/sources/{source.pk}",
        data=json.dumps({"company": "Acme GmbH", "excludeKeywords": ["intern"], "enabled": False}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    source.refresh_from_db()
    assert (source.company, source.exclude_keywords, source.enabled) == (
        "Acme GmbH",
        ["intern"],
        False,
    )
    assert source.locations == ["Berlin"]
    assert response.json()["excludeKeywords"] == ["intern"]


def test_patch_refuses_what_the_page_refuses(api: ApiClient, user: Any) -> None:
    source = source_create(owner=user, kind="greenhouse", identifier="acme")

    def patch(**body: Any) -> Any:
        return api.request(
            "PATCH", f"/sources/{source.pk}", data=json.dumps(body), content_type="application/json"
        )

    body = assert_problem(patch(company=""), 422, "validation-failed")
    assert body["errors"][0]["pointer"] == "#/company"
    body = assert_problem(patch(leverRegion="eu"), 422, "validation-failed")
    assert body["errors"][0]["pointer"] == "#/leverRegion"
    assert_problem(patch(identifier="other"), 422, "validation-failed")
    source.refresh_from_db()
    assert (source.company, source.identifier) == ("Acme", "acme")


def test_delete_removes_the_source(api: ApiClient, user: Any) -> None:
    source = source_create(owner=user, kind="greenhouse", identifier="acme")
    response = api.request("DELETE", f"/sources/{source.pk}")
    assert response.status_code == 204 and response.content == b""
    assert not Source.objects.exists()
    assert_problem(api.request("DELETE", f"/sources/{source.pk}"), 404, "not-found")


def test_another_user_s_source_is_a_404_everywhere(api: ApiClient, other_user: Any) -> None:
    theirs = source_create(owner=other_user, kind="greenhouse", identifier="acme")
    path = f"/sources/{theirs.pk}"
    assert_problem(api.get(path), 404, "not-found")
    patch = api.request(
        "PATCH", path, data=json.dumps({"company": "x"}), content_type="application/json"
    )
    assert_problem(patch, 404, "not-found")
    assert_problem(api.request("DELETE", path), 404, "not-found")
    assert_problem(_upload(api, f"{path}/upload", upload=_csv()), 404, "not-found")
    assert api.get("/sources").json()["items"] == []
    assert Source.objects.filter(pk=theirs.pk, company="Acme").exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sources"),
        ("POST", "/sources"),
        ("GET", "/sources/1"),
        ("PATCH", "/sources/1"),
        ("DELETE", "/sources/1"),
        ("POST", "/sources/detect"),
        ("POST", "/sources/upload"),
        ("POST", "/sources/1/upload"),
    ],
)
def test_every_endpoint_needs_a_token(method: str, path: str, anonymous: ApiClient) -> None:
    assert_problem(anonymous.request(method, path), 401, "unauthorized")
    wrong = ApiClient("intake_nope_nope").request(method, path)
    assert_problem(wrong, 401, "unauthorized")


def test_a_revoked_token_reads_no_sources(api: ApiClient, user: Any) -> None:
    tokens.token_revoke(ApiToken.objects.get(owner=user))
    assert_problem(api.get("/sources"), 401, "unauthorized")


# --- detect --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "identifier", "company", "options", "board"),
    [
        (GREENHOUSE + "/jobs/7", "greenhouse", "acme", "Acme", {}, True),
        (
            "https://jobs.eu.lever.co/acme-labs",
            "lever",
            "acme-labs",
            "Acme Labs",
            {"region": "eu"},
            True,
        ),  # fmt: skip
        (
            "https://acme.example/careers",
            "jsonld",
            "https://acme.example/careers",
            "Acme",
            {},
            False,
        ),  # fmt: skip
    ],
)
def test_detect_tells_what_a_url_is(
    api: ApiClient,
    url: str,
    kind: str,
    identifier: str,
    company: str,
    options: dict[str, str],
    board: bool,
) -> None:
    response = api.post("/sources/detect", json={"url": url})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["kind"], body["identifier"], body["options"], body["board"]) == (
        kind,
        identifier,
        options,
        board,
    )
    assert body["company"] == company
    assert body["existingSourceId"] is None and body["probe"] is None
    assert not Source.objects.exists()


def test_detect_names_the_source_you_have(api: ApiClient, user: Any) -> None:
    source = source_create(owner=user, url=GREENHOUSE)
    body = api.post("/sources/detect", json={"url": GREENHOUSE}).json()
    assert body["existingSourceId"] == source.pk


def test_detect_refuses_what_cannot_be_a_source(api: ApiClient, settings: Any) -> None:
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = False
    body = assert_problem(
        api.post("/sources/detect", json={"url": "http://127.0.0.1:9/careers"}), 422
    )
    assert body["errors"][0]["pointer"] == "#/url"
    assert "loopback" in body["detail"]
    assert_problem(api.post("/sources/detect", json={"url": ""}), 422, "validation-failed")
    assert_problem(api.post("/sources/detect", json={"url": "x" * 2001}), 422)


def test_detect_with_probe_lists_the_board(
    api: ApiClient,
    boards: FixtureServer,  # noqa: F811
) -> None:
    mount_greenhouse(boards, "acme", [greenhouse_job(i, f"Role {i}") for i in range(1, 13)])
    body = api.post("/sources/detect", json={"url": GREENHOUSE, "probe": True}).json()
    assert body["probe"] == {"ok": True, "found": 12, "text": "12 postings found."}
    missing = api.post("/sources/detect", json={"url": GREENHOUSE + "x", "probe": True}).json()
    assert missing["probe"]["ok"] is False


# --- uploads -------------------------------------------------------------------------------


def test_a_file_with_bad_rows_is_refused_with_its_row_errors(api: ApiClient) -> None:
    body = assert_problem(_upload(api, company="Acme", upload=_csv()), 422, "validation-failed")
    assert body["errors"][0]["pointer"] == "#/upload"
    assert "1 of 3 rows have errors" in body["detail"]
    report = body["report"]
    assert (report["format"], report["good"], report["bad"], report["total"]) == ("csv", 2, 1, 3)
    assert report["rowErrors"][0]["row"] == 2 and report["rowErrors"][0]["field"] == "title"
    assert not Source.objects.exists() and not UploadPart.objects.exists()


def test_a_file_with_bad_rows_is_saved_when_asked(api: ApiClient, user: Any) -> None:
    response = _upload(api, company="Acme", saveAnyway="true", upload=_csv())
    assert response.status_code == 201, response.content
    body = response.json()
    source = Source.objects.get(owner=user)
    assert response["Location"] == f"/api/v1/sources/{source.pk}"
    upload = {"name": "jobs.csv", "format": "csv", "size": source.upload_size}
    assert body["source"]["upload"] == upload
    assert (body["source"]["kind"], body["source"]["identifier"]) == ("file", "jobs.csv")
    assert (body["report"]["good"], body["report"]["bad"]) == (2, 1)
    assert UploadPart.objects.filter(source=source).exists()


def test_a_url_list_is_checked_url_by_url(api: ApiClient, user: Any, settings: Any) -> None:
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = False
    urls = ["https://jobs.example.com/1", "http://127.0.0.1/x", "https://jobs.example.com/2"]
    upload = _csv("urls.csv", url_list_csv(urls))
    body = assert_problem(_upload(api, kind="urls", company="Acme", upload=upload), 422)
    assert (body["report"]["good"], body["report"]["bad"]) == (2, 1)
    assert body["report"]["rowErrors"][0]["row"] == 2
    upload = _csv("urls.csv", url_list_csv(urls[:1]))
    response = _upload(api, kind="urls", company="Acme", upload=upload)
    assert response.status_code == 201, response.content
    assert Source.objects.get(owner=user).kind == "urls"


def test_a_url_list_over_the_cap_is_refused(api: ApiClient, settings: Any) -> None:
    assert settings.INTAKE_URL_LIST_MAX == 1000
    urls = url_list_csv(f"https://jobs.example.com/{n}" for n in range(1001))
    body = assert_problem(
        _upload(api, kind="urls", company="Acme", upload=_csv("urls.csv", urls)), 422
    )
    assert "1,000" in body["report"]["error"] or "1000" in body["report"]["error"]
    assert not Source.objects.exists()


def test_a_file_over_the_size_limit_is_a_413(api: ApiClient, settings: Any) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 1024
    big = postings_csv([posting_row(n) for n in range(1, 20)])
    assert len(big) > 1024
    body = assert_problem(_upload(api, company="Acme", upload=_csv(data=big)), 413)
    assert body["type"] == "urn:intake:problem:payload-too-large"
    assert "larger than the 1 KB limit" in body["detail"]
    assert not Source.objects.exists()


def test_a_request_declaring_more_than_the_limit_is_a_413_unread(
    api: ApiClient, settings: Any
) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    big = postings_csv([posting_row(n) for n in range(1, 200)])
    assert len(big) > 1024 + 1024 + 64 * 1024
    body = assert_problem(_upload(api, company="Acme", upload=_csv(data=big)), 413)
    assert body["errors"][0]["pointer"] == "#/upload"
    assert not Source.objects.exists() and not UploadPart.objects.exists()


def test_a_file_of_another_type_is_a_415(api: ApiClient) -> None:
    pdf = SimpleUploadedFile("jobs.pdf", b"%PDF-1.7 ...", content_type="application/pdf")
    body = assert_problem(_upload(api, company="Acme", upload=pdf), 415, "unsupported-media-type")
    assert "not a CSV, JSON or JSONL file" in body["detail"]
    zipped = SimpleUploadedFile("jobs.csv", b"PK\x03\x04" + b"\0" * 40)
    assert_problem(_upload(api, company="Acme", upload=zipped), 415, "unsupported-media-type")


def test_an_upload_without_a_file_says_so(api: ApiClient) -> None:
    body = assert_problem(_upload(api, company="Acme"), 422, "validation-failed")
    assert body["errors"][0]["pointer"] == "#/upload"
    assert_problem(_upload(api, kind="greenhouse", upload=_csv()), 422, "validation-failed")


def test_a_file_source_s_file_is_replaced(api: ApiClient, user: Any) -> None:
    created = _upload(api, company="Acme", saveAnyway="true", upload=_csv()).json()["source"]
    good = postings_csv([posting_row(n) for n in range(1, 5)])
    path = f"/sources/{created['id']}/upload"
    response = _upload(api, path, upload=_csv("new.csv", good))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"]["upload"]["name"] == "new.csv"
    assert (body["report"]["good"], body["report"]["bad"]) == (4, 0)
    assert body["source"]["company"] == "Acme"
    assert_problem(_upload(api, path, upload=_csv()), 422)
    board = source_create(owner=user, kind="greenhouse", identifier="acme")
    assert_problem(_upload(api, f"/sources/{board.pk}/upload", upload=_csv()), 422)


def test_a_multipart_body_without_a_boundary_is_a_400_problem(api):
    for path in ("/sources/upload", "/sources/1/upload"):
        response = api.request(
            "POST", path, data=b"--x\r\nnot a part", content_type="multipart/form-data"
        )
        problem = assert_problem(response, 400, "malformed-body")
        assert "boundary" in problem["detail"]

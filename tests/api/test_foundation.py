"""The API's foundation: authentication, the problem shape of every error, the OpenAPI
document and the docs page."""

from __future__ import annotations

import pytest
import redis
from django.db import OperationalError, connection
from django.test import Client
from openapi_spec_validator import validate

from api import tokens
from api.models import ApiToken
from tests.api.conftest import ApiClient, assert_problem

pytestmark = pytest.mark.django_db


# --- authentication ------------------------------------------------------------------------


def test_no_credentials_is_a_401_problem_with_a_challenge(anonymous):
    response = anonymous.get("/runs/current")
    assert_problem(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer intake_nope_nope",
        "Bearer not-a-token",
        "Bearer " + "x" * 5000,
        "Bearer intake_²_x",
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
)
def test_a_wrong_token_is_a_401(header):
    response = ApiClient().get("/runs/current", headers={"Authorization": header})
    assert_problem(response, 401, "unauthorized")


def test_a_token_with_the_right_prefix_and_a_wrong_secret_is_refused(token):
    prefix = token.split("_")[1]
    assert_problem(ApiClient(f"intake_{prefix}_wrong").get("/runs/current"), 401)


def test_a_token_authenticates_its_owner(api, user):
    assert api.get("/runs/current").status_code == 200
    assert ApiToken.objects.get(owner=user).last_used_at is not None


def test_a_revoked_token_is_refused(api, user):
    tokens.token_revoke(ApiToken.objects.get(owner=user))
    assert_problem(api.get("/runs/current"), 401, "unauthorized")


def test_a_deactivated_users_token_is_refused(api, user):
    user.is_active = False
    user.save()
    assert_problem(api.get("/runs/current"), 401)


def test_only_the_hash_of_a_token_is_stored(user):
    row, raw = tokens.token_create(owner=user, name="cron")
    stored = [str(v) for v in ApiToken.objects.filter(pk=row.pk).values_list().get()]
    # The secret is URL-safe base64 and may itself start with or hold "_".
    secret = raw.split("_", 2)[2]
    assert raw not in stored and secret not in "".join(stored)


def test_a_wrong_token_is_refused_even_with_a_signed_in_session(user):
    client = ApiClient("intake_nope_nope")
    client.client.force_login(user)
    assert_problem(client.get("/runs/current"), 401)


def test_a_signed_in_session_reads_without_a_token(user):
    client = ApiClient()
    client.client.force_login(user)
    assert client.get("/runs/current").status_code == 200


def test_a_session_needs_the_csrf_token_for_unsafe_methods(user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.post("/api/v1/runs", data={}, content_type="application/json")
    assert_problem(refused, 403, "csrf-failed")
    browser.get("/api/v1/docs")  # sets the CSRF cookie, as the docs page does
    csrf = browser.cookies["csrftoken"].value
    allowed = browser.post(
        "/api/v1/runs",
        data={"kind": "nope"},
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert allowed.status_code == 422  # past the CSRF check, on to validation


# --- problems --------------------------------------------------------------------------------


def test_an_unknown_endpoint_is_a_404_problem(api):
    for path in ("/nope", "/runs/current/extra", "/"):
        assert_problem(api.get(path), 404, "not-found")
    assert_problem(api.client.get("/api/v2/runs"), 404, "not-found")


def test_a_wrong_method_is_a_405_problem_with_allow(api):
    response = api.request("DELETE", "/runs/current")
    assert_problem(response, 405, "method-not-allowed")
    assert response["Allow"] == "GET"


def test_a_body_that_is_not_json_is_a_400_problem(api):
    response = api.post("/runs", data="{not json", content_type="application/json")
    assert_problem(response, 400, "malformed-body")
    response = api.post("/runs", data="[1, 2]", content_type="application/json")
    assert "JSON object" in assert_problem(response, 400, "malformed-body")["detail"]


def test_a_body_of_another_media_type_is_a_415_problem(api):
    response = api.post("/runs", data="kind=preview", content_type="text/plain")
    assert_problem(response, 415, "unsupported-media-type")


def test_an_oversized_body_is_a_413_problem(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"kind": "preview", "sources": [' + ",".join(["1"] * 1000) + "]}"
    response = api.post("/runs", data=body, content_type="application/json")
    assert_problem(response, 413, "payload-too-large")


def test_validation_errors_name_their_fields(api):
    response = api.post("/runs", json={"kind": "sideways", "sources": ["x"], "bogus": 1})
    body = assert_problem(response, 422, "validation-failed")
    pointers = {error["pointer"] for error in body["errors"]}
    assert {"#/kind", "#/sources/0", "#/bogus"} <= pointers
    assert all(error["in"] == "body" and error["detail"] for error in body["errors"])


def test_an_unreachable_database_is_a_503_with_retry_after(api, monkeypatch):
    def down() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", down)
    response = api.get("/runs/current")
    assert_problem(response, 503, "service-unavailable")
    assert int(response["Retry-After"]) > 0


def test_an_unreachable_redis_is_a_503_with_retry_after(api, monkeypatch):
    # Fault injection: no run endpoint fails on Redis today (the quota fails open, queueing
    # ends the run), so a service is made to meet what redis-py raises when Redis is gone.
    from runs import stale

    def down(owner):  # type: ignore[no-untyped-def]
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(stale, "run_active_for_owner", down)
    response = api.get("/runs/current")
    body = assert_problem(response, 503, "service-unavailable")
    assert int(response["Retry-After"]) > 0 and "6379" not in body["detail"]


def test_an_unexpected_error_is_a_500_problem_without_a_traceback(api, monkeypatch):
    from runs import stale

    def broken(owner):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals")

    monkeypatch.setattr(stale, "run_active_for_owner", broken)
    response = api.get("/runs/current")
    body = assert_problem(response, 500, "server-error")
    assert "secret internals" not in response.content.decode()
    assert body["detail"]


# --- the document and the docs --------------------------------------------------------------


def test_the_openapi_document_is_valid_and_camel_case(anonymous):
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert {"BearerToken", "SessionCookie"} <= set(document["components"]["securitySchemes"])
    for name, schema in document["components"]["schemas"].items():
        for key in schema.get("properties", {}):
            assert "_" not in key, f"{name}.{key} is not camelCase"


def test_the_docs_page_loads_nothing_from_another_site(anonymous):
    page = anonymous.client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "http://" not in html and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui-init.js", "swagger-ui.css"):
        assert anonymous.client.get(f"/static/ninja/{asset}").status_code == 200


def test_the_document_describes_every_error_as_a_problem(anonymous):
    document = anonymous.get("/openapi.json").json()
    assert "Problem" in document["components"]["schemas"]
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert operations
    for operation in operations:
        responses = operation["responses"]
        assert {"401", "500", "503"} <= set(responses), operation["operationId"]
        for code, response in responses.items():
            if int(code) >= 400:
                assert list(response["content"]) == ["application/problem+json"]

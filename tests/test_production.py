"""Production settings: `check --deploy` is clean with the environment docs/operations.md
documents, and every page carries the Content-Security-Policy with nothing inline to refuse."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import django_rq
import pytest
from django.test import Client
from rq import SimpleWorker

from ingestion import services
from ingestion.models import Job, Source
from runs import services as run_services
from runs.models import IngestionRun
from runs.workloads import DIAGNOSTIC
from tests.ingestion.boards import greenhouse_job, mount_greenhouse
from tests.support import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"
STRICT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


# --- check --deploy ---------------------------------------------------------------------------


def documented_production_environment() -> dict[str, str]:
    """The `export NAME=value` lines of the first sh block under "## Production settings"."""
    text = OPERATIONS.read_text()
    section = text.split("## Production settings", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    found = {}
    for line in block.splitlines():
        match = re.match(r"export (\w+)=(\S*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def check_deploy(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only what a fresh shell has, plus the variables under test: nothing from the test
    # session's own environment (its DEBUG, DATABASE_URL ...) leaks in.
    env = {"PATH": os.environ.get("PATH", ""), "INTAKE_VAR_DIR": str(tmp_path), **extra}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_environment_is_complete():
    documented = documented_production_environment()
    for name in (
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "SESSION_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
    ):
        assert name in documented, name


def test_check_deploy_reports_nothing_with_the_documented_production_environment(tmp_path):
    env = documented_production_environment()
    # The docs' placeholder, replaced as they say: 50+ random characters.
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["DATABASE_URL"] = "postgres://intake:secret@db.internal:5432/intake"
    env["REDIS_URL"] = "redis://redis.internal:6379/0"
    result = check_deploy(tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_without_it(tmp_path):
    result = check_deploy(tmp_path, {})
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout


# --- Content-Security-Policy --------------------------------------------------------------------


class _Inline(HTMLParser):
    """What a strict policy would refuse in a page: inline scripts and styles, event handler
    attributes, style attributes, javascript: URLs. A JSON data block (Django's json_script)
    is not a script the browser runs, so script-src does not apply to it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            if name == "style":
                self.found.append(f"style= on <{tag}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL in {name}= on <{tag}>")


def inline_parts(html: str) -> list[str]:
    parser = _Inline()
    parser.feed(html)
    return parser.found


@pytest.fixture
def pages(transactional_db, user, fixture_server, settings, redis_client) -> list[str]:  # type: ignore[no-untyped-def]
    """Every page a user sees, with data in it: the stepper's steps after a real preview and
    ingest, the jobs list and a job, the runs history and a diagnostic run."""
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    settings.INTAKE_GREENHOUSE_URL = fixture_server.base_url
    mount_greenhouse(fixture_server, "acme", [greenhouse_job(1), greenhouse_job(2)])
    source = services.source_create(owner=user, kind="greenhouse", identifier="acme")
    queue = django_rq.get_queue("default")

    def work() -> None:
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    preview = services.preview_start(owner=user)
    work()
    ingest = services.ingest_start(owner=user, preview=IngestionRun.objects.get(pk=preview.pk))
    work()
    run_services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 2, "delay": 0})
    work()
    diagnostic = IngestionRun.objects.get(owner=user, kind=DIAGNOSTIC)
    job = Job.objects.filter(owner=user).first()
    assert job is not None and Source.objects.filter(owner=user).count() == 1
    return [
        "/configure/",
        "/sources/new/",
        f"/sources/{source.pk}/edit/",
        f"/preview/{preview.pk}/",
        f"/ingest/{ingest.pk}/",
        "/jobs/",
        f"/jobs/{job.pk}/",
        "/runs/",
        f"/runs/{diagnostic.pk}/",
    ]


@pytest.mark.django_db(transaction=True)
def test_every_page_carries_the_policy_and_nothing_inline_it_would_refuse(pages, user):
    anonymous = Client()
    login = anonymous.get("/login/")
    assert login["Content-Security-Policy"] == STRICT
    assert inline_parts(login.content.decode()) == []
    client = Client()
    client.force_login(user)
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Security-Policy"] == STRICT, path
        assert inline_parts(response.content.decode()) == [], path
        # htmx reads its settings from the page, not from an inline script.
        assert '<meta name="htmx-config"' in response.content.decode()


def test_the_inline_detector_finds_what_it_looks_for():
    found = inline_parts(
        '<script>alert(1)</script><script src="/a.js"></script><style>p{}</style>'
        '<p style="color:red" onclick="x()"><a href="javascript:void(0)">x</a></p>'
    )
    assert found == [
        "inline <script>",
        "<style>",
        "style= on <p>",
        "onclick= on <p>",
        "javascript: URL in href= on <a>",
    ]


@pytest.mark.django_db
def test_fragments_json_and_redirects_carry_it_too(user, redis_client):
    client = Client()
    client.force_login(user)
    run = run_services.run_start(owner=user, kind=DIAGNOSTIC, config={"items": 1})
    for response in (
        client.get("/runs/", HTTP_HX_REQUEST="true"),
        client.get(f"/runs/{run.pk}/events/"),
        client.get("/start/"),
        Client().get("/jobs/"),
    ):
        assert response["Content-Security-Policy"] == STRICT


@pytest.mark.django_db
def test_django_rqs_dashboard_alone_may_run_inline_script(admin_user, redis_client):
    client = Client()
    client.force_login(admin_user)
    response = client.get("/django-rq/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert client.get("/admin/")["Content-Security-Policy"] == STRICT


@pytest.mark.django_db
def test_the_policy_can_be_replaced_or_turned_off(settings, user):
    example = (ROOT / ".env.example").read_text()
    assert f'# INTAKE_CONTENT_SECURITY_POLICY="{STRICT}"' in example, "the documented default"
    client = Client()
    settings.INTAKE_CONTENT_SECURITY_POLICY = "default-src 'self'; report-uri /csp"
    assert client.get("/login/")["Content-Security-Policy"] == "default-src 'self'; report-uri /csp"
    settings.INTAKE_CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in client.get("/login/")

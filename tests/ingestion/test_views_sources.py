"""The Configure step's views: the sources list, adding by pasted URL or the full form, upload
checks before saving, edit, toggle, delete, and owner scoping."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ingestion.models import Job, Source, UploadPart
from ingestion.run_kinds import INGEST, PREVIEW
from runs.models import IngestionRun, RunStatus
from runs.workloads import DIAGNOSTIC
from tests.ingestion.pages import posting_row, postings_csv, url_list_csv

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
CONFIGURE = reverse("ingestion:configure")
NEW = reverse("ingestion:source_new")
CHECK = reverse("ingestion:source_check_upload")


@pytest.fixture
def client(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def _source(owner: Any, **fields: Any) -> Source:
    defaults: dict[str, Any] = {"company": "Acme", "kind": "greenhouse", "identifier": "acme"}
    return Source.objects.create(owner=owner, **{**defaults, **fields})


def _job(source: Source, n: int) -> Job:
    now = timezone.now()
    return Job.objects.create(
        owner=source.owner,
        source=source,
        company=source.company,
        external_id=f"J{n}",
        title=f"Job {n}",
        first_seen_at=now,
        last_seen_at=now,
    )


def _csv_with_a_bad_row() -> bytes:
    return postings_csv([posting_row(1), posting_row(2, title=""), posting_row(3)])


def _full_form(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"enabled": "on"}
    data.update(fields)
    return data


# --- the list ------------------------------------------------------------------------------------


def test_configure_requires_login() -> None:
    response = Client().get(CONFIGURE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("source_new", []),
        ("source_check_upload", []),
        ("source_edit", [1]),
        ("source_delete", [1]),
        ("source_toggle", [1]),
    ],
)
def test_every_source_view_requires_login(name: str, args: list[int]) -> None:
    url = reverse(f"ingestion:{name}", args=args)
    for method in ("get", "post"):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302, (name, method)
        assert response["Location"].startswith(reverse("login"))


def test_a_new_user_sees_the_empty_state_and_the_add_form(client: Client) -> None:
    response = client.get(CONFIGURE)
    html = response.content.decode()
    assert response.status_code == 200
    assert "No sources yet — paste a careers URL to add one" in html
    assert 'name="url"' in html
    assert f'href="{NEW}"' in html and "More options" in html
    assert 'aria-current="step"' in html


def test_the_list_shows_sources_with_health_job_count_and_the_enabled_ones_selected(
    client: Client, user: Any
) -> None:
    ok = _source(
        user, company="Acme", last_fetch_ok=True, last_fetched_at=timezone.now(),
        include_keywords=["python"], remote_only=True,
    )  # fmt: skip
    failed = _source(
        user, company="Globex", kind="lever", identifier="globex", enabled=False,
        last_fetch_ok=False, last_fetched_at=timezone.now(), last_fetch_error="HTTP 404",
    )  # fmt: skip
    never = _source(user, company="Initech", kind="ashby", identifier="initech")
    for n in range(3):
        _job(ok, n)

    response = client.get(CONFIGURE)
    sources = {s.pk: s for s in response.context["sources"]}
    html = response.content.decode()

    assert sources[ok.pk].job_count == 3
    assert sources[ok.pk].selected and sources[never.pk].selected
    assert not sources[failed.pk].selected
    assert f'name="source" value="{ok.pk}" id="select-{ok.pk}" checked' in html
    assert f'name="source" value="{failed.pk}" id="select-{failed.pk}">' in html
    assert "health-ok" in html and ">OK<" in html
    assert "Failed: HTTP 404" in html
    assert "Never fetched" in html
    assert "include: python" in html and "remote only" in html
    assert f'action="{reverse("ingestion:preview_start")}"' in html
    assert "Greenhouse board" in html and "Lever postings" in html


def test_last_run_is_the_newest_run_that_read_the_source(client: Client, user: Any) -> None:
    acme = _source(user)
    other = _source(user, company="Globex", identifier="globex")

    def run(ids: list[int], kind: str) -> IngestionRun:
        return IngestionRun.objects.create(
            owner=user, kind=kind, status=RunStatus.FINISHED,
            config={"sources": [{"id": i} for i in ids]},
        )  # fmt: skip

    run([acme.pk, other.pk], PREVIEW)
    newest = run([acme.pk], INGEST)
    IngestionRun.objects.create(owner=user, kind=DIAGNOSTIC, config={"items": 3})

    sources = {s.pk: s for s in client.get(CONFIGURE).context["sources"]}
    assert sources[acme.pk].last_run.pk == newest.pk
    assert sources[other.pk].last_run.pk == newest.pk - 1


def test_the_selection_is_remembered_from_the_last_run_and_takes_sources_added_since(
    client: Client, user: Any
) -> None:
    acme = _source(user)
    globex = _source(user, company="Globex", identifier="globex")
    IngestionRun.objects.create(
        owner=user, kind=PREVIEW, status=RunStatus.FINISHED, config={"sources": [{"id": globex.pk}]}
    )
    added = _source(user, company="Initech", identifier="initech")
    _source(user, company="Off", identifier="off", enabled=False)

    sources = client.get(CONFIGURE).context["sources"]
    assert {s.pk for s in sources if s.selected} == {globex.pk, added.pk}
    # Another browser of the same user: the same selection.
    other_browser = Client()
    other_browser.force_login(user)
    html = other_browser.get(CONFIGURE).content.decode()
    assert f'value="{acme.pk}" id="select-{acme.pk}">' in html
    assert f'value="{globex.pk}" id="select-{globex.pk}" checked' in html


def test_the_table_offers_select_all_and_none(client: Client, user: Any) -> None:
    _source(user)
    html = client.get(CONFIGURE).content.decode()
    assert 'data-select="all">Select all</button>' in html
    assert 'data-select="none">Select none</button>' in html
    assert "js/configure.js" in html


def test_toggle_keeps_the_pages_ticks_and_unticks_a_disabled_source(
    client: Client, user: Any
) -> None:
    acme = _source(user)
    globex = _source(user, company="Globex", identifier="globex")
    url = reverse("ingestion:source_toggle", args=[acme.pk])
    # The page had only Acme ticked; disabling it unticks it.
    html = client.post(url, {"selection": "1", "source": [acme.pk]}, **HTMX).content.decode()
    assert f'id="select-{acme.pk}">' in html
    # Enabling it again ticks it, whatever the page had.
    html = client.post(url, {"selection": "1", "source": [globex.pk]}, **HTMX).content.decode()
    assert f'id="select-{acme.pk}" checked' in html


def test_a_failed_quick_add_over_htmx_keeps_the_focus_on_the_field_in_error(
    client: Client, user: Any
) -> None:
    response = client.post(NEW, {"form": "quick", "url": ""}, **HTMX)
    html = response.content.decode()
    field = re.search(r'<input type="text" name="url"[^>]*>', html, re.S)
    assert field is not None and " autofocus" in field.group(0)
    assert 'aria-invalid="true"' in field.group(0)


def test_another_users_sources_are_not_listed(client: Client, user: Any, other_user: Any) -> None:
    _source(other_user, company="Bob's Board", identifier="bobs")
    response = client.get(CONFIGURE)
    assert "Bob&#x27;s Board" not in response.content.decode()
    assert response.context["sources"] == []


# --- adding by a pasted URL --------------------------------------------------------------------


def test_a_pasted_greenhouse_url_creates_a_greenhouse_source(client: Client, user: Any) -> None:
    response = client.post(
        NEW, {"form": "quick", "url": "https://boards.greenhouse.io/acme/jobs/123", "company": ""}
    )
    assert response.status_code == 302 and response["Location"] == CONFIGURE
    source = Source.objects.get(owner=user)
    assert (source.kind, source.identifier, source.company) == ("greenhouse", "acme", "Acme")
    page = client.get(CONFIGURE).content.decode()
    assert "Added source Acme (Greenhouse board)." in page


def test_a_pasted_lever_eu_url_sets_the_eu_region(client: Client, user: Any) -> None:
    client.post(
        NEW, {"form": "quick", "url": "https://jobs.eu.lever.co/globex", "company": "Globex"}
    )
    source = Source.objects.get(owner=user)
    assert (source.kind, source.identifier, source.company) == ("lever", "globex", "Globex")
    assert source.options == {"region": "eu"}


def test_an_unknown_careers_url_becomes_a_jsonld_source(client: Client, user: Any) -> None:
    client.post(
        NEW, {"form": "quick", "url": "https://careers.initech.example/jobs", "company": "Initech"}
    )
    source = Source.objects.get(owner=user)
    assert source.kind == "jsonld"
    assert source.identifier.startswith("https://careers.initech.example/jobs")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("javascript:alert(1)", "Refused to fetch javascript:alert(1): only http and https"),
        ("http://exa mple.com/careers", "is not a valid URL: it contains a space"),
        ("https://169.254.169.254/jobs", "169.254.169.254: a cloud metadata address"),
        ("https://[::1]/jobs", "::1: a loopback address, not a public one; private networks"),
    ],
)
def test_quick_add_refuses_a_url_the_fetcher_would_refuse_at_the_url(
    client: Client, user: Any, url: str, message: str
) -> None:
    response = client.post(NEW, {"form": "quick", "url": url, "company": "Acme"})

    assert response.status_code == 400
    assert not Source.objects.filter(owner=user).exists()
    assert message in response.context["quick_form"].errors["url"][0]


def test_a_metadata_address_is_refused_even_with_private_networks_allowed(
    client: Client, user: Any, settings: Any
) -> None:
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    client.post(NEW, {"form": "quick", "url": "http://127.0.0.1:8000/jobs", "company": "Dev"})
    response = client.post(
        NEW, {"form": "quick", "url": "http://169.254.169.254/", "company": "Acme"}
    )

    assert response.status_code == 400
    assert "always refused" in response.context["quick_form"].errors["url"][0]
    assert list(Source.objects.values_list("identifier", flat=True)) == [
        "http://127.0.0.1:8000/jobs"
    ]


def test_the_full_form_refuses_a_page_url_the_fetcher_would_refuse(client: Client) -> None:
    response = client.post(NEW, _full_form(kind="jsonld", identifier="javascript:alert(1)"))

    assert not Source.objects.exists()
    assert "only http and https are allowed" in response.context["form"].errors["identifier"][0]


def test_a_duplicate_is_refused_with_a_message_next_to_the_url(client: Client, user: Any) -> None:
    _source(user)
    response = client.post(NEW, {"form": "quick", "url": "https://boards.greenhouse.io/acme"})
    assert response.status_code == 400
    assert Source.objects.filter(owner=user).count() == 1
    errors = response.context["quick_form"].errors
    assert "You already have a Greenhouse board source for 'acme'" in errors["url"][0]
    assert 'id="quick-url-error" class="field-error" role="alert"' in response.content.decode()


def test_quick_add_over_htmx_returns_the_form_and_the_table_with_the_new_row_selected(
    client: Client, user: Any
) -> None:
    first = _source(user, company="Globex", identifier="globex")
    response = client.post(
        NEW,
        {"form": "quick", "url": "boards.greenhouse.io/acme", "selection": "1"},
        **HTMX,
    )
    html = response.content.decode()
    source = Source.objects.get(owner=user, identifier="acme")
    assert '<section id="quick-add"' in html
    assert 'id="source-table" hx-swap-oob="true"' in html
    # The user had unticked Globex: the re-rendered table keeps that and ticks the new one.
    assert f'value="{source.pk}" id="select-{source.pk}" checked' in html
    assert f'value="{first.pk}" id="select-{first.pk}">' in html
    assert (
        'id="configure-status" hx-swap-oob="innerHTML">Added source Acme (Greenhouse board).'
        in html
    )


def test_quick_add_errors_over_htmx_return_only_the_form(client: Client, user: Any) -> None:
    response = client.post(NEW, {"form": "quick", "url": "not a url"}, **HTMX)
    html = response.content.decode()
    assert 'id="source-table"' not in html
    assert 'role="alert"' in html
    assert not Source.objects.exists()


def test_the_url_field_recognises_a_board_live(client: Client) -> None:
    response = client.get(
        NEW, {"recognize": "1", "url": "https://boards.greenhouse.io/acme"}, **HTMX
    )
    html = response.content.decode()
    assert '<p id="url-recognized"' in html
    assert "Recognised: Greenhouse board &#x27;acme&#x27;" in html
    other = client.get(NEW, {"recognize": "1", "url": "https://example.com/careers"}, **HTMX)
    assert "careers page (JSON-LD)" in other.content.decode()


@pytest.mark.parametrize("url", ["https://boards.greenhouse.io/a\x00b", "x" * 2001])
def test_a_url_the_form_cannot_take_is_said_so_live_and_not_prefilled(
    client: Client, url: str
) -> None:
    hint = client.get(NEW, {"recognize": "1", "url": url}, **HTMX).content.decode()
    assert "recognized-bad" in hint and "url must" in hint
    page = client.get(NEW, {"url": url})
    assert page.status_code == 200
    assert page.context["form"]["url"].value() in (None, "")


def test_junk_in_the_posted_selection_is_left_out(client: Client, user: Any) -> None:
    ticked = _source(user, company="Globex", identifier="globex")
    response = client.post(
        NEW,
        {
            "form": "quick",
            "url": "boards.greenhouse.io/acme",
            "selection": "1",
            "source": [str(ticked.pk), "²", "9223372036854775808"],
        },
        **HTMX,
    )
    assert response.status_code == 200
    assert f'value="{ticked.pk}" id="select-{ticked.pk}" checked' in response.content.decode()


# --- the full form -------------------------------------------------------------------------------


def test_the_full_form_has_a_label_for_every_field(client: Client) -> None:
    html = client.get(NEW).content.decode()
    names = "url kind company identifier lever_region upload include_keywords exclude_keywords"
    for name in [*names.split(), "locations", "remote_only", "enabled"]:
        assert f'for="id_{name}"' in html, name
        assert f'id="id_{name}"' in html, name
    assert 'hx-post="' + CHECK + '"' in html
    assert 'hx-encoding="multipart/form-data"' in html
    # Choosing another kind checks the chosen file again.
    assert html.count(f'hx-post="{CHECK}"') == 2


def test_the_full_form_creates_a_lever_source_with_filters(client: Client, user: Any) -> None:
    response = client.post(
        NEW,
        _full_form(
            kind="lever",
            identifier="globex",
            company="Globex",
            lever_region="eu",
            include_keywords="python, django",
            exclude_keywords="senior",
            locations="Berlin, Remote",
            remote_only="on",
        ),  # fmt: skip
    )
    assert response.status_code == 302
    source = Source.objects.get(owner=user)
    assert source.options == {"region": "eu"}
    assert source.include_keywords == ["python", "django"]
    assert source.exclude_keywords == ["senior"]
    assert source.locations == ["Berlin", "Remote"]
    assert source.remote_only and source.enabled


def test_the_full_form_shows_a_bad_identifier_next_to_it(client: Client) -> None:
    response = client.post(NEW, _full_form(kind="ashby", identifier="no such/../board"))
    assert response.status_code == 200
    assert response.context["form"].errors["identifier"]
    assert not Source.objects.exists()


def test_the_full_form_needs_a_kind_or_a_url(client: Client) -> None:
    response = client.post(NEW, _full_form(company="Acme"))
    assert "Choose a kind" in response.context["form"].errors["kind"][0]


def test_an_upload_with_a_bad_row_shows_the_row_errors_and_saves_nothing(
    client: Client, user: Any
) -> None:
    upload = SimpleUploadedFile("jobs.csv", _csv_with_a_bad_row(), content_type="text/csv")
    response = client.post(NEW, _full_form(kind="file", company="Acme", upload=upload))
    html = response.content.decode()
    assert response.status_code == 200
    assert not Source.objects.exists() and not UploadPart.objects.exists()
    report = response.context["report"]
    assert (report.good, report.bad) == (2, 1)
    assert report.errors[0].row == 2 and report.errors[0].field == "title"
    assert 'data-role="row-error"' in html and "<code>title</code>" in html
    assert "Save anyway — the 2 good rows will be ingested, bad rows reported" in html
    assert "1 of 3 rows have errors" in response.context["form"].errors["upload"][0]


def test_an_upload_with_a_bad_row_is_saved_once_confirmed(client: Client, user: Any) -> None:
    upload = SimpleUploadedFile("jobs.csv", _csv_with_a_bad_row(), content_type="text/csv")
    response = client.post(
        NEW, _full_form(kind="file", company="Acme", upload=upload, save_anyway="on")
    )
    assert response.status_code == 302
    source = Source.objects.get(owner=user)
    assert (source.kind, source.identifier, source.upload_format) == ("file", "jobs.csv", "csv")
    assert UploadPart.objects.filter(source=source).exists()
    page = client.get(CONFIGURE).content.decode()
    assert "2 good rows will be ingested; 1 bad row reported." in page


def test_save_anyway_needs_no_second_choice_of_the_file(
    client: Client, user: Any, other_user: Any
) -> None:
    upload = SimpleUploadedFile("jobs.csv", _csv_with_a_bad_row(), content_type="text/csv")
    first = client.post(NEW, _full_form(kind="file", company="Acme", upload=upload))
    assert first.status_code == 200 and not Source.objects.exists()
    html = first.content.decode()
    token = re.search(r'name="pending_upload" value="([^"]+)"', html)
    assert token is not None
    assert "Keeping <strong>jobs.csv</strong>" in html
    # Another user cannot use the token.
    other = Client()
    other.force_login(other_user)
    refused = other.post(
        NEW,
        _full_form(kind="file", company="Acme", save_anyway="on", pending_upload=token.group(1)),
    )
    assert refused.status_code == 200 and not Source.objects.exists()

    # The second round sends only the token and the confirmation.
    second = client.post(
        NEW,
        _full_form(kind="file", company="Acme", save_anyway="on", pending_upload=token.group(1)),
    )
    assert second.status_code == 302
    source = Source.objects.get(owner=user)
    assert (source.identifier, source.upload_format) == ("jobs.csv", "csv")
    assert UploadPart.objects.filter(source=source).exists()
    # Used once: the kept copy is gone.
    third = client.post(
        NEW,
        _full_form(kind="file", company="Other", save_anyway="on", pending_upload=token.group(1)),
    )
    assert third.status_code == 200 and Source.objects.count() == 1


def test_a_kept_file_survives_another_fields_error(client: Client, user: Any) -> None:
    upload = SimpleUploadedFile("jobs.csv", _csv_with_a_bad_row(), content_type="text/csv")
    # No kind and no URL: the form is refused for that, and the file is kept.
    first = client.post(NEW, _full_form(company="Acme", upload=upload, save_anyway="on"))
    token = re.search(r'name="pending_upload" value="([^"]+)"', first.content.decode())
    assert token is not None
    second = client.post(
        NEW,
        _full_form(kind="file", company="Acme", save_anyway="on", pending_upload=token.group(1)),
    )
    assert second.status_code == 302


def test_a_clean_upload_is_saved_without_confirmation(client: Client, user: Any) -> None:
    urls = url_list_csv([f"https://jobs.example.com/{n}" for n in range(3)])
    upload = SimpleUploadedFile("urls.csv", urls, content_type="text/csv")
    response = client.post(NEW, _full_form(kind="urls", company="Acme", upload=upload))
    assert response.status_code == 302
    assert Source.objects.get(owner=user).kind == "urls"


def test_an_unusable_file_is_refused_whatever_the_confirmation(client: Client) -> None:
    data = postings_csv([posting_row(1)], columns=["external_id", "url"])
    upload = SimpleUploadedFile("jobs.csv", data, content_type="text/csv")
    response = client.post(
        NEW, _full_form(kind="file", company="Acme", upload=upload, save_anyway="on")
    )
    assert not Source.objects.exists()
    assert "This file cannot be used" in response.context["form"].errors["upload"][0]
    assert 'data-role="file-error"' in response.content.decode()


def test_a_file_source_without_a_file_is_refused_at_the_file_field(client: Client) -> None:
    response = client.post(NEW, _full_form(kind="file", company="Acme"))
    assert "needs an uploaded file" in response.context["form"].errors["upload"][0]


def test_a_file_fields_clear_box_is_not_taken_for_a_file(client: Client) -> None:
    # Django's ClearableFileInput made `upload-clear` a cleaned value of False, which the
    # view passed on as a file (a 500).
    data = _full_form(kind="file", company="Acme", **{"upload-clear": "on"})
    response = client.post(NEW, data)
    assert response.status_code == 200
    assert "needs an uploaded file" in response.context["form"].errors["upload"][0]
    assert not Source.objects.exists()


# --- the upload size limit, as the bytes arrive -------------------------------------------------


def _big_csv(size: int) -> bytes:
    rows = []
    n = 0
    while sum(map(len, rows)) < size:
        n += 1
        rows.append(postings_csv([posting_row(n)]).split(b"\r\n", 1)[1])
    return postings_csv([posting_row(0)]) + b"".join(rows)


@pytest.fixture
def unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a file is parsed: a refused file must not be read row by row."""

    def parse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr("ingestion.adapters.uploaded.upload_check", parse)


def test_a_file_over_the_limit_is_refused_as_it_arrives_keeping_the_other_fields(
    client: Client, settings: Any, unparsed: None
) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 64 * 1024
    upload = SimpleUploadedFile("big.csv", _big_csv(200 * 1024), content_type="text/csv")
    # The fields after the file in the request are still read.
    data = _full_form(kind="file", company="Acme", upload=upload, locations="Berlin")

    response = client.post(NEW, data)

    assert response.status_code == 200
    assert not Source.objects.exists() and not UploadPart.objects.exists()
    form = response.context["form"]
    assert form.errors["upload"] == [
        "This file cannot be used: 'big.csv' is larger than the 64 KB limit "
        "(INTAKE_UPLOAD_MAX_BYTES)."
    ]
    assert form["locations"].value() == "Berlin"


def test_the_form_says_the_limit_and_carries_it_for_the_page_to_check(
    client: Client, settings: Any
) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 3 * 1024 * 1024
    html = client.get(NEW).content.decode()
    assert "At most 3 MB." in html
    assert 'data-max-bytes="3145728"' in html
    assert 'data-too-big="is larger than the 3 MB limit (INTAKE_UPLOAD_MAX_BYTES)."' in html
    assert "js/upload-limit.js" in html


def test_the_upload_check_refuses_a_file_over_the_limit_without_parsing_it(
    client: Client, settings: Any, unparsed: None
) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 64 * 1024
    upload = SimpleUploadedFile("big.csv", _big_csv(200 * 1024), content_type="text/csv")

    response = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and 'data-role="file-error"' in html
    assert "&#x27;big.csv&#x27; is larger than the 64 KB limit (INTAKE_UPLOAD_MAX_BYTES)." in html


def test_a_request_declaring_more_than_a_file_and_its_form_is_refused_unread(
    client: Client, settings: Any, unparsed: None
) -> None:
    settings.INTAKE_UPLOAD_MAX_BYTES = 64 * 1024
    # Beyond the file limit and the room for the other fields (DATA_UPLOAD_MAX_MEMORY_SIZE).
    upload = SimpleUploadedFile("big.csv", _big_csv(3 * 1024 * 1024), content_type="text/csv")

    response = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX)

    assert "The file is larger than the 64 KB limit" in response.content.decode()


# --- the upload check fragment -------------------------------------------------------------------


def test_the_upload_check_fragment_lists_row_errors(client: Client) -> None:
    upload = SimpleUploadedFile("jobs.csv", _csv_with_a_bad_row(), content_type="text/csv")
    response = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert '<div id="upload-check"' in html and "<html" not in html
    assert "1 of 3 rows has errors;" in html
    assert 'name="save_anyway"' in html
    assert not Source.objects.exists()


def test_the_upload_check_fragment_shows_a_whole_file_error(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.INTAKE_URL_LIST_MAX = 5
    urls = url_list_csv([f"https://jobs.example.com/{n}" for n in range(6)])
    upload = SimpleUploadedFile("urls.csv", urls, content_type="text/csv")
    html = client.post(CHECK, {"kind": "urls", "upload": upload}, **HTMX).content.decode()
    assert 'data-role="file-error"' in html and 'role="alert"' in html
    assert "cannot be used" in html
    assert 'name="save_anyway"' not in html


def test_the_upload_check_fragment_reports_a_good_file(client: Client) -> None:
    upload = SimpleUploadedFile("jobs.csv", postings_csv([posting_row(1)]))
    html = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX).content.decode()
    assert "All 1 row is good." in html


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        # It grew the web process to 23 GB as soon as the file was chosen.
        ("deep.json", b"[" * 200_000, "nested deeper than 512 levels: it cannot be read"),
        # Named .txt, its format is sniffed from a first line of 4,096 "[".
        ("deep.txt", b"[" * 200_000, "nested deeper than 512 levels: it cannot be read"),
    ],
)
def test_the_upload_check_refuses_deep_json_with_a_message(
    client: Client, name: str, data: bytes, message: str
) -> None:
    upload = SimpleUploadedFile(name, data)
    response = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX)
    assert response.status_code == 200
    assert message in response.content.decode()


def test_the_upload_check_reports_a_deep_jsonl_line_as_a_row_error(client: Client) -> None:
    data = b'{"id": "1", "title": "A"}\n' + b"[" * 100_000 + b"\n"
    upload = SimpleUploadedFile("jobs.jsonl", data)
    response = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "1 of 2 rows has errors;" in html and "nested deeper than 64 levels" in html


def test_the_upload_check_accepts_a_csv_with_a_stray_nul(client: Client) -> None:
    # A single NUL used to refuse the whole file as binary.
    data = postings_csv([posting_row(1, title="Chef\x00"), posting_row(2)])
    upload = SimpleUploadedFile("jobs.csv", data)
    html = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX).content.decode()
    assert "All 2 rows are good." in html


def test_the_upload_check_refuses_a_spreadsheet(client: Client) -> None:
    upload = SimpleUploadedFile("jobs.xlsx", b"PK\x03\x04binary")
    html = client.post(CHECK, {"kind": "file", "upload": upload}, **HTMX).content.decode()
    assert "is not a CSV, JSON or JSONL file" in html


# --- edit, toggle, delete ------------------------------------------------------------------------


def test_edit_changes_filters_and_keeps_kind_and_identifier(client: Client, user: Any) -> None:
    source = _source(user)
    url = reverse("ingestion:source_edit", args=[source.pk])
    page = client.get(url).content.decode()
    assert 'name="identifier"' not in page and 'name="kind"' not in page
    assert "Greenhouse board" in page

    response = client.post(
        url,
        _full_form(
            company="Acme Inc",
            include_keywords="python",
            exclude_keywords="intern, sales",
            locations="Berlin",
            remote_only="on",
            kind="lever",
            identifier="other",
        ),  # fmt: skip
    )
    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.kind, source.identifier, source.company) == ("greenhouse", "acme", "Acme Inc")
    assert source.filters() == {
        "include_keywords": ["python"],
        "exclude_keywords": ["intern", "sales"],
        "locations": ["Berlin"],
        "remote_only": True,
    }


def test_edit_refuses_an_empty_company(client: Client, user: Any) -> None:
    source = _source(user)
    response = client.post(reverse("ingestion:source_edit", args=[source.pk]), _full_form())
    assert response.context["form"].errors["company"]
    source.refresh_from_db()
    assert source.company == "Acme"


def test_edit_replaces_a_file_after_the_same_check(client: Client, user: Any) -> None:
    source = _source(user, kind="file", identifier="jobs.csv", upload_name="jobs.csv")
    url = reverse("ingestion:source_edit", args=[source.pk])
    bad = SimpleUploadedFile("new.csv", _csv_with_a_bad_row())
    response = client.post(url, _full_form(company="Acme", upload=bad))
    assert response.status_code == 200 and response.context["report"].bad == 1
    assert not UploadPart.objects.filter(source=source).exists()

    bad = SimpleUploadedFile("new.csv", _csv_with_a_bad_row())
    response = client.post(url, _full_form(company="Acme", upload=bad, save_anyway="on"))
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.upload_name == "new.csv"
    assert UploadPart.objects.filter(source=source).exists()


def test_toggle_flips_enabled_and_returns_the_row_over_htmx(client: Client, user: Any) -> None:
    source = _source(user)
    url = reverse("ingestion:source_toggle", args=[source.pk])
    response = client.post(url, **HTMX)
    html = response.content.decode()
    source.refresh_from_db()
    assert not source.enabled
    assert f'<tr id="source-{source.pk}"' in html and "Disabled" in html
    assert f'id="select-{source.pk}">' in html  # a disabled source is not selected

    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == CONFIGURE
    source.refresh_from_db()
    assert source.enabled


def test_toggle_and_delete_are_post_only(client: Client, user: Any) -> None:
    source = _source(user)
    for name in ("source_toggle", "source_delete"):
        assert client.get(reverse(f"ingestion:{name}", args=[source.pk])).status_code == 405


def test_delete_keeps_the_jobs_and_says_so(client: Client, user: Any) -> None:
    source = _source(user)
    job = _job(source, 1)
    response = client.post(reverse("ingestion:source_delete", args=[source.pk]), follow=True)
    assert not Source.objects.filter(pk=source.pk).exists()
    job.refresh_from_db()
    assert job.source is None
    assert "Deleted source Acme; its jobs are kept." in response.content.decode()


def test_delete_over_htmx_removes_the_row(client: Client, user: Any) -> None:
    source = _source(user)
    _source(user, company="Globex", identifier="globex")
    response = client.post(reverse("ingestion:source_delete", args=[source.pk]), **HTMX)
    html = response.content.decode()
    assert 'id="configure-status"' in html and "its jobs are kept" in html
    assert "<tr" not in html and 'id="source-table"' not in html


def test_deleting_the_last_source_over_htmx_brings_back_the_empty_state(
    client: Client, user: Any
) -> None:
    source = _source(user)
    response = client.post(reverse("ingestion:source_delete", args=[source.pk]), **HTMX)
    html = response.content.decode()
    assert 'id="source-table" hx-swap-oob="true"' in html
    assert "No sources yet" in html


@pytest.mark.parametrize("name", ["source_edit", "source_delete", "source_toggle"])
def test_another_users_source_is_a_404(client: Client, other_user: Any, name: str) -> None:
    theirs = _source(other_user)
    url = reverse(f"ingestion:{name}", args=[theirs.pk])
    assert client.post(url, _full_form(company="Mine now")).status_code == 404
    if name == "source_edit":
        assert client.get(url).status_code == 404
    theirs.refresh_from_db()
    assert (theirs.company, theirs.enabled) == ("Acme", True)


def test_the_form_lists_the_accepted_columns(client: Client) -> None:
    html = client.get(NEW).content.decode()
    columns = re.search(r'data-role="upload-columns">(.*?)</details>', html, re.S)
    assert columns is not None
    for name in ("external_id", "title", "url", "description", "posted_at", "salary_currency"):
        assert f"<code>{name}</code>" in columns.group(1)


def test_the_listed_columns_keep_up_with_the_file_adapter(client: Client) -> None:
    # The page's list is written for people; this keeps it true as the adapter learns names.
    from ingestion.adapters import file_rows

    html = client.get(NEW).content.decode()
    names = {*file_rows.REQUIRED, *file_rows.ALIASES, *file_rows.ALIASES.values()}
    # "externalid" is "external_id" written without its separator, which the page says works.
    spelled = {name for name in names if name.replace("_", "") != name}
    for name in names - {n.replace("_", "") for n in spelled}:
        assert f"<code>{name}</code>" in html, name

"""The board adapters (Greenhouse, Lever, Ashby) against a real local server answering in each
public API's shape, and the recognition of pasted board URLs."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ingestion.adapters.ashby import AshbyAdapter
from ingestion.adapters.base import Posting, SourceFailed
from ingestion.adapters.greenhouse import GreenhouseAdapter, unescape_once
from ingestion.adapters.lever import LeverAdapter
from ingestion.adapters.recognize import recognize_careers_url
from ingestion.fetching import Fetcher
from ingestion.models import Source
from tests.fixture_server import FixtureServer, Reply, Request
from tests.ingestion.boards import (
    ashby_job,
    greenhouse_job,
    greenhouse_jobs,
    lever_posting,
    lever_postings,
    mount_ashby,
    mount_greenhouse,
    mount_lever,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def boards(settings: Any, fixture_server: FixtureServer) -> FixtureServer:
    """The fixture server standing in for every board API's host."""
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    settings.INTAKE_GREENHOUSE_URL = fixture_server.base_url
    settings.INTAKE_LEVER_URL = fixture_server.base_url
    settings.INTAKE_LEVER_EU_URL = fixture_server.url("/eu")
    settings.INTAKE_ASHBY_URL = fixture_server.base_url
    return fixture_server


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(store=False) as fetcher:
        yield fetcher


def _source(owner: Any, kind: str, identifier: str = "acme", **options: Any) -> Source:
    return Source.objects.create(
        owner=owner, company="Acme", kind=kind, identifier=identifier, options=options
    )


def _postings(adapter: Any) -> list[Posting]:
    return list(adapter.list_postings())


# --- Greenhouse ------------------------------------------------------------------------------


def test_greenhouse_lists_a_board_with_its_fields(boards, fetcher, user):
    job = greenhouse_job(
        101,
        "Backend Engineer",
        location="Berlin, Germany",
        departments=["Engineering", "Platform"],
        employment_type="Full-time",
        first_published="2025-01-10T09:00:00-05:00",
    )
    mount_greenhouse(boards, "acme", [job, greenhouse_job(102)])

    postings = _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))

    assert [p.external_id for p in postings] == ["101", "102"]
    first = postings[0]
    assert first.title == "Backend Engineer"
    assert first.url == "https://job-boards.greenhouse.io/acme/jobs/101"
    assert first.location == "Berlin, Germany"
    assert first.department == "Engineering, Platform"
    assert first.employment_type == "Full-time"
    assert first.posted_at == datetime(2025, 1, 10, 14, 0, tzinfo=UTC)
    assert first.description_html.startswith("<p><strong>")
    assert not first.needs_detail and not first.invalid_reasons
    assert boards.requests[0].arg("content") == "true"


def test_greenhouse_unescapes_content_exactly_once(boards, fetcher, user):
    # The company wrote the literal text "&lt;b&gt;" (HTML "&amp;lt;b&amp;gt;"); the API
    # escapes the whole HTML once more for transport.
    content = "<p>Use the &lt;b&gt; tag &amp; friends</p>"
    mount_greenhouse(boards, "acme", [greenhouse_job(1, content=content)])

    (posting,) = _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))

    assert posting.description_html == content


@pytest.mark.parametrize(
    "escaped",
    [
        "&lt;p class=&quot;intro&quot;&gt;Rock &amp;amp; roll, it&#39;s &amp;lt;b&amp;gt;&lt;/p&gt;"
        "&lt;ul&gt;&lt;li&gt;one&lt;/li&gt;&lt;/ul&gt;",
        "&lt;p&gt;caf&eacute;&amp;nbsp;&#x27;quoted&#x27; &copy 2025 &amp;#169;&lt;/p&gt;",
        "no references at all",
        "&amp;&amp;amp;&amp;lt;&lt;&",
        # Each way the replacements stop early or fall back (ingestion.adapters.greenhouse).
        "&lt;b&gt;only tags&lt;/b&gt;",
        "&lt;b&gt; and a stray & after them",
        "&quot;quoted&quot; &lt;i&gt;",
        "it&#39;s &#x27;x&#x27; &#390; &#x270;",
        "&amp;amp; &amp;lt; &amp;",
        "&amp; &ampx; &amp",
        "&lt;&amp;lt;&gt;&amp;gt;&quot;&amp;quot;",
        "&l&gt;t; &&lt;lt; &am&lt;p;",
    ],
)
def test_greenhouse_fast_unescape_matches_html_unescape(escaped):
    assert unescape_once(escaped) == html.unescape(escaped)


def test_greenhouse_fast_unescape_matches_html_unescape_on_random_text():
    import random

    rng = random.Random(3)
    pieces = ["&", "amp;", "lt;", "gt;", "quot;", "#39;", "#x27;", "&amp;lt;", "&#x26;", "&nbsp;"]
    pieces += ["a", ";", " ", "&lt;p&gt;", "&quot;", "&amp;"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert unescape_once(text) == html.unescape(text), text


def test_greenhouse_prefers_first_published_over_updated_at(boards, fetcher, user):
    mount_greenhouse(
        boards,
        "acme",
        [
            greenhouse_job(
                1, first_published="2024-06-01T00:00:00Z", updated_at="2025-02-02T00:00:00Z"
            ),
            greenhouse_job(2, updated_at="2025-02-02T00:00:00Z", omit=["first_published"]),
        ],
    )

    first, second = _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))

    assert first.posted_at == datetime(2024, 6, 1, tzinfo=UTC)
    assert second.posted_at == datetime(2025, 2, 2, tzinfo=UTC)


def test_greenhouse_missing_board_fails_the_source_naming_it(boards, fetcher, user):
    adapter = GreenhouseAdapter(_source(user, "greenhouse", "nosuchboard"), fetcher)

    with pytest.raises(
        SourceFailed, match=r"Greenhouse board 'nosuchboard' does not exist \(404\)"
    ):
        _postings(adapter)


def test_greenhouse_network_error_fails_the_source(settings, fetcher, user):
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    settings.INTAKE_FETCH_TRIES, settings.INTAKE_FETCH_BACKOFF = 1, 0
    settings.INTAKE_GREENHOUSE_URL = "http://127.0.0.1:9"  # discard port: connection refused

    with pytest.raises(SourceFailed, match=r"Greenhouse board 'acme' could not be read"):
        _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))


def test_greenhouse_answer_that_is_not_json_fails_the_source(boards, fetcher, user):
    boards.route("/v1/boards/acme/jobs", body="<html>Maintenance</html>")

    with pytest.raises(SourceFailed, match="not the job board API's JSON"):
        _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))


def test_greenhouse_job_nested_too_deep_is_invalid_and_the_others_listed(boards, fetcher, user):
    deep: Any = "x"
    for _ in range(100):
        deep = [deep]
    mount_greenhouse(boards, "acme", [greenhouse_job(1), {**greenhouse_job(2), "x": deep}])

    first, second = _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))

    assert first.external_id == "1" and not first.invalid_reasons
    assert second.invalid_reasons == ["job: nested deeper than 64 levels"]


def test_greenhouse_board_nested_beyond_reading_fails_the_source_at_once(boards, fetcher, user):
    # 100,000 levels: ijson alone wants tens of GB for its prefixes.
    boards.route("/v1/boards/acme/jobs", body=b'{"jobs": [' + b"[" * 100_000)

    with pytest.raises(SourceFailed, match="nested deeper than 512 levels"):
        _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))


def test_ashby_job_nested_too_deep_is_invalid(boards, fetcher, user):
    deep: Any = {}
    for _ in range(100):
        deep = {"a": deep}
    mount_ashby(boards, "acme", [{**ashby_job("a1"), "x": deep}, ashby_job("a2")])

    first, second = _postings(AshbyAdapter(_source(user, "ashby"), fetcher))

    assert first.invalid_reasons == ["job: nested deeper than 64 levels"]
    assert second.external_id == "a2" and not second.invalid_reasons


def test_lever_page_nested_too_deep_fails_the_source_with_a_message(boards, fetcher, user):
    boards.route("/v0/postings/acme", body=b"[" * 100_000, content_type="application/json")

    with pytest.raises(SourceFailed, match="did not answer with valid JSON: nested deeper than 64"):
        _postings(LeverAdapter(_source(user, "lever"), fetcher))


def test_greenhouse_empty_board_lists_nothing_without_failing(boards, fetcher, user):
    mount_greenhouse(boards, "acme", [])

    assert _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher)) == []


def test_greenhouse_answer_without_a_jobs_list_fails_rather_than_reads_as_empty(
    boards, fetcher, user
):
    boards.route("/v1/boards/acme/jobs", json={"status": "ok"})

    with pytest.raises(SourceFailed, match="answered without a list of jobs"):
        _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))


def test_greenhouse_listing_without_content_needs_detail_and_fetches_it(boards, fetcher, user):
    job = greenhouse_job(
        7, "Data Scientist", content="<p>Models &amp; data</p>", pay=(120000, 150000, "USD")
    )
    mount_greenhouse(boards, "acme", [job], listing_content=False)
    adapter = GreenhouseAdapter(_source(user, "greenhouse"), fetcher)

    (listed,) = _postings(adapter)
    assert listed.needs_detail and listed.description_html == ""

    detailed = adapter.fetch_detail(listed)

    assert not detailed.needs_detail
    assert detailed.description_html == "<p>Models &amp; data</p>"
    assert (detailed.salary_min, detailed.salary_max) == (Decimal(120000), Decimal(150000))
    assert (detailed.salary_currency, detailed.salary_period) == ("USD", "year")
    assert boards.hits["/v1/boards/acme/jobs/7"] == 1


def test_greenhouse_job_lacking_a_title_is_yielded_invalid(boards, fetcher, user):
    mount_greenhouse(boards, "acme", [greenhouse_job(1, omit=["title"]), greenhouse_job(2)])

    first, second = _postings(GreenhouseAdapter(_source(user, "greenhouse"), fetcher))

    assert first.external_id == "1" and first.invalid_reasons == ["title: missing"]
    assert not second.invalid_reasons


def test_greenhouse_streams_a_large_board_without_holding_it(boards, fetcher, user):
    written: list[int] = []

    def board() -> Iterator[dict[str, Any]]:
        for job in greenhouse_jobs(3000, size=2000):
            written.append(job["id"])
            yield job

    mount_greenhouse(boards, "acme", board)
    postings = GreenhouseAdapter(_source(user, "greenhouse"), fetcher).list_postings()

    # The first posting arrives while most of the board is still to be written.
    first = next(postings)
    assert first.external_id == "1" and len(written) < 3000
    assert sum(1 for _ in postings) == 2999


# --- Lever -----------------------------------------------------------------------------------


def test_lever_pages_with_skip_and_limit_until_a_short_page(boards, fetcher, user):
    mount_lever(boards, "acme", lever_postings(250))
    adapter = LeverAdapter(_source(user, "lever"), fetcher)

    postings = _postings(adapter)

    assert len({p.external_id for p in postings}) == 250
    pages = [(r.arg("skip"), r.arg("limit"), r.arg("mode")) for r in boards.requests]
    assert pages == [("0", "100", "json"), ("100", "100", "json"), ("200", "100", "json")]


def test_lever_maps_fields_and_epoch_milliseconds(boards, fetcher, user):
    posting = lever_posting(
        "5d3f0e4a-1111-4c3e-9c53-2f1b8d9d0a01",
        "Site Reliability Engineer",
        location="Toronto, ON",
        team="Infrastructure",
        department="Engineering",
        commitment="Full-time",
        workplace_type="hybrid",
        created_at=1_700_000_000_123,
        salary=(90000, 120000, "CAD", "per-year-salary"),
    )
    mount_lever(boards, "acme", [posting])

    (mapped,) = _postings(LeverAdapter(_source(user, "lever"), fetcher))

    assert mapped.external_id == "5d3f0e4a-1111-4c3e-9c53-2f1b8d9d0a01"
    assert mapped.title == "Site Reliability Engineer"
    assert mapped.url == "https://jobs.lever.co/acme/5d3f0e4a-1111-4c3e-9c53-2f1b8d9d0a01"
    assert (mapped.location, mapped.department) == ("Toronto, ON", "Engineering")
    assert (mapped.workplace_type, mapped.remote) == ("hybrid", False)
    assert mapped.employment_type == "Full-time"
    assert mapped.posted_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert (mapped.salary_min, mapped.salary_max) == (Decimal(90000), Decimal(120000))
    assert (mapped.salary_currency, mapped.salary_period) == ("CAD", "year")


def test_lever_description_includes_the_lists_between_opening_and_closing(boards, fetcher, user):
    posting = lever_posting(
        description="<div>We build rockets.</div>",
        lists=[("Skills & tools", ["Python", "<b>Go</b>"]), ("Perks", ["Lunch"])],
        additional="<div>Apply now.</div>",
    )
    mount_lever(boards, "acme", [posting])

    (mapped,) = _postings(LeverAdapter(_source(user, "lever"), fetcher))

    assert mapped.description_html == (
        "<div>We build rockets.</div>\n"
        "<h3>Skills &amp; tools</h3>\n<ul><li>Python</li><li><b>Go</b></li></ul>\n"
        "<h3>Perks</h3>\n<ul><li>Lunch</li></ul>\n"
        "<div>Apply now.</div>"
    )


def test_lever_eu_region_reads_the_eu_host(boards, fetcher, user):
    mount_lever(boards, "acme", lever_postings(3), prefix="/eu")

    postings = _postings(LeverAdapter(_source(user, "lever", region="eu"), fetcher))

    assert len(postings) == 3
    assert [r.path for r in boards.requests] == ["/eu/v0/postings/acme"]


def test_lever_missing_site_fails_the_source_naming_it(boards, fetcher, user):
    with pytest.raises(SourceFailed, match=r"Lever site 'ghost' does not exist \(404\)"):
        _postings(LeverAdapter(_source(user, "lever", "ghost"), fetcher))


def test_lever_stops_with_an_error_when_the_server_ignores_skip(boards, fetcher, user):
    page = [lever_posting(seed=n) for n in range(100)]
    boards.route("/v0/postings/acme", json=page)

    with pytest.raises(SourceFailed, match="already listed"):
        _postings(LeverAdapter(_source(user, "lever"), fetcher))
    assert boards.hits["/v0/postings/acme"] == 2


def test_lever_stops_after_the_page_cap(boards, fetcher, user, monkeypatch):
    counter = iter(range(10**6))

    def endless(request: Request) -> Reply:
        import json

        page = [lever_posting(seed=next(counter)) for _ in range(int(request.arg("limit")))]
        return Reply(200, json.dumps(page).encode(), {"Content-Type": "application/json"})

    boards.route("/v0/postings/acme", handler=endless)
    monkeypatch.setattr(LeverAdapter, "max_pages", 3)
    monkeypatch.setattr(LeverAdapter, "page_size", 5)

    with pytest.raises(SourceFailed, match="kept answering full pages after 3 pages"):
        _postings(LeverAdapter(_source(user, "lever"), fetcher))


def test_lever_answer_that_is_not_a_list_fails_the_source(boards, fetcher, user):
    boards.route("/v0/postings/acme", json={"ok": False, "error": "Rate limited"})

    with pytest.raises(SourceFailed, match="something other than a list of postings"):
        _postings(LeverAdapter(_source(user, "lever"), fetcher))


def test_lever_posting_lacking_a_title_is_yielded_invalid(boards, fetcher, user):
    mount_lever(boards, "acme", [lever_posting(seed=1, omit=["text"]), lever_posting(seed=2)])

    first, second = _postings(LeverAdapter(_source(user, "lever"), fetcher))

    assert first.invalid_reasons == ["title: missing"] and first.external_id
    assert not second.invalid_reasons


# --- Ashby -----------------------------------------------------------------------------------


def test_ashby_lists_a_board_with_its_fields(boards, fetcher, user):
    job = ashby_job(
        "0b7c3e6a-2222-4a55-8f43-6a1d2c3b4e5f",
        "Product Designer",
        location="New York, NY",
        department="Design",
        employment_type="Contract",
        published_at="2025-02-14T16:03:11.312+00:00",
        description="<p>Design with us.</p>",
    )
    mount_ashby(boards, "acme", [job])

    (posting,) = _postings(AshbyAdapter(_source(user, "ashby"), fetcher))

    assert posting.external_id == "0b7c3e6a-2222-4a55-8f43-6a1d2c3b4e5f"
    assert posting.title == "Product Designer"
    assert posting.url == "https://jobs.ashbyhq.com/acme/0b7c3e6a-2222-4a55-8f43-6a1d2c3b4e5f"
    assert (posting.location, posting.department) == ("New York, NY", "Design")
    assert posting.employment_type == "Contract"
    assert posting.description_html == "<p>Design with us.</p>"
    assert posting.posted_at == datetime(2025, 2, 14, 16, 3, 11, 312000, tzinfo=UTC)
    assert boards.requests[0].arg("includeCompensation") == "true"


def test_ashby_skips_unlisted_jobs(boards, fetcher, user):
    mount_ashby(
        boards, "acme", [ashby_job(seed=1), ashby_job(seed=2, is_listed=False), ashby_job(seed=3)]
    )

    postings = _postings(AshbyAdapter(_source(user, "ashby"), fetcher))

    assert [p.external_id for p in postings] == [
        ashby_job(seed=1)["id"],
        ashby_job(seed=3)["id"],
    ]


def test_ashby_prefers_workplace_type_over_is_remote(boards, fetcher, user):
    mount_ashby(
        boards,
        "acme",
        [
            ashby_job(seed=1, workplace_type="Hybrid", is_remote=True),
            ashby_job(seed=2, workplace_type="OnSite", is_remote=True),
            ashby_job(seed=3, workplace_type=None, is_remote=True),
        ],
    )

    hybrid, onsite, legacy = _postings(AshbyAdapter(_source(user, "ashby"), fetcher))

    assert (hybrid.workplace_type, hybrid.remote) == ("hybrid", False)
    assert (onsite.workplace_type, onsite.remote) == ("onsite", False)
    assert (legacy.workplace_type, legacy.remote) == ("remote", True)


def test_ashby_maps_the_salary_component_of_compensation(boards, fetcher, user):
    mount_ashby(boards, "acme", [ashby_job(seed=1, compensation=(140000, 175000, "USD", "1 YEAR"))])

    (posting,) = _postings(AshbyAdapter(_source(user, "ashby"), fetcher))

    assert (posting.salary_min, posting.salary_max) == (Decimal(140000), Decimal(175000))
    assert (posting.salary_currency, posting.salary_period) == ("USD", "year")


def test_ashby_keeps_the_tier_summary_when_compensation_has_no_salary(boards, fetcher, user):
    job = ashby_job(seed=1)
    job["compensation"] = {
        "compensationTierSummary": "Competitive • Offers Equity",
        "summaryComponents": [],
    }
    mount_ashby(boards, "acme", [job])

    (posting,) = _postings(AshbyAdapter(_source(user, "ashby"), fetcher))

    assert posting.salary_min is None
    assert posting.salary_text == "Competitive • Offers Equity"


def test_ashby_missing_board_fails_the_source_naming_it(boards, fetcher, user):
    with pytest.raises(SourceFailed, match=r"Ashby job board 'ghost' does not exist \(404\)"):
        _postings(AshbyAdapter(_source(user, "ashby", "ghost"), fetcher))


def test_ashby_answer_without_a_jobs_list_fails_the_source(boards, fetcher, user):
    boards.route("/posting-api/job-board/acme", json={"success": False, "errors": ["nope"]})

    with pytest.raises(SourceFailed, match="Ashby job board 'acme' answered without a list"):
        _postings(AshbyAdapter(_source(user, "ashby"), fetcher))


def test_ashby_job_lacking_a_title_is_yielded_invalid(boards, fetcher, user):
    mount_ashby(boards, "acme", [ashby_job(seed=1, omit=["title"])])

    (posting,) = _postings(AshbyAdapter(_source(user, "ashby"), fetcher))

    assert posting.invalid_reasons == ["title: missing"]


# --- recognizing pasted URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://boards.greenhouse.io/acme", ("greenhouse", "acme", {})),
        (
            "https://boards.greenhouse.io/acme/jobs/4012345?gh_src=x#apply",
            ("greenhouse", "acme", {}),
        ),
        ("https://job-boards.greenhouse.io/acme", ("greenhouse", "acme", {})),
        ("HTTPS://Job-Boards.Greenhouse.IO/acme/", ("greenhouse", "acme", {})),
        ("https://boards.greenhouse.io/embed/job_board?for=acme", ("greenhouse", "acme", {})),
        (
            "https://boards-api.greenhouse.io/v1/boards/acme/jobs?content=true",
            ("greenhouse", "acme", {}),
        ),
        ("boards.greenhouse.io/acme", ("greenhouse", "acme", {})),
        ("https://jobs.lever.co/acme", ("lever", "acme", {})),
        (
            "https://jobs.lever.co/acme/5d3f0e4a-1111-4c3e-9c53-2f1b8d9d0a01/apply",
            ("lever", "acme", {}),
        ),
        ("https://jobs.eu.lever.co/acme", ("lever", "acme", {"region": "eu"})),
        ("https://api.lever.co/v0/postings/acme?mode=json", ("lever", "acme", {})),
        ("https://jobs.ashbyhq.com/acme", ("ashby", "acme", {})),
        ("https://jobs.ashbyhq.com/Acme.io/0b7c3e6a-2222/application", ("ashby", "Acme.io", {})),
        (
            "https://api.ashbyhq.com/posting-api/job-board/acme?includeCompensation=true",
            ("ashby", "acme", {}),
        ),
    ],
)
def test_recognize_reads_each_board_url_form(url, expected):
    assert recognize_careers_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "acme",
        "https://example.com/careers",
        "https://boards.greenhouse.io/",
        "https://boards.greenhouse.io/embed/job_board",
        "https://boards-api.greenhouse.io/v1/other/acme",
        "https://jobs.lever.co/",
        "https://jobs.lever.co/ac%20me",
        "https://jobs.ashbyhq.com/..",
        "https://api.ashbyhq.com/posting-api/other/acme",
        "ftp://jobs.lever.co/acme",
        "https://jobs.lever.co.evil.example/acme",
        "https://acme.greenhouse.io/",
        "not a url at all",
    ],
)
def test_recognize_returns_none_for_anything_else(url):
    assert recognize_careers_url(url) is None


def test_clean_identifier_accepts_a_token_or_a_pasted_url_of_its_kind():
    assert GreenhouseAdapter.clean_identifier("  acme ") == "acme"
    assert GreenhouseAdapter.clean_identifier("https://boards.greenhouse.io/acme/jobs/1") == "acme"
    assert LeverAdapter.clean_identifier("https://jobs.eu.lever.co/acme") == "acme"
    assert AshbyAdapter.clean_identifier("jobs.ashbyhq.com/acme") == "acme"


@pytest.mark.parametrize(
    ("adapter", "identifier", "message"),
    [
        (GreenhouseAdapter, "", "Enter the Greenhouse board token"),
        (GreenhouseAdapter, "ac me", "not a valid Greenhouse board token"),
        (LeverAdapter, "https://boards.greenhouse.io/acme", "That URL points to Greenhouse"),
        (AshbyAdapter, "https://example.com/careers", "No Ashby board found"),
    ],
)
def test_clean_identifier_refuses_with_a_message(adapter, identifier, message):
    with pytest.raises(ValueError, match=message):
        adapter.clean_identifier(identifier)

"""The JSON-LD careers site adapter and the URL list adapter against a real local server, and
the JSON-LD parsing they share."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ingestion.adapters.base import Posting, SourceFailed
from ingestion.adapters.jsonld import (
    JsonLdAdapter,
    PageNotRead,
    page_links,
    postings_from_html,
)
from ingestion.adapters.uploaded import upload_store
from ingestion.adapters.urllist import UrlListAdapter
from ingestion.fetching import Fetcher
from ingestion.models import Source
from ingestion.uploads import UploadError
from tests.fixture_server import FixtureServer, Reply
from tests.ingestion.pages import (
    careers_page,
    jsonld_posting,
    jsonld_posting_page,
    jsonld_script,
    mount_careers_site,
    mount_posting_pages,
    url_list_csv,
    url_list_json,
)

pytestmark = pytest.mark.django_db

PAGE = "https://careers.acme.example/jobs/7"


@pytest.fixture
def server(settings: Any, fixture_server: FixtureServer) -> FixtureServer:
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    return fixture_server


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(store=False) as fetcher:
        yield fetcher


def _source(user: Any, kind: str, identifier: str) -> Source:
    return Source.objects.create(
        owner=user, company="Acme Robotics", kind=kind, identifier=identifier
    )


def _jsonld_list(user: Any, fetcher: Fetcher, url: str) -> list[Posting]:
    return list(JsonLdAdapter(_source(user, "jsonld", url), fetcher).list_postings())


def _url_list(user: Any, fetcher: Fetcher, name: str, data: bytes) -> list[Posting]:
    source = _source(user, "urls", name)
    upload_store(source=source, name=name, fileobj=io.BytesIO(data))
    return list(UrlListAdapter(source, fetcher).list_postings())


# --- parsing JSON-LD ----------------------------------------------------------------------------


def test_a_complete_job_posting_maps_to_every_field() -> None:
    (posting,) = postings_from_html(jsonld_posting_page(jsonld_posting(3)), PAGE)

    assert posting.external_id == "AR-00003"
    assert posting.title == "Lead Site Reliability Engineer"
    assert posting.url == PAGE
    assert posting.location == "San Francisco, CA, US"
    assert posting.employment_type == "PART_TIME"
    assert posting.posted_at == datetime(2025, 2, 28, tzinfo=UTC)
    assert posting.valid_through == datetime(2025, 5, 2, 9, 30, tzinfo=UTC)
    assert (posting.salary_min, posting.salary_max) == (Decimal("53000"), Decimal("73000"))
    assert (posting.salary_currency, posting.salary_period) == ("USD", "year")
    assert posting.description_html.startswith("<h2>About the role</h2>")
    assert posting.invalid_reasons == []


def test_postings_in_several_script_blocks_are_all_found() -> None:
    html = jsonld_posting_page(jsonld_posting(1), jsonld_posting(2), jsonld_posting(3))

    postings = postings_from_html(html, PAGE)

    assert [p.external_id for p in postings] == ["AR-00001", "AR-00002", "AR-00003"]


def test_postings_in_a_graph_and_in_a_top_level_array_are_found() -> None:
    graph = {"@context": "https://schema.org", "@graph": [{"@type": "WebPage"}, jsonld_posting(1)]}
    array = [{"@type": "BreadcrumbList"}, jsonld_posting(2)]

    postings = postings_from_html(jsonld_posting_page(graph, array), PAGE)

    assert [p.external_id for p in postings] == ["AR-00001", "AR-00002"]


def test_a_posting_nested_in_another_node_is_found() -> None:
    page = {"@context": "https://schema.org", "@type": "WebPage", "mainEntity": jsonld_posting(4)}

    (posting,) = postings_from_html(jsonld_posting_page(page), PAGE)

    assert posting.external_id == "AR-00004"


def test_a_type_given_as_a_list_or_a_full_iri_is_recognized() -> None:
    listed = jsonld_posting(1)
    listed["@type"] = ["JobPosting", "Thing"]
    iri = jsonld_posting(2)
    iri["@type"] = "http://schema.org/JobPosting"
    iri["@context"] = {"@vocab": "http://schema.org/"}
    other = {"@context": ["https://schema.org", {"x": "y"}], "@type": "Organization"}

    postings = postings_from_html(jsonld_posting_page(listed, iri, other), PAGE)

    assert [p.external_id for p in postings] == ["AR-00001", "AR-00002"]


def test_a_malformed_block_is_skipped_and_the_good_one_beside_it_kept() -> None:
    broken = '{"@type": "JobPosting", "title": "Broken" "description": }'

    postings = postings_from_html(jsonld_posting_page(broken, jsonld_posting(5)), PAGE)

    assert [p.external_id for p in postings] == ["AR-00005"]


def test_a_block_nested_too_deep_is_skipped_and_the_good_one_beside_it_kept() -> None:
    # 100,000 levels: json.loads alone dies of a RecursionError (and its fix-ups with it).
    deep = "[" * 100_000
    escaped = "&#91;" * 1000  # becomes 1,000 levels only once the block is unescaped

    page = jsonld_posting_page(deep, escaped + "&quot;", jsonld_posting(5))
    postings = postings_from_html(page, PAGE)

    assert [p.external_id for p in postings] == ["AR-00005"]


def test_trailing_commas_html_comments_and_escaped_quotes_are_repaired() -> None:
    trailing = json.dumps(jsonld_posting(1))[:-1] + ", }"
    commented = "<!--\n" + json.dumps(jsonld_posting(2)) + "\n-->"
    escaped = json.dumps(jsonld_posting(3, title="R&D Engineer")).replace('"', "&quot;")

    postings = postings_from_html(jsonld_posting_page(trailing, commented, escaped), PAGE)

    assert [p.external_id for p in postings] == ["AR-00001", "AR-00002", "AR-00003"]
    assert postings[2].title == "R&D Engineer"


def test_html_entities_in_values_are_decoded_once() -> None:
    posting = jsonld_posting(
        1, title="Sales &amp; Marketing Lead", description="&lt;p&gt;Grow &amp;amp; win&lt;/p&gt;"
    )

    (parsed,) = postings_from_html(jsonld_posting_page(posting), PAGE)

    assert parsed.title == "Sales & Marketing Lead"
    assert parsed.description_html == "<p>Grow &amp; win</p>"


def test_missing_required_fields_make_the_posting_invalid_naming_each_field() -> None:
    posting = jsonld_posting(1, omit=["datePosted", "hiringOrganization", "jobLocation"])

    (parsed,) = postings_from_html(jsonld_posting_page(posting), PAGE)

    assert parsed.invalid_reasons == [
        "datePosted is missing",
        "hiringOrganization is missing",
        "jobLocation is missing (required unless jobLocationType is TELECOMMUTE with "
        "applicantLocationRequirements)",
    ]


def test_a_posting_without_title_or_description_is_invalid() -> None:
    (parsed,) = postings_from_html(
        jsonld_posting_page(jsonld_posting(1, omit=["title", "description"])), PAGE
    )

    assert parsed.invalid_reasons == ["title is missing", "description is missing"]


def test_a_telecommute_posting_is_remote_and_needs_no_job_location() -> None:
    (parsed,) = postings_from_html(jsonld_posting_page(jsonld_posting(1, telecommute=True)), PAGE)

    assert parsed.remote is True
    assert parsed.workplace_type == "remote"
    assert parsed.location == "Remote (Germany, Portugal)"
    assert parsed.invalid_reasons == []


def test_a_telecommute_posting_without_applicant_locations_needs_a_job_location() -> None:
    posting = jsonld_posting(1, telecommute=True, omit=["applicantLocationRequirements"])

    (parsed,) = postings_from_html(jsonld_posting_page(posting), PAGE)

    assert parsed.invalid_reasons[0].startswith("jobLocation is missing")


def test_several_locations_and_employment_types_are_joined() -> None:
    places = [
        {"@type": "Place", "address": {"addressLocality": "Berlin", "addressCountry": "DE"}},
        {"address": {"addressLocality": "Lisbon", "addressCountry": {"name": "PT"}}},
    ]
    posting = jsonld_posting(1, jobLocation=places, employmentType=["FULL_TIME", "CONTRACTOR"])

    (parsed,) = postings_from_html(jsonld_posting_page(posting), PAGE)

    assert parsed.location == "Berlin, DE; Lisbon, PT"
    assert parsed.employment_type == "FULL_TIME, CONTRACTOR"


def test_an_hourly_salary_with_a_single_value_is_read() -> None:
    value = {"@type": "QuantitativeValue", "value": "42.50", "unitText": "HOUR"}
    salary = {"@type": "MonetaryAmount", "currency": "usd", "value": value}

    (parsed,) = postings_from_html(jsonld_posting_page(jsonld_posting(1, baseSalary=salary)), PAGE)

    assert (parsed.salary_min, parsed.salary_max) == (Decimal("42.50"), Decimal("42.50"))
    assert (parsed.salary_currency, parsed.salary_period) == ("USD", "hour")


def test_an_identifier_given_as_a_string_is_used_and_without_one_the_page_url() -> None:
    html = jsonld_posting_page(
        jsonld_posting(1, identifier="req-77"), jsonld_posting(2, identifier=None)
    )

    first, second = postings_from_html(html, PAGE)

    assert first.external_id == "req-77"
    assert second.external_id == f"{PAGE}#2"


def test_page_links_keep_same_site_pages_and_skip_mail_script_fragments_and_files() -> None:
    html = careers_page(["/jobs/1", "/jobs/2#apply", "https://jobs.acme.example/jobs/3", "/jobs/1"])

    links = page_links(html, "https://careers.acme.example/careers")

    assert links == [
        "https://careers.acme.example/",
        "https://careers.acme.example/about",
        "https://careers.acme.example/jobs/1",
        "https://careers.acme.example/jobs/2",
        "https://jobs.acme.example/jobs/3",
    ]


# --- the careers site adapter -------------------------------------------------------------------


def test_a_careers_site_lists_the_postings_its_links_lead_to(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    url = mount_careers_site(server, [jsonld_posting(n) for n in (1, 2, 3)])

    postings = _jsonld_list(user, fetcher, url)

    assert [p.external_id for p in postings] == ["AR-00001", "AR-00002", "AR-00003"]
    assert postings[0].url == server.url("/jobs/1")
    assert server.hits["/about"] == 1  # followed, carries no JobPosting, dropped


def test_postings_on_the_careers_page_itself_are_used(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    inline = [jsonld_posting(8, url="/jobs/8"), jsonld_posting(9, url="/jobs/9")]
    url = mount_careers_site(server, [jsonld_posting(1)], inline=inline)

    postings = _jsonld_list(user, fetcher, url)

    assert sorted(p.external_id for p in postings) == ["AR-00001", "AR-00008", "AR-00009"]


def test_a_posting_linked_twice_is_listed_once(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    mount_posting_pages(server, [jsonld_posting(1)])
    server.route("/careers", body=careers_page(["/jobs/1", "/jobs/1?ref=nav"]))

    postings = _jsonld_list(user, fetcher, server.url("/careers"))

    assert [p.external_id for p in postings] == ["AR-00001"]


def test_postings_listed_only_in_a_json_ld_item_list_are_followed(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    mount_posting_pages(server, [jsonld_posting(1), jsonld_posting(2)])
    items = [
        {"@type": "ListItem", "position": 1, "url": "/jobs/1"},
        {"@type": "ListItem", "position": 2, "item": {"@type": "Thing", "url": "/jobs/2"}},
    ]
    item_list = {"@context": "https://schema.org", "@type": "ItemList", "itemListElement": items}
    server.route("/careers", body=jsonld_posting_page(item_list, title="Careers"))

    postings = _jsonld_list(user, fetcher, server.url("/careers"))

    assert [p.external_id for p in postings] == ["AR-00001", "AR-00002"]


def test_a_careers_page_without_postings_or_links_fails_the_source(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    server.route("/careers", body="<html><body><h1>No openings</h1></body></html>")

    with pytest.raises(SourceFailed, match="no JSON-LD JobPosting and no links"):
        _jsonld_list(user, fetcher, server.url("/careers"))


def test_a_missing_careers_page_fails_the_source(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    with pytest.raises(SourceFailed, match="Could not read the careers page .* 404"):
        _jsonld_list(user, fetcher, server.url("/careers"))


def test_linked_pages_that_fail_in_numbers_fail_the_listing_rather_than_expire_jobs(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    url = mount_careers_site(server, [jsonld_posting(n) for n in (1, 2, 3)])
    server.route("/jobs/2", body="down", status=503)

    with pytest.raises(SourceFailed, match="1 of the 5 pages linked .* could not be fetched"):
        _jsonld_list(user, fetcher, url)


def test_linked_gzip_bombs_stop_at_the_page_cap_and_fail_the_listing(
    server: FixtureServer, fetcher: Fetcher, user: Any, settings: Any
) -> None:
    settings.INTAKE_FETCH_PAGE_MAX_BYTES = 1024 * 1024
    url = mount_careers_site(server, [jsonld_posting(n) for n in (1, 2, 3)])
    bomb = Reply(200, b"<p>" * (20 * 1024 * 1024), {"Content-Type": "text/html"}, gzip=True)
    server.route("/jobs/2", handler=lambda request: bomb)

    with pytest.raises(SourceFailed, match=r"could not be fetched .*INTAKE_FETCH_PAGE_MAX_BYTES"):
        _jsonld_list(user, fetcher, url)


def test_a_page_with_too_many_tags_or_too_deep_nesting_is_not_parsed() -> None:
    too_many = "<b>" * 100_001
    too_deep = "<div>" * 1_001 + jsonld_script(jsonld_posting(1))
    fine = jsonld_posting_page(
        jsonld_posting(1),
        # Many tags that do not nest: void, self-closed (SVG) and self-closing (li, p) ones.
        body="<ul>" + "<li>x<br><img src=a.png>" * 3000 + "</ul>" + '<path d="M0"/>' * 3000,
    )

    with pytest.raises(PageNotRead, match="more than 100,000 HTML tags"):
        postings_from_html(too_many, PAGE)
    with pytest.raises(PageNotRead, match="nests HTML elements deeper than 1,000"):
        postings_from_html(too_deep, PAGE)
    assert [p.external_id for p in postings_from_html(fine, PAGE)] == ["AR-00001"]
    assert postings_from_html("<div>" * 1_000 + jsonld_script(jsonld_posting(1)), PAGE)


def test_a_linked_page_too_large_to_parse_fails_like_one_not_fetched(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    url = mount_careers_site(server, [jsonld_posting(n) for n in (1, 2, 3)])
    server.route("/jobs/2", body="<b>" * 1_000_000)  # 3 MB: under the page cap

    with pytest.raises(SourceFailed, match="more than 100,000 HTML tags"):
        _jsonld_list(user, fetcher, url)


def test_a_careers_page_too_deep_to_parse_fails_the_source(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    server.route("/careers", body="<section>" * 50_000)

    with pytest.raises(SourceFailed, match="Could not read the careers page .* deeper than"):
        _jsonld_list(user, fetcher, server.url("/careers"))


def test_a_url_list_page_too_deep_to_parse_is_an_invalid_row(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    urls = mount_posting_pages(server, [jsonld_posting(1)])
    server.route("/deep", body="<div>" * 50_000)
    urls.append(server.url("/deep"))

    postings = _url_list(user, fetcher, "urls.csv", url_list_csv(urls))

    assert not postings[0].invalid_reasons
    assert postings[1].invalid_reasons == [
        "row 2: the page nests HTML elements deeper than 1,000: not read"
    ]


def test_the_number_of_links_followed_is_capped(
    server: FixtureServer, fetcher: Fetcher, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JsonLdAdapter, "max_links", 4)
    url = mount_careers_site(server, [jsonld_posting(n) for n in range(1, 7)])

    postings = _jsonld_list(user, fetcher, url)

    # Home and About come first in the page, then two of the six postings.
    assert [p.external_id for p in postings] == ["AR-00001", "AR-00002"]
    assert server.hits["/jobs/3"] == 0


def test_a_careers_page_url_without_a_scheme_gets_https() -> None:
    assert (
        JsonLdAdapter.clean_identifier(" acme.example/careers ") == "https://acme.example/careers"
    )
    with pytest.raises(ValueError, match="only http and https are allowed, not ftp:"):
        JsonLdAdapter.clean_identifier("ftp://acme.example/careers")


def test_a_careers_page_url_is_refused_with_the_fetchers_words_before_any_fetch(
    settings: Any,
) -> None:
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = False
    with pytest.raises(ValueError, match="only http and https are allowed, not javascript:"):
        JsonLdAdapter.clean_identifier("javascript:alert(1)")
    with pytest.raises(ValueError, match="'exa%20mple.com' is not a valid host name"):
        JsonLdAdapter.clean_identifier("https://exa%20mple.com/careers")
    with pytest.raises(ValueError, match="10.0.0.7: a private address"):
        JsonLdAdapter.clean_identifier("10.0.0.7/careers")
    assert JsonLdAdapter.clean_identifier("acme.example:8080/jobs") == (
        "https://acme.example:8080/jobs"
    )


# --- the URL list adapter -----------------------------------------------------------------------


def test_a_url_list_yields_each_pages_posting_in_row_order(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    urls = mount_posting_pages(server, [jsonld_posting(n) for n in range(1, 13)])

    postings = _url_list(user, fetcher, "urls.csv", url_list_csv(urls))

    assert [p.external_id for p in postings] == [f"AR-{n:05d}" for n in range(1, 13)]
    assert [p.row for p in postings] == list(range(1, 13))
    assert all(not p.invalid_reasons for p in postings)


def test_a_url_list_posting_without_identifier_is_keyed_by_its_normalized_url(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    (url,) = mount_posting_pages(server, [jsonld_posting(1, identifier=None)])
    shouted = url.replace("http://", "HTTP://") + "#top"

    (posting,) = _url_list(user, fetcher, "urls.json", url_list_json([shouted], objects=True))

    assert posting.external_id == url


def test_a_url_that_answers_404_fails_alone_and_the_rest_go_on(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    urls = mount_posting_pages(server, [jsonld_posting(n) for n in (1, 2, 3)])
    server.remove("/jobs/2")

    postings = _url_list(user, fetcher, "urls.csv", url_list_csv(urls))

    assert [p.external_id for p in postings] == ["AR-00001", urls[1], "AR-00003"]
    assert postings[1].row == 2
    assert postings[1].invalid_reasons[0].startswith("fetch failed: ")
    assert "404" in postings[1].invalid_reasons[0]
    assert not postings[0].invalid_reasons and not postings[2].invalid_reasons


def test_ftp_javascript_and_userinfo_urls_are_invalid_rows(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    (good,) = mount_posting_pages(server, [jsonld_posting(1)])
    bad = ["ftp://files.acme.example/job.txt", "javascript:alert(1)"]
    metadata = "http://169.254.169.254/latest"
    data = url_list_csv([*bad, good, "https://a:b@acme.example/j", "https:///jobs", metadata])

    postings = _url_list(user, fetcher, "urls.csv", data)

    assert [p.invalid_reasons for p in postings] == [
        ["row 1: url 'ftp://files.acme.example/job.txt' is not an http(s) URL"],
        ["row 2: url 'javascript:alert(1)' is not an http(s) URL"],
        [],
        ["row 4: url 'https://a:b@acme.example/j' must not contain a user name or password"],
        ["row 5: url 'https:///jobs' has no host"],
        [
            "row 6: Refused to fetch from 169.254.169.254: a cloud metadata address, not a "
            "public one; cloud metadata addresses are always refused, whatever the settings."
        ],
    ]


def test_a_repeated_url_is_a_duplicate_of_its_first_row_not_invalid(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    first, second = mount_posting_pages(server, [jsonld_posting(1), jsonld_posting(2)])
    data = url_list_csv([first, second, first.upper().replace("/JOBS/", "/jobs/") + "#x"])

    postings = _url_list(user, fetcher, "urls.csv", data)

    assert [p.invalid_reasons for p in postings] == [[], [], []]
    assert [p.duplicate_of for p in postings] == ["", "", "row 3: duplicate of row 1"]
    assert server.hits["/jobs/1"] == 1


def test_a_page_without_a_job_posting_or_missing_fields_is_invalid_with_its_row(
    server: FixtureServer, fetcher: Fetcher, user: Any
) -> None:
    urls = mount_posting_pages(server, [jsonld_posting(1, omit=["datePosted"])])
    server.route("/about", body="<html><body>About</body></html>")

    postings = _url_list(user, fetcher, "urls.csv", url_list_csv([*urls, server.url("/about")]))

    assert [p.invalid_reasons for p in postings] == [
        ["row 1: datePosted is missing"],
        ["row 2: no JobPosting (schema.org JSON-LD) found on the page"],
    ]


def test_a_url_list_of_more_than_the_maximum_is_refused(
    server: FixtureServer, user: Any, settings: Any
) -> None:
    urls = [f"https://acme.example/jobs/{n}" for n in range(1001)]
    source = _source(user, "urls", "urls.csv")

    with pytest.raises(UploadError, match="more than 1,000 URLs"):
        upload_store(source=source, name="urls.csv", fileobj=io.BytesIO(url_list_csv(urls)))


def test_a_stored_list_longer_than_a_lowered_maximum_fails_the_source(
    server: FixtureServer, fetcher: Fetcher, user: Any, settings: Any
) -> None:
    urls = [f"https://acme.example/jobs/{n}" for n in range(5)]
    source = _source(user, "urls", "urls.csv")
    upload_store(source=source, name="urls.csv", fileobj=io.BytesIO(url_list_csv(urls)))
    settings.INTAKE_URL_LIST_MAX = 4

    with pytest.raises(SourceFailed, match="more than 4 URLs"):
        list(UrlListAdapter(source, fetcher).list_postings())

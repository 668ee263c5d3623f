from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from hashlib import blake2b

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.adapters.base import Posting
from ingestion.normalize import (
    content_hash,
    html_to_text,
    normalize_employment_type,
    normalize_location,
    normalize_workplace,
    parse_datetime,
    parse_salary,
    sanitize_html,
)
from ingestion.normalize.hashing import _HASHED_FIELDS, _canonical

# --- sanitize_html --------------------------------------------------------------------------

NASTY = [
    '<script>alert("x")</script>',
    "<style>body{display:none}</style>",
    '<img src="x" onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="data:text/html,<script>alert(1)</script>">data</a>',
    '<p hx-get="/admin/delete" hx-trigger="load">htmx</p>',
    '<div data-hx-post="/runs/1/abort" data-hx-trigger="load">htmx</div>',
    '<p style="background:url(javascript:alert(1))" class="x" id="main">styled</p>',
    '<iframe src="https://evil.example"></iframe>',
    '<svg onload="alert(1)"><script>alert(1)</script></svg>',
    "<math><mtext><script>alert(1)</script></mtext></math>",
    '<form action="/x"><input name="q"><button formaction="/y">go</button></form>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<p onclick="alert(1)" onmouseover="alert(1)">handlers</p>',
    "<template><script>alert(1)</script></template>",
    '<base href="https://evil.example/"><meta http-equiv="refresh" content="0;url=x">',
    '<a href="vbscript:msgbox(1)">vb</a>',
    "<!-- <script>alert(1)</script> -->",
]


@pytest.mark.parametrize("html", NASTY)
def test_sanitize_html_leaves_nothing_that_runs(html: str) -> None:
    clean = sanitize_html(html).lower()

    for needle in (
        "<script",
        "alert(",
        "<style",
        "onerror",
        "onclick",
        "onload",
        "onmouseover",
        "javascript:",
        "vbscript:",
        "data:",
        "hx-",
        "style=",
        "class=",
        "id=",
        "<iframe",
        "<svg",
        "<math",
        "<img",
        "<form",
        "<input",
        "<object",
        "<embed",
        "<base",
        "<meta",
        "<!--",
        "display:none",
    ):
        assert needle not in clean, (html, clean)


def test_sanitize_html_removes_script_and_style_with_their_content() -> None:
    html = "<p>Keep</p><script>var secret = 1;</script><style>.x{}</style><p>this</p>"

    assert sanitize_html(html) == "<p>Keep</p><p>this</p>"


def test_sanitize_html_keeps_the_structure_of_a_description() -> None:
    html = (
        "<h2>Role</h2><p>We <strong>build</strong> <em>things</em>.<br>Daily.</p>"
        "<ul><li>One</li></ul><ol><li>Two</li></ol><blockquote>Q</blockquote>"
        "<pre><code>x = 1</code></pre><table><tr><td>a</td></tr></table>"
    )

    clean = sanitize_html(html)

    for tag in ("<h2>", "<strong>", "<em>", "<br>", "<ul>", "<ol>", "<li>", "<blockquote>"):
        assert tag in clean
    assert "<pre><code>x = 1</code></pre>" in clean
    assert "<td>a</td>" in clean


def test_sanitize_html_turns_h1_into_h2() -> None:
    assert sanitize_html('<H1 class="big">Title</H1>') == "<h2>Title</h2>"


def test_sanitize_html_keeps_web_and_mail_links_with_a_safe_rel() -> None:
    clean = sanitize_html(
        '<a href="https://example.com/apply" target="_blank" rel="opener">Apply</a> '
        '<a href="mailto:jobs@example.com">Mail</a>'
    )

    assert (
        '<a href="https://example.com/apply" rel="nofollow noopener noreferrer">Apply</a>' in clean
    )
    assert '<a href="mailto:jobs@example.com" rel="nofollow noopener noreferrer">Mail</a>' in clean
    assert "target" not in clean
    assert 'opener"' not in clean


def test_sanitize_html_drops_relative_links() -> None:
    # Relative to the board's site, not to ours.
    assert "href" not in sanitize_html('<a href="/jobs/123">Other job</a>')


def test_sanitize_html_drops_unknown_tags_but_keeps_their_text() -> None:
    assert sanitize_html("<p><span>Hello</span> <font>world</font></p>") == "<p>Hello world</p>"


def test_sanitize_html_of_nothing_is_nothing() -> None:
    assert sanitize_html("") == ""


# --- html_to_text ---------------------------------------------------------------------------


def test_html_to_text_keeps_paragraphs_and_list_items_apart() -> None:
    html = (
        "<h2>About</h2><p>We   build\n things.</p>"
        "<ul><li>Python</li><li>SQL<br>and Go</li></ul><div>Apply&nbsp;now &amp; soon</div>"
    )

    assert html_to_text(html) == (
        "About\n\nWe build things.\n\nPython\nSQL\nand Go\n\nApply now & soon"
    )


def test_html_to_text_does_not_glue_words_across_blocks() -> None:
    assert html_to_text("<div>one</div><div>two</div>") == "one\n\ntwo"


def test_html_to_text_keeps_inline_markup_inline() -> None:
    assert html_to_text("<p>Hello <b>bold</b> <a href='x'>link</a>!</p>") == "Hello bold link!"


def test_html_to_text_decodes_entities() -> None:
    assert html_to_text("<p>caf&eacute; &lt;b&gt; &#8212; &quot;q&quot;</p>") == 'café <b> — "q"'


def test_html_to_text_drops_scripts_and_styles() -> None:
    assert html_to_text("<p>a</p><script>b()</script><style>.c{}</style>") == "a"


def test_html_to_text_of_plain_text_is_the_text() -> None:
    assert html_to_text("  just   text ") == "just text"
    assert html_to_text("") == ""


# --- employment type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Full-time", "full_time"),
        ("FULL_TIME", "full_time"),
        ("Full Time", "full_time"),
        ("fulltime", "full_time"),
        ("Permanent", "full_time"),
        ("Permanent - Full Time", "full_time"),
        ("Part-time", "part_time"),
        ("PART_TIME", "part_time"),
        ("Contract", "contract"),
        ("Contractor", "contract"),
        ("CONTRACTOR", "contract"),
        ("Freelance", "contract"),
        ("Temporary", "temporary"),
        ("TEMPORARY", "temporary"),
        ("Fixed Term", "temporary"),
        ("Full-time, fixed-term", "temporary"),
        ("Intern", "internship"),
        ("INTERN", "internship"),
        ("Internship", "internship"),
        ("Part-time Internship", "internship"),
        ("Co-op", "internship"),
        ("VOLUNTEER", "volunteer"),
        ("PER_DIEM", "per_diem"),
        ("Per Diem", "per_diem"),
        ("OTHER", "other"),
        ("Something unusual", "other"),
        ("", ""),
        ("  ", ""),
    ],
)
def test_normalize_employment_type(value: str, expected: str) -> None:
    assert normalize_employment_type(value) == expected


# --- workplace ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # Ashby: workplaceType wins over isRemote.
        (("Berlin", "Hybrid", True), (False, "hybrid")),
        (("Berlin", "OnSite", True), (False, "onsite")),
        (("", "Remote", False), (True, "remote")),
        (("", "TELECOMMUTE", None), (True, "remote")),  # schema.org jobLocationType
        (("", "on-site", None), (False, "onsite")),
        # The remote flag, then the location's words.
        (("New York", "", True), (True, "remote")),
        (("New York (Hybrid)", "", False), (False, "hybrid")),
        (("New York", "", False), (False, "")),
        (("Remote", "", None), (True, "remote")),
        (("Remote - US", "", None), (True, "remote")),
        (("Anywhere", "", None), (True, "remote")),
        (("Hybrid - London", "", None), (False, "hybrid")),
        (("London; Remote", "", None), (True, "remote")),
        (("On-site, Austin", "", None), (False, "onsite")),
        (("Not remote - Paris", "", None), (None, "")),
        (("Remoteville, OH", "", None), (None, "")),
        (("Paris", "", None), (None, "")),
        (("", "", None), (None, "")),
    ],
)
def test_normalize_workplace(
    args: tuple[str, str, bool | None], expected: tuple[bool | None, str]
) -> None:
    assert normalize_workplace(*args) == expected


def test_normalize_workplace_reads_only_clear_sentences_of_the_description() -> None:
    assert normalize_workplace("", "", None, "This role is fully remote.") == (True, "remote")
    assert normalize_workplace("", "", None, "This is a hybrid role.") == (False, "hybrid")
    assert normalize_workplace("", "", None, "We are a remote-first company.") == (None, "")


# --- location -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("San Francisco, CA; San Francisco, CA", "San Francisco, CA"),
        ("  San Francisco ,CA  ", "San Francisco, CA"),
        ("New York, NY | London, UK", "New York, NY; London, UK"),
        ("Berlin\nMunich\n", "Berlin; Munich"),
        ("Paris, , France", "Paris, France"),
        ("Remote / US", "Remote; US"),
        ("Austin, TX; austin, tx", "Austin, TX"),
        ("Toronto • Montreal", "Toronto; Montreal"),
        (" ; , ", ""),
        ("", ""),
    ],
)
def test_normalize_location(value: str, expected: str) -> None:
    assert normalize_location(value) == expected


def test_a_boards_repeated_locations_and_types_are_normalized_once() -> None:
    # A board repeats a few locations, employment and workplace types in every posting: each
    # distinct value is read once per process, the rest are looked up (the same answers).
    from ingestion.normalize import employment, workplace

    for cached in (
        normalize_location,
        normalize_employment_type,
        workplace._workplace_from_words,
        workplace._workplace_kind,
    ):
        cached.cache_clear()
    postings = [("Berlin ;  Remote", "Full Time", "", None)] * 50 + [
        ("Lisbon", "CONTRACTOR", "On site", None)
    ] * 50
    answers = {
        (
            normalize_location(location),
            normalize_employment_type(kind),
            normalize_workplace(location, place, remote, "This role is fully remote."),
        )
        for location, kind, place, remote in postings
    }
    assert answers == {
        ("Berlin; Remote", "full_time", (True, "remote")),
        ("Lisbon", "contract", (False, "onsite")),
    }
    assert normalize_location.cache_info().misses == 2
    assert employment.normalize_employment_type.cache_info().misses == 2
    assert workplace._workplace_kind.cache_info().misses == 2


# --- salary ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$120,000 - $150,000 a year", ("120000", "150000", "USD", "year")),
        ("€50k–60k", ("50000", "60000", "EUR", "year")),
        ("USD 45/hr", ("45", "45", "USD", "hour")),
        ("£30,000 per annum", ("30000", "30000", "GBP", "year")),
        ("$45.50 per hour", ("45.50", "45.50", "USD", "hour")),
        ("CA$80,000–95,000", ("80000", "95000", "CAD", "year")),
        ("50.000 - 60.000 EUR", ("50000", "60000", "EUR", "year")),
        ("EUR 4,000 - 5,000 per month", ("4000", "5000", "EUR", "month")),
        ("$800 per week", ("800", "800", "USD", "week")),
        ("£350/day", ("350", "350", "GBP", "day")),
        ("$150,000 to $120,000 annually", ("120000", "150000", "USD", "year")),
        ("Up to $90k", (None, "90000", "USD", "year")),
        ("120000 - 140000 yearly", ("120000", "140000", "", "year")),
    ],
)
def test_parse_salary(text: str, expected: tuple[str | None, str, str, str]) -> None:
    low, high, currency, period = expected
    assert parse_salary(text) == (
        Decimal(low) if low else None,
        Decimal(high),
        currency,
        period,
    )


@pytest.mark.parametrize(
    "text",
    ["", "Competitive", "DOE", "401k match", "Great benefits in 2024", "$", "$0", "$1e400"],
)
def test_parse_salary_returns_nothing_for_junk(text: str) -> None:
    assert parse_salary(text) == (None, None, "", "")


def test_parse_salary_amounts_fit_the_job_columns() -> None:
    assert parse_salary("$99,999,999,999 a year") == (None, None, "", "")


# --- datetimes ------------------------------------------------------------------------------

MAY_1_10H = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", MAY_1_10H),
        ("2024-05-01T10:00:00+00:00", MAY_1_10H),
        ("2024-05-01T12:00:00+02:00", MAY_1_10H),
        ("2024-05-01T10:00:00", MAY_1_10H),  # naive is UTC
        ("2024-05-01 10:00:00", MAY_1_10H),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123456789Z", MAY_1_10H.replace(microsecond=123456)),
        ("Wed, 01 May 2024 10:00:00 GMT", MAY_1_10H),
        (1714557600, MAY_1_10H),  # epoch seconds
        (1714557600000, MAY_1_10H),  # epoch ms (Lever's createdAt)
        (1714557600.0, MAY_1_10H),
        ("1714557600000", MAY_1_10H),
        ("1714557600", MAY_1_10H),
        (datetime(2024, 5, 1, 10, 0), MAY_1_10H),
        (datetime(2024, 5, 1, 5, 0, tzinfo=timezone(timedelta(hours=-5))), MAY_1_10H),
        (date(2024, 5, 1), datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_parse_datetime(value: object, expected: datetime) -> None:
    parsed = parse_datetime(value)

    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "junk",
        "2024-13-45",
        "9999-12-31",
        "0001-01-01",
        0,
        -1,
        True,
        float("nan"),
        float("inf"),
        10**30,
        "1" * 40,
        [],
        {"date": "2024-05-01"},
    ],
)
def test_parse_datetime_returns_none_for_junk(value: object) -> None:
    assert parse_datetime(value) is None


# --- content hash ---------------------------------------------------------------------------


def make_posting(**changes: object) -> Posting:
    posting = Posting(
        external_id="123",
        title="Backend Engineer",
        url="https://example.com/jobs/123",
        location="Berlin",
        remote=False,
        workplace_type="hybrid",
        employment_type="Full-time",
        department="Engineering",
        description_html="<p>Build things.</p>",
        requirements_html="<ul><li>Python</li></ul>",
        posted_at=datetime(2024, 5, 1, tzinfo=UTC),
        valid_through=datetime(2024, 6, 1, tzinfo=UTC),
        salary_min=Decimal("60000"),
        salary_max=Decimal("80000"),
        salary_currency="EUR",
        salary_period="year",
        salary_text="€60k–80k",
    )
    return dataclasses.replace(posting, **changes)  # type: ignore[arg-type]


def test_content_hash_is_32_hex_characters_and_stable() -> None:
    value = content_hash(make_posting())

    assert len(value) == 32
    int(value, 16)
    assert content_hash(make_posting()) == value


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Backend Engineer II"},
        {"url": "https://example.com/jobs/124"},
        {"location": "Munich"},
        {"remote": True},
        {"remote": None},
        {"workplace_type": "onsite"},
        {"employment_type": "Contract"},
        {"department": "Platform"},
        {"description_html": "<p>Build things!</p>"},
        {"requirements_html": ""},
        {"posted_at": datetime(2024, 5, 2, tzinfo=UTC)},
        {"posted_at": None},
        {"valid_through": None},
        {"salary_min": Decimal("60001")},
        {"salary_max": None},
        {"salary_currency": "USD"},
        {"salary_period": "month"},
        {"salary_text": "€60k-80k"},
    ],
)
def test_content_hash_changes_with_any_content_edit(change: dict[str, object]) -> None:
    assert content_hash(make_posting(**change)) != content_hash(make_posting())


def test_content_hash_ignores_what_is_not_content() -> None:
    assert content_hash(make_posting(external_id="999", row=7, needs_detail=True)) == (
        content_hash(make_posting())
    )


def test_content_hash_reads_equal_values_as_equal() -> None:
    # As they come back from the database: 2 decimal places, and any time zone.
    same = make_posting(
        salary_min=Decimal("60000.00"),
        posted_at=datetime(2024, 5, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
    )

    assert content_hash(same) == content_hash(make_posting())


def test_content_hash_cannot_be_fooled_by_moving_text_between_fields() -> None:
    a = make_posting(title="Engineer", department="Berlin office")
    b = make_posting(title="Engineer Berlin", department="office")

    assert content_hash(a) != content_hash(b)


def test_content_hash_values_do_not_change() -> None:
    # Stored jobs carry these hashes: another value for the same posting would make every
    # stored job look updated on its next run.
    assert content_hash(make_posting()) == "b2c1dcc65379ac311fdb8d9bd43b8da3"
    other = make_posting(
        remote=None,
        posted_at=datetime(2024, 5, 1, 9, 30),
        salary_min=None,
        salary_max=Decimal("1.50"),
        requirements_html="",
        salary_text="x",
    )
    assert content_hash(other) == "d3cc393d9bba4b659d5074fd39f775fe"


def _content_hash_by_field(posting: Posting) -> str:
    """content_hash as it was first written: each field read and converted on its own."""
    parts = []
    for field in _HASHED_FIELDS:
        text = _canonical(getattr(posting, field))
        parts.append(f"{len(text)}:{text}")
    return blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_texts = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    title=_texts,
    description=_texts,
    remote=st.sampled_from([None, True, False]),
    posted_at=st.none() | st.datetimes(timezones=st.none() | st.just(UTC)),
    salary=st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2),
)
def test_content_hash_reads_fields_as_it_always_did(
    title: str,
    description: str,
    remote: bool | None,
    posted_at: datetime | None,
    salary: Decimal | None,
) -> None:
    posting = make_posting(
        title=title,
        description_html=description,
        remote=remote,
        posted_at=posted_at,
        salary_min=salary,
        valid_through=None,
    )

    assert content_hash(posting) == _content_hash_by_field(posting)


def test_sanitize_html_keeps_no_attribute_but_a_link_href() -> None:
    html = (
        '<p title="t" lang="en" class="c" id="i">Hi <a href="https://x.example" title="t">x</a></p>'
    )

    assert sanitize_html(html) == (
        '<p>Hi <a href="https://x.example" rel="nofollow noopener noreferrer">x</a></p>'
    )

"""sanitize_html takes markup that nh3 would give back as it is without calling nh3
(sanitize._already_clean): it must return exactly what nh3 returns, for every input it takes
that way, and take the common clean descriptions that way. The text of such markup is read
without looking for layouts the parser rebuilds (there are none): it must be the parser's."""

from __future__ import annotations

import random

import pytest

from ingestion.normalize import (
    html_to_text,
    sanitize,
    sanitize_html,
    sanitize_html_as_written,
    sanitized_html_to_text,
)
from tests.ingestion.test_fast_text import (
    TRAPS,
    _all_nested,
    _noisy_realistic,
    _realistic,
    _soup,
)


def _nh3(html: str) -> str:
    """sanitize_html as it was before the fast path: always nh3."""
    if not html:
        return ""
    return sanitize._CLEANER.clean(sanitize._H1_RE.sub(r"<\1h2", html)).strip()


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The inputs the fast path answered (equality alone would also hold if it answered
    none)."""
    answered: list[str] = []
    check = sanitize._already_clean

    def counting(html: str) -> str | None:
        clean = check(html)
        if clean is not None:
            answered.append(html)
        return clean

    monkeypatch.setattr(sanitize, "_already_clean", counting)
    return answered


def _mismatches(sources: list[str]) -> list[tuple[str, str, str]]:
    """(source, expected, got) of each source whose sanitized markup differs from nh3's, or
    whose text, when the markup was taken as written, differs from the parser's."""
    found = []
    for source in sources:
        clean, as_written = sanitize_html_as_written(source)
        expected = _nh3(source)
        if clean != expected:
            found.append((source, expected, clean))
        elif as_written:
            text, parsed = sanitized_html_to_text(clean, as_written=True), html_to_text(clean)
            if text != parsed:
                found.append((source, parsed, text))
    return found


def test_realistic_descriptions_take_the_fast_path_and_match(taken: list[str]) -> None:
    sources = list(_realistic())

    assert _mismatches(sources) == []
    # Both generators' descriptions (headings, lists, links, &#39;) are already clean.
    assert len(taken) == len(sources)


def test_noisy_realistic_descriptions_match() -> None:
    # Stray spans, CRs and the like: each goes to nh3.
    assert _mismatches(_noisy_realistic()) == []


@pytest.mark.parametrize("source", TRAPS)
def test_trap_matches(source: str) -> None:
    assert sanitize_html(source) == _nh3(source)


def test_random_tag_soup_matches(taken: list[str]) -> None:
    sources = [_soup(random.Random(seed)) for seed in range(3000)]

    assert _mismatches(sources) == []
    assert taken


def test_blocks_in_unwrapped_elements_match() -> None:
    assert _mismatches(_all_nested()) == []


# --- well-nested markup of the fast path's own tags, in every arrangement ---------------------
#
# The soup above is mostly refused at once; this is markup the fast path reads to the end:
# its tags properly closed, nested any way (a p in a p, an li outside a list, a heading in a
# heading, a link in a link, blocks in inline elements), with the texts and links that decide
# between its rewrites and nh3.

_TAGS = ["p", "p", "div", "ul", "ol", "li", "li", "li", "h2", "h3", "h1", "b", "strong", "em"]
_TAGS += ["i", "u", "code", "blockquote", "a", "a", "pre", "span", "P", "table", "td"]
_TEXTS = [
    "x", "two words", " ", "\n", "\t", "  ", "&amp;", "&lt;", "&gt;", "&nbsp;", "&#39;", "'",
    '"', "&quot;", "&copy;", "&amp", "&#160;", "\u00a0", "é", "日本", "😀", "\r\n", "\x0c",
    "\x00", "\x85", "\ufeff", ">", "<", "a < b", "&#x27;", "&#8212;", "\u2028",
]  # fmt: skip
_LINKS = [
    '<a href="https://example.com/about">',
    '<a href="http://www.example.co.uk/a/b?x=1#top">',
    '<a href="https://jobs.example.com/apply?id=12%2034&ref=x">',
    '<a href="https://example.com/?a=1&amp;b=2">',
    '<a href="https://example.com/a b">',
    '<a href="https://EXAMPLE.com/">',
    '<a href="https://example.1/">',
    '<a href="https://192.168.0.1/">',
    '<a href="https://exa_mple.com/">',
    '<a href="https://-example.com/">',
    '<a href="https://example.com:8080/">',
    '<a href="https://user@example.com/">',
    '<a href="https://example.com/@user:x,y+z~">',
    '<a href="mailto:jobs@example.com">',
    '<a href="/relative">',
    '<a href="javascript:alert(1)">',
    "<a href='https://example.com/'>",
    '<a href="https://example.com/" title="t">',
    '<a  href="https://example.com/">',
    "<a>",
]
_VOIDS = ["<br>", "<hr>", "<br/>", "<br />", "</br>", "<img>"]


def _well_nested(rng: random.Random, depth: int = 0) -> str:
    out = []
    for _ in range(rng.randint(0, 4 if depth < 3 else 2)):
        roll = rng.random()
        if roll < 0.4:
            out.append(rng.choice(_TEXTS))
        elif roll < 0.5:
            out.append(rng.choice(_VOIDS))
        else:
            tag = rng.choice(_TAGS)
            start = rng.choice(_LINKS) if tag == "a" else f"<{tag}>"
            inner = _well_nested(rng, depth + 1) if depth < 5 else ""
            end = f"</{tag}>" if rng.random() < 0.97 else ""
            out.append(f"{start}{inner}{end}")
    return "".join(out)


def _listed(rng: random.Random) -> str:
    """A description of the common shape: headings, paragraphs and lists at the top level,
    inline tags and links inside, so that most are taken."""
    blocks = []

    def text() -> str:
        return rng.choice(_TEXTS if rng.random() < 0.05 else _TEXTS[:13])

    for _ in range(rng.randint(1, 6)):
        inline = "".join(
            rng.choice(
                (
                    text(),
                    f"<b>{text()}</b>",
                    f"{rng.choice(_LINKS[:3])}{text()}</a>",
                    "<br>",
                )
            )
            for _ in range(rng.randint(1, 4))
        )
        kind = rng.randrange(4)
        if kind == 0:
            blocks.append(f"<p>{inline}</p>")
        elif kind == 1:
            level = rng.randint(1, 6)
            blocks.append(f"<h{level}>{inline}</h{level}>")
        elif kind == 2:
            items = "".join(f"<li>{inline}</li>" for _ in range(rng.randint(1, 3)))
            blocks.append(f"<ul>{items}</ul>" if rng.random() < 0.9 else items)
        else:
            blocks.append(f"<div>{inline}</div>")
    return rng.choice(("", "\n", " ")).join(blocks)


def test_well_nested_markup_matches(taken: list[str]) -> None:
    count = 20_000
    sources = [_well_nested(random.Random(seed)) for seed in range(count)]

    assert _mismatches(sources) == []
    # Each rule is decided both ways: enough of these are taken.
    assert count // 10 < len(taken) < count


def test_descriptions_of_the_common_shape_match(taken: list[str]) -> None:
    count = 5_000
    sources = [_listed(random.Random(seed)) for seed in range(count)]

    assert _mismatches(sources) == []
    assert count // 4 < len(taken) < count


@pytest.mark.parametrize(
    "source",
    [
        "<p>a<p>b</p></p>",  # the parser closes the first p
        "<p>a<div>b</div></p>",
        "<p>a<ul><li>b</li></ul></p>",
        "<p>a<hr>b</p>",
        "<h2>a<h3>b</h3></h2>",
        "<h2>a<b><h3>b</h3></b></h2>",
        "<li>outside a list</li>",
        "<ul><li>a<li>b</li></li></ul>",
        "<ul><li>a<b><li>b</li></b></li></ul>",
        '<a href="https://e.com/">a<a href="https://e.org/">b</a></a>',
        "<b>a<i>b</b>c</i>",
        "<p>unclosed",
        "</p>",
        "<pre>\nline</pre>",
        "<table><tr><td>x</td></tr></table>",
        "a > b",
        "a\rb",
        "a\x00b",
        "&copy; 2024",
        '<a href="https://e.com/?a=1&b=2">x</a>',
        "<P>upper case</P>",
        "<br/>",
    ],
)
def test_markup_the_parser_would_rewrite_goes_to_nh3(source: str, taken: list[str]) -> None:
    assert sanitize_html_as_written(source) == (_nh3(source), False)
    assert taken == []


@pytest.mark.parametrize(
    "source",
    [
        "<p>plain</p>",
        "<h1>Title</h1><p>x</p>",
        "<ul>\n<li>a</li>\n<li><ul><li>b</li></ul></li>\n</ul>",
        "<b><p>a block in an inline element</p></b>",
        '<p>What you&#39;ll do: <a href="https://example.com/about">read</a> &amp; apply</p>',
        "<p>a\u00a0b&nbsp;c &lt;tag&gt;</p>",
        "  <div>\n<p>surrounding whitespace</p></div>\n",
        # More than three of one formatting element open (the parser's "Noah's Ark" limit).
        "<p><b><b><b><b>x</b></b></b></b>y</p><p><b>z</b></p>",
        "<div>" * 300 + "deep" + "</div>" * 300,
    ],
)
def test_clean_markup_skips_nh3(source: str, taken: list[str]) -> None:
    assert _mismatches([source]) == []
    assert taken == [sanitize._H1_RE.sub(r"<\1h2", source)]


def test_a_lone_surrogate_fails_as_nh3_does() -> None:
    with pytest.raises(UnicodeEncodeError):
        _nh3("<p>\ud800</p>")

    with pytest.raises(UnicodeEncodeError):
        sanitize_html("<p>\ud800</p>")

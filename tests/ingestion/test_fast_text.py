"""sanitized_html_to_text must return exactly what html_to_text returns for every output of
sanitize_html: realistic descriptions, hand-picked traps and random tag soup."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from ingestion.normalize import (
    html_to_text,
    plaintext,
    sanitize,
    sanitize_html,
    sanitized_html_to_text,
)
from tests.ingestion import boards, pages


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The inputs sanitized_html_to_text hands to html_to_text (equality alone would also hold
    if it handed over everything)."""
    handed: list[str] = []

    def counting(html: str) -> str:
        handed.append(html)
        return html_to_text(html)

    monkeypatch.setattr(plaintext, "html_to_text", counting)
    return handed


def _mismatches(sources: list[str]) -> list[tuple[str, str, str]]:
    found = []
    for source in sources:
        clean = sanitize_html(source)
        expected, fast = html_to_text(clean), sanitized_html_to_text(clean)
        if fast != expected:
            found.append((clean, expected, fast))
    return found


def test_allowlist_is_the_one_the_fast_path_was_checked_against() -> None:
    # The fast path's fallback rules follow how the HTML parser rebuilds these tags; another
    # allowed tag (dd, caption, section ...) needs those rules and this suite looked at again.
    checked = {"p", "br", "div", "ul", "ol", "li", "strong", "em", "b", "i", "u", "blockquote"}
    checked |= {"h2", "h3", "h4", "h5", "h6", "a", "code", "pre", "hr"}
    checked |= {"table", "thead", "tbody", "tr", "th", "td"}

    assert checked == sanitize.ALLOWED_TAGS


# --- (a) realistic descriptions ---------------------------------------------------------------


def _realistic() -> Iterator[str]:
    for n in range(600):
        yield pages.description_html(n, seed=n % 7, size=(600, 2000, 2000, 3000)[n % 4])
    for seed in range(1200):
        yield boards.description_html(seed, size=(0, 2000, 2000, 3000)[seed % 4])


def test_realistic_descriptions_take_the_fast_path_and_match(fallbacks: list[str]) -> None:
    sources = list(_realistic())

    assert _mismatches(sources) == []
    assert fallbacks == []


_NOISE = ["\n", "  ", "\t", " \n ", "\r\n", "&nbsp;", "&nbsp; ", "\u2003", "\u2028", "&amp;"]
_NOISE += ["<span>", "</span>", "<b> </b>", "<br>", "<font>x</font>"]


def _noisy(html: str, rng: random.Random) -> str:
    """`html` with whitespace, entities and stray inline tags sprinkled between its tags and
    words, as real boards send it."""
    pieces = re.split(r"(<[^>]*>| )", html)
    return "".join(p + (rng.choice(_NOISE) if rng.random() < 0.08 else "") for p in pieces)


def _noisy_realistic() -> list[str]:
    return [
        _noisy(boards.description_html(seed, size=2000), random.Random(seed))
        if seed % 2
        else _noisy(pages.description_html(seed, seed=seed % 5), random.Random(seed))
        for seed in range(600)
    ]


def test_noisy_realistic_descriptions_match() -> None:
    assert _mismatches(_noisy_realistic()) == []


# --- (b) hand-written traps -------------------------------------------------------------------

TRAPS = [
    "",
    " ",
    " \n\t ",
    "&nbsp;",
    "&nbsp;&nbsp;x&nbsp;",
    "<p></p>",
    "<br><br><hr>",
    "<p> </p><div>\n</div>",
    "plain text, no tags",
    "text <b>outside</b> any block, then <p>a paragraph</p> and a tail",
    "a<br>b<br/>c</br>d",
    "<p>one<br>two</p><p>three</p>",
    "<p>a <br> b</p>",
    "<hr>after a rule<hr>",
    "<ul><li>a<ul><li>b<ol><li>c</li></ol></li></ul></li><li>d</li></ul>",
    "<ul><li>unclosed<li>items<li>here</ul>after",
    "<ol><li><p>para in item</p><p>second</p></li><li>next</li></ol>",
    "<table><tr><th>h1</th><th>h2</th></tr><tr><td>a</td><td>b<br>c</td></tr></table>",
    "<table>\n  <tr>\n    <td> a </td>\n    <td>b</td>\n  </tr>\n</table>",
    "<table><thead><tr><th>x</th></tr></thead><tbody><tr><td>y</td></tr></tbody></table>",
    "<table><tr><td><table><tr><td>nested</td></tr></table>after</td></tr></table>",
    "<table><tr><td>a</td></tr><tfoot><tr><td>foot</td></tr></tfoot></table>",
    "<pre>\n\nline one\n   indented\n\nline three</pre>",
    "<pre>  lead</pre>x",
    "<p>x&nbsp;</p>&nbsp;<p>&nbsp;y</p>",
    "<p>a&nbsp;&nbsp;b</p>",
    "<p>a &nbsp; b&nbsp;</p> &nbsp;<p>&nbsp; c</p>",
    "<p>word \n</p>\n<p> next  </p>\n\n<ul>\n <li>x </li> <li> y</li>\n</ul>",
    "<p>one  two</p><p>three\tfour</p>five\u3000 six",
    "&amp;lt;b&amp;gt; is &lt;b&gt; &amp;amp; &amp;nbsp;",
    "5 &lt; 6 &gt; 4 &amp; 1<2 and 3>2 & 4 <> 5",
    "&copy; &eacute; &#8212; &#x2014; &quot;q&quot; &#39;s &hellip;",
    "&amp &lt &gt &nbsp &copy (no semicolons)",
    "Zürich · São Paulo · 東京 · Kraków · 😀 <p>ÅÆØ</p>",
    "a\u2028b\u2029c <p>\u2029</p> &#x2028;d&#x2029;",
    "\ufeffBOM then text",
    "&#xfeff;<p>entity BOM</p>",
    "tab\there\r\nnewline\rreturn\fformfeed\vvtab\x1cfs\x85nel",
    "em\u2003space\u3000ideographic\u00a0nbsp\u202fnarrow",
    "nul\x00byte \x01 control",
    "<h1>Title</h1><h2>Sub</h2><h3>Subsub</h3>body",
    "<blockquote><p>quoted</p></blockquote>after",
    "<div><div><div>deep</div></div></div><div>next</div>",
    "<p>inline <strong>bold <em>both</em></strong> <code>code</code> <u>u</u></p>",
    '<a href="https://example.com/?a=1&b=2">link</a> and <a href="/relative">rel</a>',
    '<a href="https://example.com/a>b" title="x>y">gt in attributes</a>',
    '<a href="https://example.com/" title=\'"<p>&amp;\'>quotes</a>',
    '<p lang="en" title="t">attributes on blocks</p><li title="x">item</li>',
    # Malicious markup.
    "<script>alert(1)</script><p>after script</p>",
    "<style>p{color:red}</style>styled<style>x</style>",
    '<p onclick="alert(1)" style="x" class="c" id="i">handlers</p>',
    '<img src=x onerror="alert(1)">img<svg><script>x</script><p>in svg</p></svg>done',
    "<iframe src=x><p>frame</p></iframe><noscript><p>ns</p></noscript>after",
    "<template><p>t</p></template><textarea><p>ta</p></textarea><select><option>o</select>",
    '<form action="/x"><input name="q"><button>go</button><label>lbl</label></form>',
    "<!-- a comment <p>x</p> --><p>visible</p>",
    "<x-widget><x-inner>custom</x-inner></x-widget><foo:bar>ns</foo:bar>",
    "<unknown><p>para in unknown</p></unknown><span><div>div in span</div></span>",
    "<p>unclosed<div>block<ul><li>item",
    "</p></div></li>stray end tags",
    "<p <p>broken tag</p> <p =x>odd</p> <<p>>double</p>",
    "<plaintext><p>all the rest is text</p>",
    "<xmp><b>raw</b></xmp><noembed><i>x</i></noembed><listing>l</listing>",
    "<section><article><header>h</header><nav>n</nav><main>m</main></article></section>",
    "<dl><dt>term</dt><dd>definition</dd></dl><address>addr</address><figure>f</figure>",
    # Unwrapped elements that leave markup the parser rebuilds differently (fall back).
    "<ul><li>a<section><li>b</li></section>c</li>d</ul>",
    "<p>a<marquee><li>b</li>c</marquee>d</p>",
    "<p>a<applet><div>b</div></applet>c</p>",
    "<h2>a<span><h3>b</h3>c</span>d</h2>e",
    "<table><tr><td>a</td></tr><caption>caption last</caption></table>",
    "<table><caption><p>para</p><table><tr><td>in</td></tr></table>x</caption>"
    "<tr><td>y</td></tr></table>",
]


@pytest.mark.parametrize("source", TRAPS)
def test_trap_matches(source: str) -> None:
    clean = sanitize_html(source)

    assert sanitized_html_to_text(clean) == html_to_text(clean), clean


REBUILT = [
    "<ul><li>a<section><li>b</li></section>c</li>d</ul>",
    "<p>a<marquee><li>b</li>c</marquee>d</p>",
    "<h2>a<span><h3>b</h3>c</span>d</h2>e",
    "<table><tr><td>a</td></tr><caption>caption last</caption></table>",
]


@pytest.mark.parametrize("source", REBUILT)
def test_markup_the_parser_rebuilds_is_handed_to_html_to_text(
    source: str, fallbacks: list[str]
) -> None:
    clean = sanitize_html(source)

    sanitized_html_to_text(clean)

    assert fallbacks == [clean]


# --- (c) random tag soup ----------------------------------------------------------------------

_ALLOWED = sorted(sanitize.ALLOWED_TAGS - {"br", "hr"})
# The tags whose nesting the parser repairs, drawn more often.
_STRUCTURAL = ["li", "li", "ul", "p", "p", "div", "h2", "h3", "table", "tr", "td"]
# Unwrapped by nh3 (its content kept), several of them scope boundaries for the parser.
_UNWRAPPED = [
    "span", "section", "article", "nav", "marquee", "marquee", "applet", "caption", "caption",
    "colgroup", "tfoot",
    "dl", "dt", "dd", "font", "center", "form", "fieldset", "h1", "main", "nobr", "s", "x-y",
]  # fmt: skip
_DROPPED = ["script", "style", "svg", "math", "template", "iframe", "textarea", "select", "button"]
_VOID = ["br", "hr", "br", "img", "input", "col", "wbr"]
_ATTRIBUTES = [
    "",
    "",
    "",
    ' href="https://e.com/?a=1&amp;b=>"',
    ' title="t>&quot;"',
    " lang=en",
    ' onclick="alert(1)"',
    " class=c",
    " href=javascript:x",
    " title='\"<p>'",
]
_TEXTS = [
    "x", "y z", "word", " ", "  ", "\n", "\t", " a ", "&amp;", "&lt;", "&gt;", "&nbsp;",
    "&amp;lt;", "&#160;", "&#x2028;", "\u2029", "\u2028", "\u2003", "\u00a0", "\ufeff",
    "\x85", "\x1c", "é", "日本", "<", ">", "&", "\r\n", "&copy", "&#0;", "\x00", "\x0b",
    "z&nbsp;&nbsp;z", "😀",
]  # fmt: skip


def _soup(rng: random.Random, depth: int = 0) -> str:
    out = []
    for _ in range(rng.randint(0, 5 if depth < 4 else 2)):
        roll = rng.random()
        if roll < 0.35:
            out.append(rng.choice(_TEXTS))
        elif roll < 0.45:
            out.append(f"<{rng.choice(_VOID)}{rng.choice(_ATTRIBUTES)}>")
        else:
            pool = rng.choice((_STRUCTURAL, _ALLOWED, _UNWRAPPED, _UNWRAPPED, _DROPPED))
            tag = rng.choice(pool)
            if roll < 0.5:
                out.append(rng.choice((f"<{tag}>", f"</{tag}>")))
                continue
            inner = _soup(rng, depth + 1) if depth < 6 else ""
            end = f"</{tag}>" if rng.random() < 0.85 else ""
            out.append(f"<{tag}{rng.choice(_ATTRIBUTES)}>{inner}{end}")
    return "".join(out)


def test_random_tag_soup_matches(fallbacks: list[str]) -> None:
    count = 3000
    sources = [_soup(random.Random(seed)) for seed in range(count)]

    assert _mismatches(sources) == []
    # Both paths were exercised, the fast one far more.
    assert 0 < len(fallbacks) < count // 4


# Every block inside every unwrapped element inside every context: the layouts nh3 leaves
# behind when it unwraps an element that was a scope boundary (marquee keeps a p open around
# an li, section keeps an li open around another li, caption holds text inside a table).
_CONTEXTS = [
    "{}",
    "<p>{}</p>",
    "<div>{}</div>",
    "<li>{}</li>",
    "<ul><li>{}</li></ul>",
    "<h2>{}</h2>",
    "<blockquote>{}</blockquote>",
    "<pre>{}</pre>",
    "<b>{}</b>",
    '<a href="https://e.com/">{}</a>',
    "<table><tr><td>{}</td></tr></table>",
    "<table><tr><td>t</td></tr>{}</table>",
]
_WRAPPERS = [
    "", "span", "section", "marquee", "applet", "caption", "dl", "dd", "font", "form", "nav",
    "x-y", "object",
]  # fmt: skip
_BLOCKS = [
    "<li>b</li>",
    "<p>b</p>",
    "<div>b</div>",
    "<h3>b</h3>",
    "<ul><li>b</li></ul>",
    "b<br>c",
    "b<hr>c",
    "<pre>b</pre>",
    "<table><tr><td>b</td></tr></table>",
    "<tr><td>b</td></tr>",
    "<td>b</td>",
    "b<li>c",
    "<b>b<p>c</b>d</p>",
]


def _nested(context: str, wrapper: str, block: str) -> str:
    inner = f"a<{wrapper}>{block}c</{wrapper}>d" if wrapper else f"a{block}d"
    return f"x{context.format(inner)}e"


def _all_nested() -> list[str]:
    return [
        _nested(context, wrapper, block)
        for context in _CONTEXTS
        for wrapper in _WRAPPERS
        for block in _BLOCKS
    ]


def test_blocks_in_unwrapped_elements_match(fallbacks: list[str]) -> None:
    sources = _all_nested()

    assert _mismatches(sources) == []
    assert 0 < len(fallbacks) < len(sources) // 2


def test_whitespace_to_collapse_is_never_missed() -> None:
    # The collapse is skipped only when it would change nothing: exact for ASCII text, on the
    # safe side (unprintable counts) for the rest.
    for point in [*range(0x80), 0x85, 0xA0, 0x1680, *range(0x2000, 0x2030), 0x205F, 0x3000]:
        text = f"ab{chr(point)}cd"
        needed = " ".join(text.split()) != text
        if point < 0x80:
            assert plaintext._other_whitespace(text) == needed, hex(point)
        elif needed:
            assert plaintext._other_whitespace(text), hex(point)
    assert plaintext._other_whitespace("two  spaces")
    assert not plaintext._other_whitespace("one space each")

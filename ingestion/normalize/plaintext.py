"""The plain text of HTML: what simhash reads and search shows.

`html_to_text` parses any HTML; `sanitized_html_to_text` gives the same string for the output
of sanitize_html, read with regexes instead of a parser because it runs once per ingested job."""

from __future__ import annotations

import html as htmlmod
import re

from selectolax.lexbor import LexborHTMLParser

from ingestion.normalize.sanitize import ALLOWED_TAGS

# Markers put into the tree before the text is read out: collapsing whitespace must not eat
# them, and they cannot occur in HTML text (the parser would keep them, but then they would
# just be one more break).
_PARA = "\u2029"
_LINE = "\u2028"
_PARAGRAPH_BLOCKS = (
    "p, div, h1, h2, h3, h4, h5, h6, ul, ol, table, blockquote, pre, section, article, "
    "header, footer, dl, hr, form, fieldset, address, figure, main, aside, nav"
)
_LINE_BLOCKS = "li, br, tr, dt, dd, td, th"
# Runs of whitespace other than a lone space (a lone space needs no rewrite: far fewer
# matches than rewriting every space), and runs of breaks; the optional space before a break
# is removed beforehand with str.replace, which is faster than a leading " ?" in the regex.
_SPACES_RE = re.compile(rf"[^\S {_PARA}{_LINE}][^\S{_PARA}{_LINE}]*| [^\S{_PARA}{_LINE}]+")
_BREAKS_RE = re.compile(rf"[{_PARA}{_LINE}][{_PARA}{_LINE} ]*")
_HTML_DROP = "script, style, noscript, template, iframe, svg, math, head, title, object"


def _break_run(match: re.Match[str]) -> str:
    return "\n\n" if _PARA in match.group(0) else "\n"


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: entities decoded, whitespace collapsed, a blank line
    between paragraphs (p, headings, lists, tables ...) and a line break between list items
    and after <br>. This is the text simhash reads and search shows."""
    if not html or not html.strip():
        return ""
    tree = LexborHTMLParser(html)
    for node in tree.css(_HTML_DROP):
        node.decompose()
    for node in tree.css(_PARAGRAPH_BLOCKS):
        node.insert_before(_PARA)
        node.insert_after(_PARA)
    for node in tree.css(_LINE_BLOCKS):
        node.insert_before(_LINE)
        node.insert_after(_LINE)
    root = tree.body or tree.root
    if root is None:
        return ""
    text = root.text(deep=True, separator="")
    text = _SPACES_RE.sub(" ", text)
    text = text.replace(" " + _PARA, _PARA).replace(" " + _LINE, _LINE)
    text = _BREAKS_RE.sub(_break_run, text)
    return "\n".join(line.strip() for line in text.strip().split("\n"))


# --- Plain text of sanitized HTML -----------------------------------------------------------
#
# sanitize_html's output is html5ever's serialization of a tree: lowercase tags, attribute
# values double-quoted (with `"` as &quot;), no comments, and text whose only `<` is a tag's and
# whose only entities are &amp; &lt; &gt; &nbsp;. That is regular enough to read with a few
# regexes instead of a parser. What a regex cannot see is how Lexbor would *rebuild* the tree:
# where nh3 unwrapped a disallowed element (marquee, section, span, caption ...), the markup
# left behind may nest in a way the HTML parser does not keep (an li directly inside an li is
# closed, text directly inside a table is moved before it), and html_to_text reads the rebuilt
# tree. Those layouts are detected and handed to html_to_text.


def _tag_names(css: str) -> frozenset[str]:
    return frozenset(css.replace(" ", "").split(","))


def _alternation(names: frozenset[str]) -> str:
    return "|".join(sorted(names, key=lambda name: (-len(name), name)))


# Only the block tags nh3 can let through: fewer alternatives to try at every tag.
_PARA_NAMES = _alternation(ALLOWED_TAGS & _tag_names(_PARAGRAPH_BLOCKS))
_LINE_NAMES = _alternation(ALLOWED_TAGS & _tag_names(_LINE_BLOCKS))
# The rest of a tag after its name, quote-aware so a `>` inside a value cannot end it (this nh3
# writes it as &gt;, html5ever has not always). Possessive: nothing here backtracks.
_ATTRS = r'(?:\s[^>"]*+(?:"[^"]*+"[^>"]*+)*+)?'
_PARA_TAG = rf"</?(?:{_PARA_NAMES}){_ATTRS}>"
_LINE_TAG = rf"</?(?:{_LINE_NAMES}){_ATTRS}>"
_BLOCK_TAG = rf"</?(?:{_PARA_NAMES}|{_LINE_NAMES}){_ATTRS}>"
# Start tags that close an open p. Only an li changes the text (its line break stands where the
# p's blank line was), but any of them falls back: a block inside a p is rare, and falling
# back is never wrong. (Lexbor parses a doctype-less page in quirks mode, where a table does
# not close a p; listed all the same.)
_CLOSES_P = r"(?:p|div|ul|ol|li|blockquote|h[1-6]|pre|hr|table)[\s>]"
_HTML_SPACE = " \t\n\r\f"
# Each alternative is a layout the parser would not rebuild as written:
#   an li inside an li (or after a list that ended inside one) with no ul/ol in between;
#   a p holding a tag that closes it;
#   a heading inside a heading (the inner one closes the outer, whose end tag is then lost).
_REBUILT_RE = re.compile(
    rf"(?:<li{_ATTRS}>|</[uo]l>)[^<]*+(?:<(?!/?(?:li|ul|ol)[\s>])[^<]*+)*+<li[\s>]"
    rf"|<p{_ATTRS}>[^<]*+(?:<(?!/p>|{_CLOSES_P})[^<]*+)*+<{_CLOSES_P}"
    rf"|<h[1-6]{_ATTRS}>[^<]*+(?:<(?!/?h[1-6][\s>])[^<]*+)*+<h[1-6][\s>]"
)
# Anything but whitespace, rows and cells directly inside a table, tbody, thead or tr (what was
# in a caption): the parser moves it before the table. Most descriptions have no table.
_REBUILT_TABLE_RE = re.compile(
    rf"(?:<(?:table|tbody|thead|tr){_ATTRS}>|</(?:tr|td|th|tbody|thead)>)[{_HTML_SPACE}]*+"
    rf"(?!<(?:/?(?:tbody|thead|tr)|td|th|/table)[\s>])[^{_HTML_SPACE}]"
)
_INLINE_TAG_RE = re.compile(
    rf'<(?!/?(?:{_PARA_NAMES}|{_LINE_NAMES})[\s>])[^>"]*+(?:"[^"]*+"[^>"]*+)*+>'
)
# A run of block tags and the whitespace between and after them (the whitespace before is
# left to the caller). Both start with a literal "<", which re finds with a fast scan; a
# pattern that starts with a repeat is tried at every character (several times slower).
_PARA_RUN_RE = re.compile(
    rf"<(?:/?(?:{_LINE_NAMES}){_ATTRS}>\s*+<)*+/?(?:{_PARA_NAMES}){_ATTRS}>"
    rf"(?:\s*+{_BLOCK_TAG})*+\s*+"
)
_LINE_RUN_RE = re.compile(rf"{_LINE_TAG}(?:\s*+{_LINE_TAG})*+\s*+")
# Stand-ins for the breaks while whitespace is collapsed: printable and not whitespace, and
# absent from the text, where html5ever escapes every < and >.
_PARA_STAND_IN = ">"
_LINE_STAND_IN = "<"


# The characters other than the space that str.split() takes for whitespace in ASCII text.
_ASCII_WHITESPACE = ("\n", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def _other_whitespace(text: str) -> bool:
    """Whether `text` has whitespace other than single spaces (two spaces, a tab …). For
    ASCII text a few substring scans, cheaper than isprintable(); otherwise every whitespace
    character but the space is unprintable."""
    if "  " in text:
        return True
    if text.isascii():
        return any(char in text for char in _ASCII_WHITESPACE)
    return not text.isprintable()


def sanitized_html_to_text(html: str, *, as_written: bool = False) -> str:
    """html_to_text for the output of sanitize_html, and only for it: the same string, without
    a parse (it runs once per ingested job; docs/performance.md has the figures). It reads the
    markup with regexes and so relies on what sanitize_html emits (html5ever's serialization
    of a strict allowlist); markup the HTML parser would rebuild differently, which only
    unwrapped disallowed elements leave behind, goes to html_to_text. Any other HTML may come
    out wrong. `as_written`: sanitize_html_as_written said the parser keeps this markup as
    written, so there is no such layout to look for."""
    if not html:
        return ""
    if not as_written and (
        _REBUILT_RE.search(html) or ("<table" in html and _REBUILT_TABLE_RE.search(html))
    ):
        return html_to_text(html)
    text = _INLINE_TAG_RE.sub("", html)
    # U+00A0 is whitespace to html_to_text (\s) and never survives it: a plain space does the
    # same and keeps the text ASCII more often (cheaper to split). Raw U+2028/U+2029 count as
    # breaks there, being html_to_text's own markers.
    if "&nbsp;" in text:
        text = text.replace("&nbsp;", " ")
    if _LINE in text:
        text = text.replace(_LINE, "<br>")
    if _PARA in text:
        text = text.replace(_PARA, "<hr>")
    text = _PARA_RUN_RE.sub(_PARA_STAND_IN, text)
    text = _LINE_RUN_RE.sub(_LINE_STAND_IN, text)
    # Whitespace between words is mostly single spaces already; collapsing it (str.split and
    # \s agree on what whitespace is) is the costliest step, so it is skipped when it would
    # change nothing.
    if _other_whitespace(text):
        text = " ".join(text.split())
    text = (
        text.replace(" " + _PARA_STAND_IN, "\n\n")
        .replace(_PARA_STAND_IN, "\n\n")
        .replace(" " + _LINE_STAND_IN, "\n")
        .replace(_LINE_STAND_IN, "\n")
    )
    if "&" in text:
        # &amp; last: "&amp;lt;" is the text "&lt;".
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.strip()


# --- The words simhash reads, straight from raw HTML ----------------------------------------
#
# The listing fingerprints every new or updated posting on one worker before the chunks fan
# out, so the fingerprint's text is cut from the raw HTML with a few regexes instead of the
# sanitizing parse the page's text needs. It is its own definition, not an imitation of the
# page's text: every simhash Intake computes and stores reads it (the listing's, and the
# ingesting stage's for a posting whose text only its detail page had), so any two compare.

# Block tags: a line break each (simhash's boilerplate is found line by line). The text is
# lowercased first (simhash reads it lowercased): a case-blind regex is slower.
_FINGERPRINT_BREAK_RE = re.compile(
    r"<(?:/?(?:p|div|ul|ol|li|h[1-6]|blockquote|pre|table|tr|td|th|dl|dt|dd|section|article"
    r"|header|footer|main|aside|nav|figure|address|form|fieldset)\b|/?(?:br|hr)\b)[^>]*+>"
)
# Any other tag, comment, doctype or processing instruction: a space.
_FINGERPRINT_TAG_RE = re.compile(r"<[a-z/!?][^>]*+>")
# Text that is not the posting's: scripts, styles, comments (which may hold a ">").
_FINGERPRINT_DROP_RE = re.compile(
    r"<!--.*?(?:-->|$)|<(script|style|template|svg|math|noscript)\b.*?(?:</\1\s*>|$)",
    re.DOTALL,
)
_FINGERPRINT_DROP_HINT_RE = re.compile(r"<(?:!--|script|style|template|svg|math|noscript)")


def fingerprint_text(html: str) -> str:
    """The text simhash reads of a source's raw description HTML, lowercased: its words, a
    line per block (paragraph, list item, heading, table cell …), entities decoded; scripts,
    styles and comments left out. A description without tags keeps its own lines. Only for
    simhash: case, spacing and punctuation are not the page's (`html_to_text` is)."""
    if not html:
        return ""
    text = html.lower()
    if "<" in text:
        if _FINGERPRINT_DROP_HINT_RE.search(text):
            text = _FINGERPRINT_DROP_RE.sub(" ", text)
        # New lines in HTML are spaces; its lines are its blocks.
        text = _FINGERPRINT_BREAK_RE.sub("\n", text.replace("\n", " "))
        text = _FINGERPRINT_TAG_RE.sub(" ", text)
    if "&" in text:
        text = htmlmod.unescape(text)
    return text

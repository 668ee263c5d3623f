"""Pure functions that turn what a source says into Intake's canonical values: safe HTML, plain
text, employment and workplace types, locations, salaries, datetimes, and a content hash.

Nothing here touches the database or the network; every function takes junk without raising
and answers "unknown" ("" or None) instead, because a posting with one odd field is still a
posting."""

from __future__ import annotations

import email.utils
import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from hashlib import blake2b
from typing import Any

import nh3
from selectolax.lexbor import LexborHTMLParser

from ingestion.adapters.base import Posting

# --- HTML -----------------------------------------------------------------------------------

# Everything a job description needs and nothing that runs, styles or fetches. `div` is kept
# (without attributes) because boards (Ashby, Greenhouse) lay paragraphs out in divs, and
# dropping the tag would glue the last word of one paragraph to the first of the next.
_ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "div",
        "ul",
        "ol",
        "li",
        "strong",
        "em",
        "b",
        "i",
        "u",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "a",
        "code",
        "pre",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)
# Removed together with their content (the text inside an iframe or svg is fallback or
# drawing text, never part of the description).
_CLEAN_CONTENT_TAGS = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "noscript",
        "noframes",
        "svg",
        "math",
        "template",
        "object",
        "embed",
        "title",
        "textarea",
        "select",
        "button",
    }
)
_CLEANER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags=set(_CLEAN_CONTENT_TAGS),
    # Only href on links: no on*, style, class, id, hx-*, data-* anywhere.
    # "*" empty: without it ammonia keeps its generic title and lang on every tag.
    attributes={"a": {"href"}, "*": set()},
    url_schemes={"http", "https", "mailto"},
    # A relative link is relative to the board's site, not ours: drop it.
    url_relative="deny",
    link_rel="nofollow noopener noreferrer",
    strip_comments=True,
)
# The page has its own h1 (the job title): a description's h1 becomes an h2.
_H1_RE = re.compile(r"<(/?)h1(?=[\s/>])", re.IGNORECASE)


def sanitize_html(html: str) -> str:
    """Sanitize a source's description HTML with a strict allowlist; the result is safe to
    render as-is (scripts, styles, event handlers, htmx attributes, non-http(s)/mailto links
    and relative links are gone; links get rel="nofollow noopener noreferrer")."""
    if not html:
        return ""
    return _CLEANER.clean(_H1_RE.sub(r"<\1h2", html)).strip()


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
_PARA_NAMES = _alternation(_ALLOWED_TAGS & _tag_names(_PARAGRAPH_BLOCKS))
_LINE_NAMES = _alternation(_ALLOWED_TAGS & _tag_names(_LINE_BLOCKS))
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
    ASCII text a few substring scans (2.4 µs on 2 KB; isprintable() took 6); otherwise every
    whitespace character but the space is unprintable."""
    if "  " in text:
        return True
    if text.isascii():
        return any(char in text for char in _ASCII_WHITESPACE)
    return not text.isprintable()


def sanitized_html_to_text(html: str) -> str:
    """html_to_text for the output of sanitize_html, and only for it: the same string, three
    to four times faster on a 2 KB description (it runs once per ingested job). It reads the
    markup with regexes and so relies on what sanitize_html emits (html5ever's serialization
    of a strict allowlist); markup the HTML parser would rebuild differently, which only
    unwrapped disallowed elements leave behind, goes to html_to_text. Any other HTML may come
    out wrong."""
    if not html:
        return ""
    if _REBUILT_RE.search(html) or ("<table" in html and _REBUILT_TABLE_RE.search(html)):
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


# --- Employment and workplace types ---------------------------------------------------------

EMPLOYMENT_TYPES = (
    "full_time",
    "part_time",
    "contract",
    "temporary",
    "internship",
    "volunteer",
    "per_diem",
    "other",
)
# Checked in order on the words of the value: the more specific kind wins when a board says
# two things ("Part-time internship" is an internship, "Full-time, fixed term" is temporary).
_EMPLOYMENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("internship", r"\b(intern|interns|internship|co ?op|apprentice|apprenticeship|trainee)\b"),
        ("volunteer", r"\b(volunteer|volunteering|unpaid)\b"),
        ("per_diem", r"\b(per ?diem|prn)\b"),
        ("temporary", r"\b(temporary|temp|seasonal|fixed ?term|interim)\b"),
        ("contract", r"\b(contract|contractor|contracting|freelance|freelancer|consultant)\b"),
        ("part_time", r"\b(part ?time)\b"),
        ("full_time", r"\b(full ?time|permanent|regular|fte|salaried|employee)\b"),
        ("other", r"\b(other)\b"),
    )
)
_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")


def normalize_employment_type(value: str) -> str:
    """One of EMPLOYMENT_TYPES for a board's employment type or commitment ("Full-time",
    "FULL_TIME", "Permanent", "Intern", "CONTRACTOR", "Part-Time - Remote" ...), "" for an
    empty value and "other" for one that names none of them."""
    words = _NON_ALNUM_RE.sub(" ", (value or "").lower()).strip()
    if not words:
        return ""
    for kind, pattern in _EMPLOYMENT_PATTERNS:
        if pattern.search(words):
            return kind
    return "other"


WORKPLACE_TYPES = ("remote", "hybrid", "onsite")
_WORKPLACE_VALUES = {
    "remote": "remote",
    "fully remote": "remote",
    "telecommute": "remote",  # schema.org jobLocationType
    "work from home": "remote",
    "wfh": "remote",
    "hybrid": "hybrid",
    "onsite": "onsite",
    "on site": "onsite",
    "in office": "onsite",
    "office": "onsite",
    "in person": "onsite",
    "on premises": "onsite",
}
_LOCATION_HYBRID_RE = re.compile(r"\bhybrid\b", re.IGNORECASE)
_LOCATION_REMOTE_RE = re.compile(
    r"\b(remote|anywhere|work from home|wfh|telecommute|distributed)\b", re.IGNORECASE
)
_LOCATION_NOT_REMOTE_RE = re.compile(r"\b(no|not|non)[ -]remote\b", re.IGNORECASE)
_LOCATION_ONSITE_RE = re.compile(r"\b(on-?site|in[ -]office|in[ -]person)\b", re.IGNORECASE)
# In the description only unambiguous statements about the role count: "remote-first
# company" says nothing about this role.
_TEXT_REMOTE_RE = re.compile(
    r"\b(this (role|position|job) is (fully |100% )?remote|fully remote (role|position)"
    r"|100% remote|(remote|work from home) (role|position))\b",
    re.IGNORECASE,
)
_TEXT_HYBRID_RE = re.compile(
    r"\b(this (role|position|job) is hybrid|hybrid (role|position|work model|schedule))\b",
    re.IGNORECASE,
)


def _workplace_from_words(value: str) -> str:
    if _LOCATION_HYBRID_RE.search(value):
        return "hybrid"
    if _LOCATION_REMOTE_RE.search(value) and not _LOCATION_NOT_REMOTE_RE.search(value):
        return "remote"
    if _LOCATION_ONSITE_RE.search(value):
        return "onsite"
    return ""


def normalize_workplace(
    location: str, workplace_type: str, remote: bool | None, text: str = ""
) -> tuple[bool | None, str]:
    """(remote, workplace_type) with workplace_type one of remote | hybrid | onsite | "".

    The board's explicit workplace type wins (Ashby's workplaceType over its isRemote), then
    its remote flag, then what the location says ("Remote - US", "Anywhere", "Hybrid"), then
    an unambiguous sentence of the description; otherwise unknown (None, ""). Hybrid and
    onsite roles are not remote."""
    key = _NON_ALNUM_RE.sub(" ", (workplace_type or "").lower()).strip()
    kind = _WORKPLACE_VALUES.get(key, "")
    if kind:
        return kind == "remote", kind
    words = _workplace_from_words(location or "")
    if remote is True:
        return True, "remote"
    if remote is False:
        # The flag only says "not remote": the location may still tell hybrid from onsite.
        return False, words if words in ("hybrid", "onsite") else ""
    if words:
        return words == "remote", words
    if text:
        lowered = text.lower()
        if _states(_TEXT_HYBRID_RE, lowered, ("hybrid",)):
            return False, "hybrid"
        if _states(_TEXT_REMOTE_RE, lowered, ("remote", "work from home")):
            return True, "remote"
    return None, ""


# Every sentence the description patterns accept contains one of their keywords, with at most
# this many characters before it and after it.
_STATEMENT_REACH = 32
_NON_WORD_RE = re.compile(r"\W")


def _states(pattern: re.Pattern[str], lowered: str, keywords: tuple[str, ...]) -> bool:
    """Whether `pattern` matches around some occurrence of a keyword in `lowered`. A search
    of the whole text costs ~100 µs on 2 KB (every word boundary is a candidate start);
    most texts have no keyword, and the others only a few."""
    for keyword in keywords:
        at = lowered.find(keyword)
        while at >= 0:
            # The window ends at a word's end, so the pattern's closing \b is decided by the
            # real next character (search() sees the text before `pos` for \b).
            end = _NON_WORD_RE.search(lowered, at + len(keyword) + _STATEMENT_REACH)
            if pattern.search(
                lowered, max(0, at - _STATEMENT_REACH), end.start() if end else len(lowered)
            ):
                return True
            at = lowered.find(keyword, at + 1)
    return False


# --- Locations ------------------------------------------------------------------------------

_LOCATION_SPLIT_RE = re.compile(r"\s*(?:[;|\n•·]|\s/\s)\s*")
_LOCATION_PART_RE = re.compile(r"\s*,\s*")


def normalize_location(value: str) -> str:
    """Tidy a location: collapse whitespace, one ", " between a place's parts, "; " between
    places (boards separate them with ; | / • or new lines), empty parts dropped and repeated
    places (ignoring case) kept once."""
    if not value:
        return ""
    places: list[str] = []
    seen: set[str] = set()
    for raw in _LOCATION_SPLIT_RE.split(value):
        parts = [" ".join(p.split()).strip(" -–—") for p in _LOCATION_PART_RE.split(raw)]
        place = ", ".join(p for p in parts if p)
        if place and place.casefold() not in seen:
            seen.add(place.casefold())
            places.append(place)
    return "; ".join(places)


# --- Salaries -------------------------------------------------------------------------------

_CURRENCY_WORDS = (
    "USD EUR GBP CAD AUD NZD CHF JPY CNY INR SGD HKD SEK NOK DKK PLN CZK HUF ILS BRL MXN ZAR "
    "AED SAR KRW TWD THB PHP IDR MYR VND TRY RON BGN UAH ARS CLP COP PEN NGN KES EGP PKR"
)
_CURRENCY_CODES = frozenset(_CURRENCY_WORDS.split())
# Longest first so "CA$" is not read as "$".
_CURRENCY_SYMBOLS = (
    ("CA$", "CAD"),
    ("C$", "CAD"),
    ("AU$", "AUD"),
    ("A$", "AUD"),
    ("NZ$", "NZD"),
    ("HK$", "HKD"),
    ("S$", "SGD"),
    ("R$", "BRL"),
    ("US$", "USD"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("₹", "INR"),
    ("₩", "KRW"),
    ("zł", "PLN"),
    ("₪", "ILS"),
)
_CODE_RE = re.compile(r"(?<![A-Za-z])([A-Z]{3})(?![A-Za-z])")
_PERIOD_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (period, re.compile(pattern, re.IGNORECASE))
    for period, pattern in (
        ("hour", r"(/\s*h(ou)?r\b|\bper\s+h(ou)?r\b|\ban?\s+hour\b|\bhourly\b|\bph\b|/\s*h\b)"),
        ("day", r"(/\s*day\b|\bper\s+day\b|\ba\s+day\b|\bdaily\b|\bper\s+diem\b)"),
        ("week", r"(/\s*(wk|week)\b|\bper\s+week\b|\ba\s+week\b|\bweekly\b)"),
        ("month", r"(/\s*mo(nth)?\b|\bper\s+month\b|\ba\s+month\b|\bmonthly\b|\bpcm\b)"),
        (
            "year",
            r"(/\s*y(ea)?r\b|\bper\s+(year|annum)\b|\ba\s+year\b|\byearly\b|\bannual(ly)?\b"
            r"|\bp\.?\s?a\.?(?![a-z])|\bper\s+yr\b|/\s*a\b)",
        ),
    )
)
# 120,000 | 120.000 | 45.50 | 120k | 1.2M — a number with an optional multiplier.
_AMOUNT_RE = re.compile(r"(?<![\w.,])(\d{1,3}(?:[.,\s]\d{3})+|\d+)(?:[.,](\d{1,2}))?\s*([kKmM])?\b")
_RANGE_SEP_RE = re.compile(r"^\s*(?:-|–|—|to|and|~)\s*[^\d\s]{0,4}\s*$", re.IGNORECASE)
_UP_TO_RE = re.compile(r"\b(up\s+to|max(imum)?|under)\b", re.IGNORECASE)
_SALARY_MAX = Decimal("9999999999")  # the Job columns hold 12 digits, 2 of them decimals
_CENTS = Decimal("0.01")


def _amount(integer: str, fraction: str | None, suffix: str | None) -> Decimal:
    digits = re.sub(r"[.,\s]", "", integer)
    value = Decimal(digits + ("." + fraction if fraction else ""))
    if suffix:
        value *= 1000 if suffix in "kK" else 1_000_000
    return value


def _salary_currency(text: str) -> str:
    for symbol, code in _CURRENCY_SYMBOLS:
        if symbol in text:
            return code
    for match in _CODE_RE.finditer(text):
        if match.group(1) in _CURRENCY_CODES:
            return match.group(1)
    return ""


def parse_salary(text: str) -> tuple[Decimal | None, Decimal | None, str, str]:
    """(min, max, ISO currency, period) from a salary as written: "$120,000 - $150,000 a
    year", "€50k–60k", "USD 45/hr", "£30,000 per annum", "Up to $90k".

    A single figure is both min and max ("up to" makes it a max only). Without a written
    period a figure of 10,000 or more is taken as yearly. Text with neither a currency nor a
    period ("401k match", "Competitive") is not a salary: (None, None, "", "")."""
    nothing: tuple[Decimal | None, Decimal | None, str, str] = (None, None, "", "")
    if not text or len(text) > 500:
        return nothing
    currency = _salary_currency(text)
    period = ""
    for name, pattern in _PERIOD_PATTERNS:
        if pattern.search(text):
            period = name
            break
    if not currency and not period:
        return nothing
    matches = list(_AMOUNT_RE.finditer(text))
    if not matches:
        return nothing
    try:
        first = matches[0]
        low = _amount(first.group(1), first.group(2), first.group(3))
        high = low
        if len(matches) > 1:
            second = matches[1]
            between = text[first.end() : second.start()]
            if _RANGE_SEP_RE.match(between):
                high = _amount(second.group(1), second.group(2), second.group(3))
                # "50–60k": the multiplier written once applies to both ends.
                if second.group(3) and not first.group(3) and low < 1000:
                    low = _amount(first.group(1), first.group(2), second.group(3))
    except InvalidOperation:
        return nothing
    if low > high:
        low, high = high, low
    if high <= 0 or high > _SALARY_MAX:
        return nothing
    if not period and low >= 10_000:
        period = "year"
    low_out: Decimal | None = low.quantize(_CENTS)
    if low == high and _UP_TO_RE.search(text[: first.start()]):
        low_out = None
    return low_out, high.quantize(_CENTS), currency, period


# --- Datetimes ------------------------------------------------------------------------------

# Outside these years a date is junk (epoch 0, "9999-12-31" meaning "no end date").
MIN_YEAR = 1990
MAX_YEAR = 2100
_EPOCH_MS_THRESHOLD = 100_000_000_000  # as seconds that is the year 5138: so it is ms
_NUMERIC_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")
_LONG_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


def _sane(value: datetime) -> datetime | None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return value if MIN_YEAR <= value.year <= MAX_YEAR else None


def _from_epoch(number: float) -> datetime | None:
    if math.isnan(number) or math.isinf(number):
        return None
    if abs(number) >= _EPOCH_MS_THRESHOLD:
        number /= 1000
    try:
        return _sane(datetime.fromtimestamp(number, tz=UTC))
    except (OverflowError, OSError, ValueError):
        return None


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from what boards send: ISO 8601 with or without a zone
    (naive means UTC; a date alone is midnight UTC), RFC 2822, epoch seconds or milliseconds
    as a number or a string of digits (Lever's createdAt is epoch ms), a datetime or a date.
    None for anything else, and for years outside MIN_YEAR..MAX_YEAR."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return _sane(value)
    if isinstance(value, date):
        return _sane(datetime.combine(value, time.min))
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if _NUMERIC_RE.match(text):
        return _from_epoch(float(text))
    iso = _LONG_FRACTION_RE.sub(r"\1", text)
    if iso[-1:] in "zZ":
        iso = iso[:-1] + "+00:00"
    try:
        return _sane(datetime.fromisoformat(iso))
    except ValueError:
        pass
    try:
        return _sane(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        return None


# --- Content hash ---------------------------------------------------------------------------


def _canonical(value: object) -> str:
    # Values that compare equal hash equal whichever way they arrived: Decimal("1.50") and
    # Decimal("1.5"); a datetime in any zone (naive is UTC, as parse_datetime reads it).
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    return str(value)


_HASHED_FIELDS = (
    "title",
    "url",
    "location",
    "remote",
    "workplace_type",
    "employment_type",
    "department",
    "description_html",
    "requirements_html",
    "posted_at",
    "valid_through",
    "salary_min",
    "salary_max",
    "salary_currency",
    "salary_period",
    "salary_text",
)


def content_hash(posting: Posting) -> str:
    """32 hex characters (blake2b, 16 bytes) over a posting's content fields as the source
    gave them. Equal postings hash equal; any edit to a content field changes the hash. Each
    field is length-prefixed, so no shift of text between fields can collide."""
    parts = []
    for field in _HASHED_FIELDS:
        value = getattr(posting, field)
        # Most fields are plain strings: skip the conversions (a hot path of every listing).
        text = value if type(value) is str else _canonical(value)
        parts.append(f"{len(text)}:{text}")
    return blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

"""Safe HTML from a source's description: a strict allowlist, applied with nh3 (ammonia)."""

from __future__ import annotations

import re

import nh3

# Everything a job description needs and nothing that runs, styles or fetches. `div` is kept
# (without attributes) because boards (Ashby, Greenhouse) lay paragraphs out in divs, and
# dropping the tag would glue the last word of one paragraph to the first of the next.
ALLOWED_TAGS = frozenset(
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
    tags=set(ALLOWED_TAGS),
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
    return sanitize_html_as_written(html)[0]


def sanitize_html_as_written(html: str) -> tuple[str, bool]:
    """sanitize_html's result, and whether it is markup the HTML parser keeps as written
    (the fast path's, below): its text can be read off the markup with no check for layouts
    the parser would rebuild (plaintext.sanitized_html_to_text's `as_written`)."""
    if not html:
        return "", True
    # A substring test first: most descriptions have no h1, and the regex scans all of it.
    if "h1" in html or "H1" in html:
        html = _H1_RE.sub(r"<\1h2", html)
    clean = _already_clean(html)
    if clean is None:
        return _CLEANER.clean(html).strip(), False
    return clean.strip(), True


# --- HTML that nh3 would give back as it is ---------------------------------------------------
#
# Many descriptions are already what nh3 emits: allowed tags without attributes, properly
# nested, text with only the entities html5ever writes. Such markup is checked here with a
# split and a walk over its tags (a few times cheaper than nh3's parse, tree and
# serialization) and returned as nh3 would return it; anything else goes to nh3. The check
# accepts only layouts the HTML parser keeps as written (nothing it closes, moves or reopens),
# so html5ever's tree is the markup itself and its serialization the same string, up to the
# few rewrites below. Safe by construction either way: what is accepted holds no tag but
# these and no attribute but a plain http(s) link's href. tests/ingestion/test_fast_sanitize.py
# compares it with nh3 on realistic, noisy and random markup.

# Neither pre (the parser drops a newline after its start tag) nor tables (the parser moves
# text out of them and adds tbody): nh3 takes those.
_KEPT_TAGS = ("p", "div", "ul", "ol", "li", "strong", "em", "b", "i", "u", "blockquote", "code")
_HEADINGS = frozenset({"h2", "h3", "h4", "h5", "h6"})
_VOID_TAGS = frozenset({"br", "hr"})
# Start tags that close an open p: the parser would end the p there.
_CLOSES_P = frozenset({"p", "div", "ul", "ol", "li", "blockquote", "hr", *_HEADINGS})
# Tags as they stand between "<" and ">".
_START_TAGS = {name: name for name in (*_KEPT_TAGS, *_HEADINGS, *_VOID_TAGS)}
_END_TAGS = {f"/{name}": name for name in (*_KEPT_TAGS, *_HEADINGS, "a")}
# A link nh3 keeps as written: an absolute http(s) URL the URL parser cannot refuse (a plain
# host name ending in a letter label, no credentials or port, no character html5ever would
# escape or decode in an attribute).
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_LINK_RE = re.compile(
    rf'a href="https?://(?:{_LABEL}\.)+[a-z]{{2,63}}(?:[/?#][A-Za-z0-9._~/?#=%+,:@-]*+)?"'
)
_TAG_RE = re.compile(r"<([^<>]*+)>")
_LINK_REL_RE = re.compile(r'(<a href="[^"]*+")>')
# Characters the parser drops or rewrites (NUL, CR), may treat specially, or that nh3 cannot
# take (lone surrogates: it raises, and so must this path): nh3 decides.
_UNUSUAL_CHAR_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufeff\ufffe\uffff]"
)
_ASCII_CONTROLS = bytes([*range(0x09), *range(0x0B, 0x20), 0x7F])
# In text html5ever writes no entity but these four (and no & is left in an accepted tag).
_OTHER_ENTITY_RE = re.compile(r"&(?!(?:amp|lt|gt|nbsp);)")


def _already_clean(html: str) -> str | None:
    """What nh3 returns for `html` (before the strip) when the markup is of the simple kind
    described above, else None."""
    if html.isascii():
        # Deleting bytes through a table: a faster scan than the character class's.
        if len(html.encode("ascii").translate(None, _ASCII_CONTROLS)) != len(html):
            return None
    else:
        if _UNUSUAL_CHAR_RE.search(html):
            return None
        if "\xa0" in html:  # written back as &nbsp; wherever it stands
            html = html.replace("\xa0", "&nbsp;")
    if "&" in html:
        if "&#39;" in html:  # decoded, and written back as a plain ' wherever it stands
            html = html.replace("&#39;", "'")
        if _OTHER_ENTITY_RE.search(html):
            return None
    tags = _TAG_RE.findall(html)
    # A "<" or ">" in text (written back as &lt; &gt;) is one more than the tags hold.
    if html.count("<") != len(tags) or html.count(">") != len(tags):
        return None
    stack: list[str] = []
    in_p = in_heading = in_link = links = False
    for tag in tags:
        name = _START_TAGS.get(tag)
        if name is not None:
            if in_p and name in _CLOSES_P:
                return None
            if name in _HEADINGS:
                if in_heading:  # the parser closes the outer heading
                    return None
                in_heading = True
            elif name == "li":
                # Only directly in a list: another li open below would be closed.
                if not stack or stack[-1] not in ("ul", "ol"):
                    return None
            elif name == "p":
                in_p = True
            if name not in _VOID_TAGS:
                stack.append(name)
            continue
        name = _END_TAGS.get(tag)
        if name is not None:
            if not stack or stack.pop() != name:
                return None
            if name == "p":
                in_p = False
            elif name == "a":
                in_link = False
            elif name in _HEADINGS:
                in_heading = False
            continue
        if in_link or not tag.startswith("a ") or not _LINK_RE.fullmatch(tag):
            return None
        stack.append("a")
        in_link = links = True
    if stack:
        return None
    if links:
        html = _LINK_REL_RE.sub(r'\1 rel="nofollow noopener noreferrer">', html)
    return html

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
    if not html:
        return ""
    return _CLEANER.clean(_H1_RE.sub(r"<\1h2", html)).strip()

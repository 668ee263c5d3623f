"""Bounds on HTML before a parser sees it (lexbor for pages and descriptions, nh3 to sanitize).

A parsed document takes many times the memory of its text (per tag, not per byte), and nested
blocks take time with the square of their depth in both parsers (each new block checks the
elements still open). Pages and descriptions beyond these limits are refused, not parsed;
no real careers page or posting comes near them.
"""

from __future__ import annotations

import re

MAX_TAGS = 100_000
MAX_DEPTH = 1_000

# Elements that never hold others (void) or close by themselves when a sibling starts: they
# do not deepen the nesting that is estimated.
_NOT_NESTING = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr", "li", "p", "td", "th", "tr", "dt", "dd", "option", "optgroup",
    "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rp",
})  # fmt: skip
_TAG_START = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)")
# Elements whose content is text, not tags (a JSON-LD block's "<p>" is not an element).
_RAW_TEXT_END = {
    name: re.compile(rf"</{name}[\s/>]", re.IGNORECASE)
    for name in ("script", "style", "textarea", "title", "xmp", "noscript")
}


def problem(html: str) -> str:
    """Why `html` is not to be parsed ("" when it is fine): "has more than 100,000 HTML tags"
    or "nests HTML elements deeper than 1,000". The depth is estimated from the tags in one
    linear pass; with fewer tags than MAX_DEPTH (most descriptions) there is no pass at all."""
    tags = html.count("<")
    if tags > MAX_TAGS:
        return f"has more than {MAX_TAGS:,} HTML tags"
    if tags <= MAX_DEPTH:
        return ""
    depth = 0
    position = 0
    search = _TAG_START.search
    while match := search(html, position):
        end = html.find(">", match.end())
        if end < 0:
            break
        position = end + 1
        name = match.group(2).lower()
        if name in _RAW_TEXT_END and not match.group(1):
            closing = _RAW_TEXT_END[name].search(html, position)
            position = closing.end() if closing else len(html)
            continue
        if html[end - 1] == "/" or name in _NOT_NESTING:
            continue
        if match.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > MAX_DEPTH:
                return f"nests HTML elements deeper than {MAX_DEPTH:,}"
    return ""

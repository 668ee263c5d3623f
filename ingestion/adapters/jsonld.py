"""Careers sites that describe their postings with schema.org JSON-LD (kind "jsonld").

The identifier is a careers page URL. The page may carry `JobPosting`s itself; its links (same
site, at most `max_links`) are followed in a small thread pool and every linked page that
carries a JobPosting contributes its postings; other pages are dropped. Linked pages that
answer 404/410 are simply not postings; when more than a tenth of them fail otherwise
(network, 5xx), the listing is refused (SourceFailed) rather than returned partial, because a
partial listing would expire the jobs on the pages that failed.

`postings_from_html` is the reusable part (the URL list adapter reads each page with it): it
parses every `<script type="application/ld+json">` block of a page — several blocks, `@graph`,
top-level arrays, postings nested in other nodes, `@type` lists, HTML-escaped JSON, and common
breakage (HTML comments, CDATA, trailing commas, raw newlines in strings); a block that stays
unreadable is skipped and the others still count — and maps each JobPosting to a Posting
with ingestion.adapters.jsonld_postings, which marks it invalid when a field Google requires
is missing.
"""

from __future__ import annotations

import contextlib
import html as htmllib
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from ingestion import htmlbounds, safejson
from ingestion.adapters.base import Adapter, Posting, SourceFailed
from ingestion.adapters.jsonld_postings import to_posting
from ingestion.adapters.readers import (
    normalize_url,
    ordered_parallel,
    same_site,
)
from ingestion.fetching import FetchError, url_refusal

if TYPE_CHECKING:
    from ingestion.models import Source

log = logging.getLogger(__name__)

_SKIPPED_EXTENSIONS = (
    ".pdf", ".jpg", ".jpeg", ".png", ".gif", ".svg", ".webp", ".ico", ".css", ".js", ".zip",
    ".doc", ".docx", ".xml", ".rss", ".mp4", ".mp3", ".woff", ".woff2",
)  # fmt: skip

# --- JSON-LD blocks ---------------------------------------------------------------------------

_COMMENT_WRAPPERS = re.compile(r"^\s*(?:<!--|/\*\s*<!\[CDATA\[\s*\*/|//\s*<!\[CDATA\[)|"
                               r"(?:-->|/\*\s*\]\]>\s*\*/|//\s*\]\]>)\s*$")  # fmt: skip
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _loads_lenient(raw: str) -> Any:
    """json.loads, then the usual fix-ups for hand-made blocks; ValueError if none works."""
    text = raw.strip().lstrip("\ufeff")
    attempts: list[Callable[[str], str]] = [
        lambda t: t,
        lambda t: _COMMENT_WRAPPERS.sub("", t).strip(),
        lambda t: _TRAILING_COMMA.sub(r"\1", t),
        # The whole block HTML-escaped (&quot; for quotes).
        lambda t: htmllib.unescape(t) if "&quot;" in t or "&#34;" in t else t,
    ]
    error: ValueError | None = None
    for fix in attempts:
        text = fix(text)
        try:
            # strict=False: raw newlines and tabs inside strings are common.
            return safejson.loads(text, strict=False)
        except ValueError as exc:
            error = exc
    assert error is not None
    raise error


# --- HTML ------------------------------------------------------------------------------------
# DOMs built at once in a process (a source reads FETCH_THREADS pages at once; each DOM takes
# many times its page).
_PARSES = threading.BoundedSemaphore(2)


class PageNotRead(ValueError):
    """A page too large or too deeply nested to parse; the message says which."""


@contextlib.contextmanager
def parsed_html(html: str) -> Iterator[LexborHTMLParser]:
    """The DOM of `html`, built when no more than two others are (per process);
    PageNotRead for a page beyond htmlbounds' limits."""
    problem = htmlbounds.problem(html)
    if problem:
        raise PageNotRead(f"the page {problem}: not read")
    with _PARSES:
        tree = LexborHTMLParser(html)
        try:
            yield tree
        finally:
            del tree


def jsonld_blocks(html: str) -> list[Any]:
    """The parsed JSON of every `application/ld+json` script of a page, in page order; a
    block that cannot be parsed is left out (logged). PageNotRead for a page that is not
    parsed (parsed_html)."""
    blocks: list[Any] = []
    with parsed_html(html) as tree:
        scripts = [
            node.text(deep=True) or ""
            for node in tree.css("script[type]")
            if (node.attributes.get("type") or "").split(";")[0].strip().lower()
            == "application/ld+json"
        ]
    for raw in scripts:
        if not raw.strip():
            continue
        try:
            blocks.append(_loads_lenient(raw))
        except ValueError as exc:
            log.info("Skipping a malformed JSON-LD block: %s", exc)
    return blocks


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type", ())
    values = value if isinstance(value, list) else [value]
    # "JobPosting", "schema:JobPosting", "https://schema.org/JobPosting"
    return {str(v).rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].lower() for v in values}


def find_job_postings(data: Any, _depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every JobPosting node in parsed JSON-LD: at the top, in arrays, in `@graph`, or nested
    in another node (a WebPage's mainEntity, an ItemList's items)."""
    if _depth > 16:
        return
    if isinstance(data, list):
        for item in data:
            yield from find_job_postings(item, _depth + 1)
    elif isinstance(data, dict):
        if "jobposting" in _types(data):
            yield data
            return
        for key, value in data.items():
            if key != "@context" and isinstance(value, dict | list):
                yield from find_job_postings(value, _depth + 1)


# --- mapping ------------------------------------------------------------------------------------


def postings_from_html(html: str, page_url: str, *, fallback_id: str = "") -> list[Posting]:
    """Every JobPosting in the JSON-LD of a page, as Postings. Without an `identifier`, a
    posting's external_id is `fallback_id` or `page_url` (with "#2", "#3"… for further
    postings on the same page, so they do not collide)."""
    return _postings_from_blocks(jsonld_blocks(html), page_url, fallback_id=fallback_id)


def _postings_from_blocks(
    blocks: list[Any], page_url: str, *, fallback_id: str = ""
) -> list[Posting]:
    nodes = [node for block in blocks for node in find_job_postings(block)]
    base_id = fallback_id or page_url
    postings = []
    for index, node in enumerate(nodes, 1):
        fallback = base_id if index == 1 else f"{base_id}#{index}"
        postings.append(to_posting(node, page_url, fallback_id=fallback))
    return postings


def _item_list_urls(data: Any, _depth: int = 0) -> Iterator[str]:
    """The URLs of an ItemList's entries (some careers pages list their postings only so)."""
    if _depth > 16:
        return
    if isinstance(data, list):
        for item in data:
            yield from _item_list_urls(item, _depth + 1)
    elif isinstance(data, dict) and "jobposting" not in _types(data):
        if "listitem" in _types(data):
            item = data.get("item")
            url = data.get("url") or (item.get("url") if isinstance(item, dict) else item)
            if isinstance(url, str) and url.strip():
                yield url.strip()
        for key, value in data.items():
            if key != "@context" and isinstance(value, dict | list):
                yield from _item_list_urls(value, _depth + 1)


# --- links and fetching -------------------------------------------------------------------------


def page_links(html: str, page_url: str) -> list[str]:
    """The distinct same-site http(s) links of a page, normalized, in page order; mailto:,
    javascript:, fragments of the page itself and links to files (PDF, images) left out."""
    page = normalize_url(page_url)
    seen: dict[str, None] = {}
    with parsed_html(html) as tree:
        hrefs = [anchor.attributes.get("href") or "" for anchor in tree.css("a[href]")]
    for href in hrefs:
        href = href.strip()
        if not href or href.startswith("#"):
            continue
        try:
            url = normalize_url(urljoin(page_url, href))
        except ValueError:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            continue
        if url == page or not same_site(url, page_url):
            continue
        if parts.path.lower().endswith(_SKIPPED_EXTENSIONS):
            continue
        seen.setdefault(url)
    return list(seen)


# A source option: the source was added without a company and took its page's host for one,
# until its first read finds the company its postings name.
COMPANY_FROM = "company_from"

# "javascript:alert(1)", "mailto:jobs@acme.example": a scheme, not a host; "acme.example:8080"
# (a host and its port) is not one.
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?!\d*(?:[/?#]|$))")


def clean_page_url(identifier: str) -> str:
    """A user-typed page URL: https:// added when it has no scheme; ValueError unless the
    fetcher would fetch it (ingestion.fetching.url_refusal: http(s), a valid host, no user
    name or password, no refused address), with the fetcher's reason."""
    identifier = identifier.strip()
    if not identifier:
        raise ValueError("A careers page URL is required.")
    if any(char.isspace() for char in identifier):
        raise ValueError(f"{identifier!r} is not a valid URL: it contains a space.")
    if "://" not in identifier and not _SCHEME_PREFIX.match(identifier):
        identifier = f"https://{identifier}"
    try:
        urlsplit(identifier).port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"{identifier!r} is not a valid URL: {exc}.") from None
    refusal = url_refusal(identifier)
    if refusal:
        raise ValueError(refusal if refusal.endswith(".") else f"{refusal}.")
    return normalize_url(identifier)


class JsonLdAdapter(Adapter):
    kind = "jsonld"

    @classmethod
    def companies(cls, source: Source) -> frozenset[str] | None:
        # A source that took its page's host for a company renames itself on its first read.
        if COMPANY_FROM in (source.options or {}):
            return None
        return super().companies(source)

    # Links of the careers page followed at most (a careers page with more is cut there).
    max_links = 1000
    # Linked pages that may fail (network, 5xx) before the listing is refused as partial.
    max_failed_ratio = 0.1

    @classmethod
    def clean_identifier(cls, identifier: str) -> str:
        return clean_page_url(identifier)

    def list_postings(self) -> Iterator[Posting]:
        try:
            url = clean_page_url(self.source.identifier)
        except ValueError as exc:  # saved before sources were checked when added
            raise SourceFailed(str(exc)) from None
        try:
            page = self.fetcher.get(url, page=True)
        except FetchError as exc:
            raise SourceFailed(f"Could not read the careers page {url}: {exc}") from exc
        page_url = normalize_url(page.url)
        html = page.text
        try:
            blocks = jsonld_blocks(html)
            candidates = page_links(html, page_url)
        except PageNotRead as exc:
            raise SourceFailed(f"Could not read the careers page {url}: {exc}") from exc
        found = _postings_from_blocks(blocks, page_url)
        listed = {p.url for p in found} | {url, page_url}
        for link in _item_list_urls(blocks):
            try:
                resolved = normalize_url(urljoin(page_url, link))
            except ValueError:
                continue
            if resolved.startswith(("http://", "https://")) and same_site(resolved, page_url):
                candidates.append(resolved)
        links = [link for link in dict.fromkeys(candidates) if link not in listed]
        if not found and not links:
            raise SourceFailed(
                f"The careers page {url} has no JSON-LD JobPosting and no links to posting pages."
            )
        links = links[: self.max_links]

        failures: list[str] = []
        for link, result in zip(links, ordered_parallel(self._read_page, links), strict=True):
            if isinstance(result, FetchError):
                failures.append(f"{link}: {result}")
            else:
                found.extend(result)
        if failures and len(failures) > self.max_failed_ratio * len(links):
            raise SourceFailed(
                f"{len(failures)} of the {len(links)} pages linked from {url} could not be "
                f"fetched (first: {failures[0]}); a partial listing would expire their jobs."
            )
        self._learn_company(found)
        seen: set[str] = set()
        for posting in found:
            # One posting reachable through two links (or inline and linked) counts once.
            if posting.external_id in seen:
                continue
            seen.add(posting.external_id)
            yield posting

    def _learn_company(self, postings: list[Posting]) -> None:
        """A source added without a company took its page's host for one: the first read
        names it after the hiringOrganization most of its postings give, before any of its
        jobs is stored (they are stored under the source's company)."""
        if self.source.options.get(COMPANY_FROM) != "host":
            return
        names = Counter(p.company for p in postings if p.company and not p.invalid_reasons)
        if not names:
            return
        company = names.most_common(1)[0][0]
        options = {k: v for k, v in self.source.options.items() if k != COMPANY_FROM}
        type(self.source).objects.filter(pk=self.source.pk).update(company=company, options=options)
        self.source.company, self.source.options = company, options

    def _read_page(self, url: str) -> list[Posting] | FetchError:
        try:
            page = self.fetcher.get(url, page=True)
        except FetchError as exc:
            if exc.status in (401, 403, 404, 410):
                return []  # not a posting page (or not one we may read)
            return exc
        if "html" not in page.content_type and page.content_type:
            return []
        try:
            return postings_from_html(page.text, url)
        except PageNotRead as exc:  # a failed page, as one that could not be fetched
            return FetchError(f"{url}: {exc}", url=url)

"""Lever postings API: GET {base}/v0/postings/{site}?mode=json&skip=N&limit=L, page by page.

The answer is a JSON array; a page shorter than `limit` is the last. EU-hosted accounts live
on api.eu.lever.co (source.options {"region": "eu"}); the global host answers 404 for them.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import quote

from django.conf import settings

from ingestion.adapters.base import Adapter, Posting, SourceFailed
from ingestion.adapters.recognize import clean_board_identifier
from ingestion.fetching import FetchError
from ingestion.normalize import parse_datetime

# Lever's salaryRange.interval values, to Intake's salary periods.
_PERIODS = {
    "per-year-salary": "year",
    "per-month-salary": "month",
    "per-week-salary": "week",
    "per-day-wage": "day",
    "per-hour-wage": "hour",
}
_WORKPLACE = {"remote": "remote", "hybrid": "hybrid", "onsite": "onsite", "on-site": "onsite"}


class LeverAdapter(Adapter):
    kind = "lever"
    page_size: ClassVar[int] = 100
    # 100 × 1,000 postings: far beyond any real site; a server that keeps answering full
    # pages past it is broken, and the run must end.
    max_pages: ClassVar[int] = 1000

    @property
    def site(self) -> str:
        return self.source.identifier

    @property
    def eu(self) -> bool:
        return str((self.source.options or {}).get("region", "")).lower() == "eu"

    def _site_url(self) -> str:
        base = settings.INTAKE_LEVER_EU_URL if self.eu else settings.INTAKE_LEVER_URL
        return f"{base.rstrip('/')}/v0/postings/{quote(self.site, safe='')}"

    def list_postings(self) -> Iterator[Posting]:
        url = self._site_url()
        seen: set[str] = set()
        for page in range(self.max_pages):
            items = self._page(url, skip=page * self.page_size)
            ids = {_text(item.get("id")) for item in items if isinstance(item, dict)} - {""}
            if items and ids and ids <= seen:
                # A server that ignores `skip` answers the first page forever.
                raise SourceFailed(
                    f"Lever site '{self.site}' answered page {page + 1} with postings it had "
                    f"already listed; stopped rather than loop (is the server ignoring skip?)."
                )
            for item in items:
                posting = to_posting(item) if isinstance(item, dict) else _not_an_object()
                # Postings can shift between pages while we read; list each once.
                if posting.external_id and posting.external_id in seen:
                    continue
                seen.add(posting.external_id)
                yield posting
            if len(items) < self.page_size:
                return
        raise SourceFailed(
            f"Lever site '{self.site}' kept answering full pages after {self.max_pages} pages "
            f"of {self.page_size}; stopped."
        )

    def _page(self, url: str, *, skip: int) -> list[Any]:
        params = {"mode": "json", "skip": skip, "limit": self.page_size}
        try:
            data = self.fetcher.get_json(url, params=params)
        except FetchError as exc:
            if exc.status == 404:
                hint = (
                    "(it may be hosted on Lever's global host: remove the EU region)"
                    if self.eu
                    else "(if its board is on jobs.eu.lever.co, set the EU region)"
                )
                raise SourceFailed(
                    f"Lever site '{self.site}' does not exist (404). Check the site name, the "
                    f"part after jobs.lever.co/ in the company's job board URL {hint}."
                ) from exc
            raise SourceFailed(f"Lever site '{self.site}' could not be read: {exc}") from exc
        if not isinstance(data, list):
            raise SourceFailed(
                f"Lever site '{self.site}' answered with something other than a list of postings."
            )
        return data

    @classmethod
    def clean_identifier(cls, identifier: str) -> str:
        return clean_board_identifier(cls.kind, identifier)

    @classmethod
    def board_in_url(
        cls, host: str, segments: list[str], query: str
    ) -> tuple[str, dict[str, str]] | None:
        options = {"region": "eu"} if host in ("jobs.eu.lever.co", "api.eu.lever.co") else {}
        if host in ("jobs.lever.co", "jobs.eu.lever.co"):
            # jobs.lever.co/acme[/<posting id>[/apply]]
            return (segments[0], options) if segments else None
        # api.lever.co/v0/postings/acme[?mode=json]
        if (
            host in ("api.lever.co", "api.eu.lever.co")
            and len(segments) >= 3
            and segments[:2] == ["v0", "postings"]
        ):
            return segments[2], options
        return None


def to_posting(item: dict[str, Any]) -> Posting:
    """Map one posting of the postings API (mode=json) to a Posting."""
    reasons: list[str] = []
    external_id = _text(item.get("id"))
    if not external_id:
        reasons.append("id: missing")
    title = _text(item.get("text"))
    if not title:
        reasons.append("title: missing")

    categories = item.get("categories")
    if not isinstance(categories, dict):
        categories = {}
    location = _text(categories.get("location"))
    all_locations = categories.get("allLocations")
    if not location and isinstance(all_locations, list):
        location = ", ".join(_text(place) for place in all_locations if _text(place))
    workplace_type = _WORKPLACE.get(_text(item.get("workplaceType")).lower(), "")

    posting = Posting(
        external_id=external_id,
        title=title,
        url=_text(item.get("hostedUrl")) or _text(item.get("applyUrl")),
        location=location,
        remote={"remote": True, "onsite": False, "hybrid": False}.get(workplace_type),
        workplace_type=workplace_type,
        employment_type=_text(categories.get("commitment")),
        department=_text(categories.get("department")) or _text(categories.get("team")),
        description_html=description_html(item),
        posted_at=parse_datetime(item.get("createdAt")),
        invalid_reasons=reasons,
    )
    _set_salary(posting, item)
    return posting


def description_html(item: dict[str, Any]) -> str:
    """Opening + each list as <h3>heading</h3><ul>items</ul> + closing.

    descriptionPlain leaves the lists out (they are usually the requirements), so the HTML
    parts are joined instead."""
    parts = [_text(item.get("description"))]
    lists = item.get("lists")
    for block in lists if isinstance(lists, list) else []:
        if not isinstance(block, dict):
            continue
        heading, content = _text(block.get("text")), _text(block.get("content"))
        if heading:
            # The heading is plain text; the content is already HTML (<li>…</li>).
            parts.append(f"<h3>{html.escape(heading, quote=False)}</h3>")
        if content:
            parts.append(f"<ul>{content}</ul>")
    parts.append(_text(item.get("additional")))
    return "\n".join(part for part in parts if part)


def _set_salary(posting: Posting, item: dict[str, Any]) -> None:
    salary = item.get("salaryRange")
    if not isinstance(salary, dict):
        salary = {}
    posting.salary_min = _decimal(salary.get("min"))
    posting.salary_max = _decimal(salary.get("max"))
    if posting.salary_min is not None or posting.salary_max is not None:
        posting.salary_currency = _text(salary.get("currency")).upper()[:3]
        posting.salary_period = _PERIODS.get(_text(salary.get("interval")).lower(), "")
    else:
        posting.salary_text = _text(item.get("salaryDescriptionPlain"))[:200]


def _not_an_object() -> Posting:
    return Posting(external_id="", invalid_reasons=["posting: not a JSON object"])


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None

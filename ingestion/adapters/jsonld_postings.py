"""One schema.org JobPosting node as a Posting (to_posting): its fields read as a careers page
writes them (names or nodes, lists or single values, escaped HTML, a place's address, a
salary's QuantitativeValue), and the posting marked invalid when a field Google requires is
missing. The nodes are found in a page's JSON-LD by ingestion.adapters.jsonld.
"""

from __future__ import annotations

import html as htmllib
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit

from ingestion.adapters.base import Posting
from ingestion.adapters.readers import (
    fit_external_id,
    looks_like_html,
    normalize_url,
    parse_amount,
    parse_when,
    text_to_html,
)

_SALARY_PERIODS = {"HOUR": "hour", "DAY": "day", "WEEK": "week", "MONTH": "month", "YEAR": "year"}


def _clean(text: str) -> str:
    return " ".join(htmllib.unescape(text).split())


def _text(value: Any) -> str:
    """A plain-text value: a string, a number, a node's name or @value, a list's first."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, dict):
        for key in ("name", "@value", "value"):
            if value.get(key) not in (None, ""):
                return _text(value[key])
        return ""
    if isinstance(value, list):
        for item in value:
            text = _text(item)
            if text:
                return text
    return ""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _texts(value: Any) -> list[str]:
    """The distinct non-empty texts of a value or list of values."""
    return list(dict.fromkeys(t for t in (_text(v) for v in _as_list(value)) if t))


def _place_text(place: Any) -> str:
    if isinstance(place, str):
        return _clean(place)
    if not isinstance(place, dict):
        return ""
    address = place.get("address")
    if isinstance(address, list):
        address = address[0] if address else None
    if isinstance(address, str):
        return _clean(address)
    parts: list[str] = []
    if isinstance(address, dict):
        for key in ("addressLocality", "addressRegion", "addressCountry"):
            part = _text(address.get(key))
            if part and part not in parts:
                parts.append(part)
    return ", ".join(parts) or _text(place.get("name"))


def _description_html(value: Any) -> str:
    """JSON-LD's description is HTML; some sites escape it (&lt;p&gt;): undo that once."""
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), "")
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if not looks_like_html(text) and "&lt;" in text:
        unescaped = htmllib.unescape(text)
        if looks_like_html(unescaped):
            return unescaped
    if text and not looks_like_html(text):
        return text_to_html(text, escape=False)
    return text


def _identifier(value: Any) -> str:
    if isinstance(value, list):
        value = next((v for v in value if _identifier(v)), None)
    if isinstance(value, dict):
        for key in ("value", "@value", "identifier", "name"):
            if value.get(key) not in (None, ""):
                return _identifier(value[key])
        return ""
    if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
        return str(value).strip()
    return ""


def _salary(posting: Posting, value: Any) -> None:
    amount = next((v for v in _as_list(value) if isinstance(v, dict | int | float | Decimal)), None)
    if amount is None:
        return
    quantity: Any = amount.get("value") if isinstance(amount, dict) else amount
    unit = amount.get("unitText", "") if isinstance(amount, dict) else ""
    if isinstance(quantity, dict):
        unit = quantity.get("unitText") or unit
        low = quantity.get("minValue", quantity.get("value"))
        high = quantity.get("maxValue", quantity.get("value"))
    else:
        low = high = quantity
    try:
        posting.salary_min = parse_amount(low)
        posting.salary_max = parse_amount(high)
    except ValueError:
        posting.salary_min = posting.salary_max = None  # optional: a bad amount is dropped
        return
    if isinstance(amount, dict):
        posting.salary_currency = _text(amount.get("currency")).upper()[:3]
    posting.salary_period = _SALARY_PERIODS.get(_text(unit).upper(), "")


def to_posting(node: dict[str, Any], page_url: str, *, fallback_id: str = "") -> Posting:
    """One JobPosting node as a Posting; `invalid_reasons` names each field Google requires
    that is missing. external_id: the `identifier`, else `fallback_id`, else the page URL."""
    url = _text(node.get("url"))
    url = normalize_url(urljoin(page_url, url)) if url else page_url
    if not urlsplit(url).scheme.startswith("http"):
        url = page_url
    posting = Posting(
        external_id=fit_external_id(_identifier(node.get("identifier")) or fallback_id or page_url),
        title=_text(node.get("title")) or _text(node.get("name")),
        url=url,
        description_html=_description_html(node.get("description")),
        employment_type=", ".join(_texts(node.get("employmentType"))),
        company=_text(node.get("hiringOrganization"))[:200],
    )
    reasons: list[str] = []

    raw_posted = node.get("datePosted")
    try:
        posting.posted_at = parse_when(
            _text(raw_posted) if isinstance(raw_posted, dict | list) else raw_posted
        )
    except ValueError:
        reasons.append(f"datePosted {_text(raw_posted)!r} is not a date")
    try:
        posting.valid_through = parse_when(_text(node.get("validThrough")))
    except ValueError:
        posting.valid_through = None  # optional: an unreadable one is dropped

    places = [t for t in (_place_text(p) for p in _as_list(node.get("jobLocation"))) if t]
    places = list(dict.fromkeys(places))
    location_types = {t.upper() for t in _texts(node.get("jobLocationType"))}
    applicant = _texts(node.get("applicantLocationRequirements"))
    telecommute = "TELECOMMUTE" in location_types
    if telecommute:
        posting.remote = True
        posting.workplace_type = "remote"
    if places:
        posting.location = "; ".join(places)
    elif telecommute:
        posting.location = f"Remote ({', '.join(applicant)})" if applicant else "Remote"
    _salary(posting, node.get("baseSalary"))
    qualifications = node.get("qualifications")
    if isinstance(qualifications, str) and qualifications.strip():
        posting.requirements_html = _description_html(qualifications)
    department = node.get("occupationalCategory") or node.get("industry")
    posting.department = _text(department)[:200]

    if not posting.title:
        reasons.append("title is missing")
    if not htmllib.unescape(re.sub(r"<[^>]*>", "", posting.description_html)).strip():
        reasons.append("description is missing")
    if raw_posted in (None, "", [], {}):
        reasons.append("datePosted is missing")
    if not _text(node.get("hiringOrganization")):
        reasons.append("hiringOrganization is missing")
    if not places and not (telecommute and applicant):
        reasons.append(
            "jobLocation is missing (required unless jobLocationType is TELECOMMUTE with "
            "applicantLocationRequirements)"
        )
    posting.invalid_reasons = reasons
    return posting

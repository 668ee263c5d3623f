"""One record of an uploaded postings file (kind "file") as a Posting: what its fields are
called, what each may hold, and what makes a row invalid. The file's formats are read into
records by ingestion.adapters.files.

Fields (CSV headers and JSON keys alike; case, spaces and hyphens do not matter):
external_id (or id, job_id), title, url, location, description (HTML or plain text),
requirements, remote, workplace_type, employment_type, department, posted_at, valid_through,
salary, salary_min, salary_max, salary_currency, salary_period, company (or company_name,
employer, organization, hiring_organization — a JSON object's `name` is read). Others are
ignored. A row's company is its job's company (an aggregator's export holds many); a row
without one belongs to the source's company.

A record's problems are RowErrors naming the row and the field ("row 7: title is
required"); its Posting is still made, with them as its `invalid_reasons`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from ingestion.adapters.base import Posting, RowError, posting_problems
from ingestion.adapters.readers import looks_like_html, parse_amount, parse_when, text_to_html
from ingestion.textclean import clean_text

REQUIRED = ("external_id", "title")
# Alternative names of fields, after normalization (lowercase, "_" for spaces and hyphens).
ALIASES = {
    "id": "external_id",
    "job_id": "external_id",
    "externalid": "external_id",
    "jobid": "external_id",
    "job_title": "title",
    "link": "url",
    "job_url": "url",
    "apply_url": "url",
    "description_html": "description",
    "body": "description",
    "date_posted": "posted_at",
    "valid_until": "valid_through",
    "expires_at": "valid_through",
    "currency": "salary_currency",
    "salary_unit": "salary_period",
    "company_name": "company",
    "employer": "company",
    "organization": "company",
    "hiring_organization": "company",
    "hiringorganization": "company",
}
_PERIODS = {
    "hour": "hour", "hourly": "hour", "per_hour": "hour",
    "day": "day", "daily": "day", "per_day": "day",
    "week": "week", "weekly": "week", "per_week": "week",
    "month": "month", "monthly": "month", "per_month": "month",
    "year": "year", "yearly": "year", "annual": "year", "annually": "year", "per_year": "year",
}  # fmt: skip
_WORKPLACES = {
    "remote": "remote", "telecommute": "remote", "fully_remote": "remote",
    "hybrid": "hybrid",
    "onsite": "onsite", "on_site": "onsite", "office": "onsite", "in_office": "onsite",
    "in_person": "onsite",
}  # fmt: skip
_TRUE = {"true", "yes", "y", "1", "t", "remote"}
_FALSE = {"false", "no", "n", "0", "f", "onsite", "on-site"}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CURRENCY_SIGNS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_RANGE = re.compile(r"(\d[\d.,]*\s*[kK]?)\s*(?:-|–|—|to)\s*[^\d]*(\d[\d.,]*\s*[kK]?)")
_PERIOD_WORDS = (
    ("hour", "hour"), ("/hr", "hour"), ("year", "year"), ("annual", "year"), ("/yr", "year"),
    ("month", "month"), ("week", "week"), ("day", "day"),
)  # fmt: skip
_SINGLE = re.compile(r"\d[\d.,]*\s*[kK]?")
# Job's column sizes: longer values are refused (ids, titles, URLs) or cut (the rest).
_MAX = {
    "external_id": 255,
    "title": 500,
    "url": 2000,
    "location": 500,
    "department": 200,
    "company": 200,
}
_HTML_FIELDS = (("description", "description_html"), ("requirements", "requirements_html"))


@functools.lru_cache(maxsize=1024)
def field_name(key: str) -> str:
    name = re.sub(r"[\s\-]+", "_", key.strip().lower())
    return ALIASES.get(name, name)


def _value(record: dict[str, Any], name: str) -> Any:
    value = record.get(name)
    if isinstance(value, str):
        value = value.strip()
    return None if value == "" else value


def _string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(s for s in (_string(v) for v in value) if s)
    if isinstance(value, dict):
        return _string(value.get("name") or value.get("value"))
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return str(value).strip()


@functools.lru_cache(maxsize=1024)
def _choice_key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.lower())


def _choice(
    raw: Any,
    name: str,
    table: dict[str, str],
    allowed: str,
    error: Callable[[str, str], None],
) -> str:
    """The canonical value of an enumerated column ("Full Time" → key "full_time" looked up
    in `table`), "" when absent (`raw` None); an unknown value is reported on the row's
    `name` field."""
    if raw is None:
        return ""
    key = _choice_key(raw if type(raw) is str else _string(raw))
    if key in table:
        return table[key]
    error(name, f"{name} {raw!r} is not {allowed}")
    return ""


def _cleaned(record: dict[str, Any]) -> dict[str, Any]:
    """`record` as _value reads each of its fields (strings stripped, "" left out), in one
    pass: to_posting reads most fields more than once."""
    cleaned = {}
    for name, value in record.items():
        if type(value) is str:
            value = value.strip()
            if not value:
                continue
        elif isinstance(value, str):
            value = value.strip()
        if value is not None and value != "":
            cleaned[name] = value
    return cleaned


def to_posting(
    record: dict[str, Any], row: int, *, label: str = "row"
) -> tuple[Posting, list[RowError]]:
    """One record (keys already normalized with field_name) as a Posting, and its errors."""
    errors: list[RowError] = []
    # What _value(record, name) gives, looked up (a record's mapping is a hot path of every
    # listing of a file).
    value = _cleaned(record).get

    def error(name: str, message: str) -> None:
        errors.append(RowError(row, name, message, label))

    def text(name: str) -> str:
        raw = value(name)
        # A stripped string is its own _string().
        text = raw if type(raw) is str else _string(raw)
        limit = _MAX.get(name)
        if limit and len(text) > limit:
            if name in ("external_id", "title", "url"):
                error(name, f"{name} is longer than {limit} characters")
            text = text[:limit]
        return text

    posting = Posting(external_id=text("external_id"), row=row)
    for name in REQUIRED:
        if value(name) is None:
            error(name, f"{name} is required")
    posting.title = " ".join(text("title").split())

    url = text("url")
    if url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            error("url", f"url {url!r} is not an http(s) URL")
        else:
            posting.url = url

    posting.company = " ".join(text("company").split())
    posting.location = text("location")
    posting.department = text("department")
    posting.employment_type = text("employment_type")
    limit = settings.INTAKE_DESCRIPTION_MAX_CHARS
    for name, attribute in _HTML_FIELDS:
        html = text(name)
        if not html:
            continue  # as text_to_html("") gives
        if len(html) > limit:  # refused as it is, before copies of it are made as HTML
            error(name, f"{name} is longer than {limit:,} characters")
            continue
        setattr(posting, attribute, html if looks_like_html(html) else text_to_html(html))

    remote = value("remote")
    if isinstance(remote, bool):
        posting.remote = remote
    elif remote is not None:
        word = _string(remote).lower()
        if word in _TRUE:
            posting.remote = True
        elif word in _FALSE:
            posting.remote = False
        else:
            error("remote", f"remote {remote!r} is not yes or no")
    workplace = _choice(
        value("workplace_type"), "workplace_type", _WORKPLACES, "remote, hybrid or onsite", error
    )
    if workplace:
        posting.workplace_type = workplace
        if posting.remote is None and workplace != "hybrid":
            posting.remote = workplace == "remote"

    for name in ("posted_at", "valid_through"):
        raw = value(name)
        if raw is not None:  # (the parsers read None as None, at a cost)
            try:
                setattr(posting, name, parse_when(raw))
            except ValueError:
                error(name, f"{name} {_string(raw)!r} is not a date")

    for name in ("salary_min", "salary_max"):
        raw = value(name)
        if raw is not None:
            try:
                setattr(posting, name, parse_amount(raw))
            except ValueError:
                error(name, f"{name} {_string(raw)!r} is not an amount")
    salary = _string(value("salary"))
    if salary:
        posting.salary_text = salary[:200]
        if posting.salary_min is None and posting.salary_max is None:
            _salary_from_text(posting, salary)
    if (
        posting.salary_min is not None
        and posting.salary_max is not None
        and posting.salary_min > posting.salary_max
    ):
        error("salary_min", "salary_min is greater than salary_max")
    currency = _string(value("salary_currency")).upper()
    if currency:
        currency = _CURRENCY_SIGNS.get(currency, currency)
        if _CURRENCY.match(currency):
            posting.salary_currency = currency
        else:
            error("salary_currency", f"salary_currency {currency!r} is not a 3-letter code")
    period = _choice(
        value("salary_period"),
        "salary_period",
        _PERIODS,
        "hour, day, week, month or year",
        error,
    )
    if period:
        posting.salary_period = period

    for name, message in posting_problems(posting):
        error(name, message)
    if errors:
        posting.invalid_reasons = [clean_text(str(e)) for e in errors]
    return posting, errors


def _salary_from_text(posting: Posting, text: str) -> None:
    """Best effort: "$120,000 - $150,000 per year" → 120000, 150000, USD, year."""
    match = _RANGE.search(text)
    amounts = match.groups() if match else (_SINGLE.findall(text)[:1] * 2)
    try:
        if amounts:
            posting.salary_min, posting.salary_max = (parse_amount(a) for a in amounts)
    except ValueError:
        posting.salary_min = posting.salary_max = None
    if not posting.salary_currency:
        sign = next((code for s, code in _CURRENCY_SIGNS.items() if s in text), "")
        code = re.search(r"\b[A-Z]{3}\b", text)
        posting.salary_currency = sign or (code.group(0) if code else "")
    if not posting.salary_period:
        lowered = text.lower()
        for word, period in _PERIOD_WORDS:
            if word in lowered:
                posting.salary_period = period
                break

"""The mapping of an uploaded file's records to postings, against its earlier reading."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingestion.adapters.base import Posting, RowError, posting_problems
from ingestion.adapters.file_rows import (
    _CURRENCY,
    _CURRENCY_SIGNS,
    _FALSE,
    _HTML_FIELDS,
    _MAX,
    _PERIODS,
    _TRUE,
    _WORKPLACES,
    REQUIRED,
    _salary_from_text,
    _string,
    _value,
    to_posting,
)
from ingestion.adapters.readers import looks_like_html, parse_amount, parse_when, text_to_html
from ingestion.textclean import clean_text

# --- to_posting before it read the record once (the reference) ------------------------------


def _choice_before(
    record: dict[str, Any],
    name: str,
    table: dict[str, str],
    allowed: str,
    error: Callable[[str, str], None],
) -> str:
    raw = _value(record, name)
    if raw is None:
        return ""
    key = re.sub(r"[\s\-]+", "_", _string(raw).lower())
    if key in table:
        return table[key]
    error(name, f"{name} {raw!r} is not {allowed}")
    return ""


def _to_posting_before(
    record: dict[str, Any], row: int, *, label: str = "row"
) -> tuple[Posting, list[RowError]]:
    """to_posting as it read each field before it read the record once."""
    errors: list[RowError] = []

    def error(name: str, message: str) -> None:
        errors.append(RowError(row, name, message, label))

    def text(name: str) -> str:
        value = _string(_value(record, name))
        limit = _MAX.get(name)
        if limit and len(value) > limit:
            if name in ("external_id", "title", "url"):
                error(name, f"{name} is longer than {limit} characters")
            value = value[:limit]
        return value

    posting = Posting(external_id=text("external_id"), row=row)
    for name in REQUIRED:
        if _value(record, name) is None:
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
        value = text(name)
        if len(value) > limit:  # refused as it is, before copies of it are made as HTML
            error(name, f"{name} is longer than {limit:,} characters")
            continue
        setattr(posting, attribute, value if looks_like_html(value) else text_to_html(value))

    remote = _value(record, "remote")
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
    workplace = _choice_before(
        record, "workplace_type", _WORKPLACES, "remote, hybrid or onsite", error
    )
    if workplace:
        posting.workplace_type = workplace
        if posting.remote is None and workplace != "hybrid":
            posting.remote = workplace == "remote"

    for name in ("posted_at", "valid_through"):
        raw = _value(record, name)
        try:
            setattr(posting, name, parse_when(raw))
        except ValueError:
            error(name, f"{name} {_string(raw)!r} is not a date")

    for name in ("salary_min", "salary_max"):
        raw = _value(record, name)
        try:
            setattr(posting, name, parse_amount(raw))
        except ValueError:
            error(name, f"{name} {_string(raw)!r} is not an amount")
    salary = _string(_value(record, "salary"))
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
    currency = _string(_value(record, "salary_currency")).upper()
    if currency:
        currency = _CURRENCY_SIGNS.get(currency, currency)
        if _CURRENCY.match(currency):
            posting.salary_currency = currency
        else:
            error("salary_currency", f"salary_currency {currency!r} is not a 3-letter code")
    period = _choice_before(
        record, "salary_period", _PERIODS, "hour, day, week, month or year", error
    )
    if period:
        posting.salary_period = period

    for name, message in posting_problems(posting):
        error(name, message)
    posting.invalid_reasons = [clean_text(str(e)) for e in errors]
    return posting, errors


# --- the records ------------------------------------------------------------------------------

_pads = st.sampled_from(["", " ", "  ", "\t", "\n", " \r\n"])


def _padded(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(lambda a, v, b: f"{a}{v}{b}", _pads, values, _pads)


_words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_values: dict[str, st.SearchStrategy[Any]] = {
    "external_id": _padded(st.sampled_from(["", "A-1", "x" * 300])) | st.integers(0, 99),
    "title": _padded(st.sampled_from(["", "Engineer", "Data  Engineer", "t" * 600])) | _words,
    "url": _padded(st.sampled_from(["", "https://x.example/1", "ftp://x", "http://", "x"])),
    "company": _padded(st.sampled_from(["", "Acme  Inc", "c" * 300]))
    | st.fixed_dictionaries({"name": st.sampled_from(["Globex", ""])}),
    "location": _padded(_words) | st.lists(_words, max_size=3),
    "department": _padded(_words) | st.none(),
    "employment_type": _padded(st.sampled_from(["Full-time", ""])) | st.integers(0, 3),
    "description": _padded(st.sampled_from(["", "<p>Hi</p>", "plain\n\ntext", "a < b"])),
    "requirements": _padded(st.sampled_from(["", "<ul><li>x</li></ul>", "line\nbreak"])),
    "remote": _padded(st.sampled_from(["yes", "No", "remote", "maybe", ""])) | st.booleans(),
    "workplace_type": _padded(st.sampled_from(["Remote", "on-site", "In Office", "x", ""])),
    "posted_at": _padded(st.sampled_from(["2024-05-01", "1714550400", "soon", ""]))
    | st.integers(0, 2_000_000_000)
    | st.floats(allow_nan=False, allow_infinity=False, max_value=1e12, min_value=-1e12),
    "valid_through": _padded(st.sampled_from(["2024-06-01T09:00:00Z", "never", ""])),
    "salary": _padded(st.sampled_from(["$120,000 - $150,000 per year", "85k", "lots", ""])),
    "salary_min": _padded(st.sampled_from(["120,000", "85k", "x", ""]))
    | st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=0, max_value=10**6),
    "salary_max": _padded(st.sampled_from(["90,000", "-1", ""])) | st.integers(-5, 10**7),
    "salary_currency": _padded(st.sampled_from(["eur", "$", "EURO", ""])),
    "salary_period": _padded(st.sampled_from(["Per Year", "hourly", "fortnight", ""])),
}
_records = st.fixed_dictionaries({}, optional=_values)


@hypothesis_settings(max_examples=400, deadline=None)
@given(record=_records, row=st.integers(1, 9))
def test_to_posting_reads_a_record_as_before(record: dict[str, Any], row: int) -> None:
    posting, errors = to_posting(dict(record), row)
    before, errors_before = _to_posting_before(dict(record), row)

    assert posting == before
    assert errors == errors_before

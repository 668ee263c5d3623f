"""Salaries as written ("$120,000 - $150,000 a year", "€50k–60k") as min, max, currency
and period."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

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

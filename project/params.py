"""Strict readers for request parameters: the query string, and posted values read outside
Django forms. What project/env.py is for the environment, this is for requests: one small
parser per type, each refusing what it does not fully understand with a message that names
the parameter and says what it takes.

Why strict: `str.isdigit()` accepts "²" that `int()` refuses, `int()` accepts "٣" and any
number of digits, a date near 9999-12-31 overflows as soon as a day is added, and PostgreSQL
refuses a NUL in text and an integer past 2**63 - 1. Each of those was an HTTP 500.

Views read parameters through `Params`: strict (programmatic endpoints answer 400 with the
message; POSTed actions refuse with it), or lenient (pages ignore the bad value and show the
message). docs/pages.md states the rule.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection
from datetime import date
from typing import TypeVar

from django.http import QueryDict

# Ids are BigAutoField primary keys: a bigint.
BIGINT_MAX = 2**63 - 1
# Far beyond any list's last page, and small enough that no offset computed from it overflows.
PAGE_MAX = 1_000_000
# Dates a filter accepts: any posting's, with room on both sides to add or subtract days.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)
# Free text (a search, a filter) unless a view says otherwise.
TEXT_MAX = 200
# Ids in one list (a selection of sources).
IDS_MAX = 1000

# ASCII only: `\d` and `str.isdigit()` take every script's digits (and superscripts).
_DIGITS = re.compile(r"[0-9]{1,19}")
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?|\.[0-9]{1,9}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


class ParamError(ValueError):
    """A parameter that is not what the view reads; the message says which and why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _shown(raw: str) -> str:
    """The value as a message quotes it: short, with control characters escaped."""
    text = raw if len(raw) <= 40 else raw[:40] + "…"
    return repr(text)


def parse_int(raw: str, *, name: str, minimum: int = 0, maximum: int = BIGINT_MAX) -> int:
    """A whole number in ASCII digits, from `minimum` to `maximum`."""
    text = raw.strip()
    if _DIGITS.fullmatch(text) and minimum <= int(text) <= maximum:
        return int(text)
    raise ParamError(
        name, f"{name} must be a whole number from {minimum:,} to {maximum:,}, not {_shown(raw)}."
    )


def parse_float(raw: str, *, name: str, minimum: float, maximum: float) -> float:
    """A plain decimal number (no sign, exponent, inf or nan), from `minimum` to `maximum`."""
    text = raw.strip()
    if _DECIMAL.fullmatch(text) and minimum <= float(text) <= maximum:
        return float(text)
    raise ParamError(
        name, f"{name} must be a number from {minimum:g} to {maximum:g}, not {_shown(raw)}."
    )


def parse_date(
    raw: str, *, name: str, earliest: date = EARLIEST_DATE, latest: date = LATEST_DATE
) -> date:
    """A calendar date written YYYY-MM-DD, from `earliest` to `latest`."""
    match = _ISO_DATE.fullmatch(raw.strip())
    if match:
        try:
            value = date(*(int(part) for part in match.groups()))
        except ValueError:
            value = None
        if value is not None and earliest <= value <= latest:
            return value
    raise ParamError(
        name,
        f"{name} must be a date (YYYY-MM-DD) from {earliest.isoformat()} to "
        f"{latest.isoformat()}, not {_shown(raw)}.",
    )


def parse_choice(raw: str, *, name: str, choices: Collection[str]) -> str:
    """One of `choices`, exactly."""
    if raw in choices:
        return raw
    listed = ", ".join(sorted(choices))
    raise ParamError(name, f"{name} must be one of {listed}, not {_shown(raw)}.")


def parse_text(raw: str, *, name: str, max_length: int = TEXT_MAX) -> str:
    """Free text of at most `max_length` characters, without control characters (a NUL
    cannot be stored in PostgreSQL; the others have no business in a parameter)."""
    if len(raw) > max_length:
        raise ParamError(name, f"{name} must be at most {max_length:,} characters long.")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in raw):
        raise ParamError(name, f"{name} must not contain control characters: {_shown(raw)}.")
    return raw


def parse_flag(raw: str, *, name: str) -> bool:
    """A yes/no switch: 1/0, true/false, yes/no, on/off."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ParamError(name, f"{name} must be 1 or 0 (or true/false, yes/no, on/off).")


class Params:
    """A request's parameters (`request.GET`, `request.POST`) read through the parsers.

    A missing or empty value is the default. An invalid one raises ParamError when `strict`;
    otherwise it is ignored (the default is used) and its message kept in `ignored`, for the
    page to say so. `label` names the value in messages when the parameter's own name is not
    what the user saw (a form field's label)."""

    def __init__(self, data: QueryDict, *, strict: bool) -> None:
        self.data = data
        self.strict = strict
        self.ignored: list[str] = []

    def _read(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self.data.get(name)
        if not isinstance(raw, str) or raw == "":
            return default
        try:
            return parse(raw)
        except ParamError as exc:
            if self.strict:
                raise
            self.ignored.append(str(exc))
            return default

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int = 0,
        maximum: int = BIGINT_MAX,
        label: str = "",
    ) -> int | None:
        return self._read(
            name,
            lambda raw: parse_int(raw, name=label or name, minimum=minimum, maximum=maximum),
            default,
        )

    def object_id(self, name: str) -> int | None:
        """A primary key (1 and up), or None."""
        return self.integer(name, minimum=1)

    def page(self, name: str = "page") -> int:
        """A page number, 1 by default."""
        return self._read(
            name, lambda raw: parse_int(raw, name=name, minimum=1, maximum=PAGE_MAX), 1
        )

    def number(
        self, name: str, default: float, *, minimum: float, maximum: float, label: str = ""
    ) -> float:
        return self._read(
            name,
            lambda raw: parse_float(raw, name=label or name, minimum=minimum, maximum=maximum),
            default,
        )

    def day(self, name: str) -> date | None:
        return self._read(name, lambda raw: parse_date(raw, name=name), None)

    def choice(self, name: str, choices: Collection[str], default: str = "") -> str:
        return self._read(name, lambda raw: parse_choice(raw, name=name, choices=choices), default)

    def text(self, name: str, default: str = "", *, max_length: int = TEXT_MAX) -> str:
        return self._read(
            name, lambda raw: parse_text(raw, name=name, max_length=max_length), default
        )

    def flag(self, name: str) -> bool:
        return self._read(name, lambda raw: parse_flag(raw, name=name), False)

    def ids(self, name: str, *, limit: int = IDS_MAX) -> list[int]:
        """Every value of a repeated parameter (`?source=1&source=2`) as primary keys, in
        order, without repeats. Lenient: the invalid ones are left out."""
        values = self.data.getlist(name)
        if len(values) > limit:
            error = ParamError(name, f"At most {limit:,} {name} values at once.")
            if self.strict:
                raise error
            self.ignored.append(str(error))
            values = values[:limit]
        ids: dict[int, None] = {}
        for raw in values:
            if not isinstance(raw, str):
                continue
            try:
                ids[parse_int(raw, name=name, minimum=1)] = None
            except ParamError as exc:
                if self.strict:
                    raise
                self.ignored.append(str(exc))
        return list(ids)

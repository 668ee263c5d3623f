"""`{% load numbers %}`: `{{ n|number }}` -> 11,000; `{{ n|counted:"bad row" }}` -> 1 bad row,
`{{ n|counted:"entry,entries" }}` -> 2 entries; `{{ seconds|time_left }}` -> about 3 min left
(runs.numbers)."""

from __future__ import annotations

from django import template

from runs import numbers

register = template.Library()


@register.filter
def number(value: int | float | None) -> str:
    return numbers.number(value)


@register.filter
def counted(value: int | None, nouns: str) -> str:
    one, _, many = nouns.partition(",")
    return numbers.counted(value or 0, one, many or None)


@register.filter
def time_left(seconds: float | None) -> str:
    return "" if seconds is None else numbers.time_left(seconds)

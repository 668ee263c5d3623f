"""A paginator for admin lists over tables of millions of rows.

Django's admin counts the whole filtered list on every page (`Paginator.count`), which on
PostgreSQL reads every matching row: seconds at a million jobs. This paginator counts at
most `COUNT_CAP` + 1 rows (a count over a LIMIT subquery, which stops early), so a list page
costs the same at any size; past the cap the list reads "10,000+" pages' worth and the
search or filters narrow it."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "order_by"):
            return len(queryset)
        return min(queryset.order_by()[: COUNT_CAP + 1].count(), COUNT_CAP)

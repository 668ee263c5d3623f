"""A paginator for admin lists over tables of millions of rows.

Django's admin counts the whole filtered list on every page (`Paginator.count`), which on
PostgreSQL reads every matching row: seconds at a million jobs. This paginator counts at
most `COUNT_CAP` + 1 rows (a count over a LIMIT subquery, which stops early), so a list page
costs the same at any size; past the cap the list offers 10,000 rows' pages, says "about
1,000,000" (the planner's estimate) or "more than 10,000" rather than a count, and the
search or filters narrow it. Counting to the cap still reads cap ÷ (the share matching) rows,
50,000 for a search one row in five meets: on PostgreSQL, when the planner's estimate is
three times the cap, nothing is counted."""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

COUNT_CAP = 10_000
# How far past the cap an estimate must be to be trusted: the planner's usual error is less.
ESTIMATE_TRUSTED = 3


def estimated_rows(queryset: QuerySet[Any]) -> int | None:
    """The planner's estimate of how many rows `queryset` holds (PostgreSQL; None elsewhere):
    planning only, so it costs the same at any size."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def about(count: int) -> str:
    """`count` to two significant figures, as an estimate reads: "about 1,000,000"."""
    return f"about {round(count, min(0, 2 - len(str(count)))):,}"


class CappedCountPaginator(Paginator):
    # Whether `count` stopped at COUNT_CAP (the list holds more), and the planner's estimate
    # of the whole list when one was read past the cap: what `count_text` says instead.
    capped = False
    estimate: int | None = None

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        estimate = estimated_rows(queryset)
        if estimate is not None and estimate >= ESTIMATE_TRUSTED * COUNT_CAP:
            self.capped, self.estimate = True, estimate
            return COUNT_CAP
        counted = queryset.order_by()[: COUNT_CAP + 1].count()
        if counted > COUNT_CAP:
            self.capped = True
            self.estimate = estimate if estimate is not None and estimate > COUNT_CAP else None
            return COUNT_CAP
        return counted

    @property
    def count_text(self) -> str:
        """How many the list holds, as the admin's templates show it (templates/admin/): exact
        ("1,234") up to the cap, then the planner's estimate ("about 1,000,000") or "more
        than 10,000" where there is none: never the cap as if it were the count."""
        count = self.count
        if not self.capped:
            return f"{count:,}"
        return about(self.estimate) if self.estimate else f"more than {count:,}"

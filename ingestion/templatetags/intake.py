"""Template tags of the ingestion pages: `{% load intake %}`.

`{% summary_bar %}` renders the bar every stepper page shows above its content: the user's
last preview or ingest (when, how long, outcome, its counts, a link to its step page) and
what is left of their daily quotas. Two queries and one Redis GET.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.contrib.auth.models import AnonymousUser, User
from django.urls import reverse
from django.utils import timezone
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from ingestion import run_kinds, vocabulary
from ingestion.models import ItemOutcome, JobStatus
from ingestion.normalize.employment import EMPLOYMENT_LABELS
from ingestion.normalize.workplace import WORKPLACE_LABELS, effective_workplace
from ingestion.quota import COUNTED_KINDS, QuotaStatus, format_reset, format_span, quota_status
from runs.models import IngestionRun

register = template.Library()


@dataclass(frozen=True)
class SummaryBar:
    """What `templates/ingestion/_summary_bar.html` shows (its `summary` variable)."""

    last_run: IngestionRun | None
    last_run_url: str
    when: datetime | None
    when_verb: str  # "finished", "started" or "queued"
    when_text: str  # "5 min ago"
    duration_text: str  # "1 min 5 s", or "" when it never started
    quota: QuotaStatus
    runs_text: str  # "7 of 10 runs left today"
    requests_text: str  # "19,500 of 20,000 requests left"
    reset_text: str  # "00:00 UTC (in 5 h 12 min)"
    # (name, words, count) of what the run counted, in the outcome words: ("new", "new", 5),
    # …, then an ingest's ("jobs-ready", "jobs ready", 3).
    counts: list[tuple[str, str, int]]

    @property
    def is_preview(self) -> bool:
        return self.last_run is not None and self.last_run.kind == run_kinds.PREVIEW

    @property
    def state(self) -> str:
        """ok | warn | exhausted: the bar's style."""
        if self.quota.exhausted:
            return "exhausted"
        if self.quota.runs_warning or self.quota.requests_warning:
            return "warn"
        return "ok"


def summary_bar_data(user: User) -> SummaryBar:
    """The summary bar's content for `user` (for a view that includes the template itself)."""
    last = (
        IngestionRun.objects.filter(owner=user, kind__in=COUNTED_KINDS)
        .order_by("-created_at", "-id")
        .first()
    )
    quota = quota_status(user)
    url = when_verb = when_text = duration_text = ""
    when = None
    if last is not None:
        name = "ingestion:preview" if last.kind == run_kinds.PREVIEW else "ingestion:ingest"
        url = reverse(name, args=[last.pk])
        if last.finished_at:
            when, when_verb = last.finished_at, "finished"
        elif last.started_at:
            when, when_verb = last.started_at, "started"
        else:
            when, when_verb = last.created_at, "queued"
        when_text = ago(timezone.now() - when)
        seconds = last.duration_seconds
        duration_text = "" if seconds is None else short_duration(seconds)
    return SummaryBar(
        last_run=last,
        last_run_url=url,
        when=when,
        when_verb=when_verb,
        when_text=when_text,
        duration_text=duration_text,
        quota=quota,
        runs_text=_left_text(quota.runs_left, quota.runs_limit, "run", "runs", "left today"),
        requests_text=(
            _left_text(quota.requests_left, quota.requests_limit, "request", "requests", "left")
            if quota.requests_known
            else "requests left: unknown (the counter is unreachable)"
        ),
        reset_text=format_reset(quota.resets_at),
        counts=_counts(last) if last is not None else [],
    )


def _counts(run: IngestionRun) -> list[tuple[str, str, int]]:
    labels = dict(ItemOutcome.choices)
    counts = [
        (name, labels[name].lower(), value)
        for name, value in vocabulary.outcome_counts(run).items()
        if value
    ]
    if run.kind == run_kinds.INGEST:
        ready = vocabulary.job_counts(run)[JobStatus.READY]
        counts.append(("jobs-ready", "jobs ready", ready))
    return counts


def _left_text(left: int | None, limit: int, one: str, many: str, tail: str) -> str:
    if left is None:
        return f"unlimited {many}"
    return f"{left:,} of {limit:,} {one if limit == 1 else many} {tail}"


def ago(delta: timedelta) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago' (naturaltime, shorter)."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{format_span(timedelta(seconds=seconds))} ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


def short_duration(seconds: float) -> str:
    """'0.4 s', '12 s', '1 min 5 s', '2 h 3 min'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return format_span(timedelta(seconds=seconds))


@register.inclusion_tag("ingestion/_summary_bar.html", takes_context=True)
def summary_bar(context: template.Context) -> dict[str, Any]:
    """`{% load intake %}{% summary_bar %}`: the bar for the signed-in user (nothing for an
    anonymous visitor). Needs `request` or `user` in the context (the usual processors)."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user") or AnonymousUser()
    if not isinstance(user, User) or not user.is_authenticated:
        return {"summary": None}
    return {"summary": summary_bar_data(user)}


def _as_words(value: str, labels: dict[str, str]) -> str:
    # A value stored before its label existed still reads as words, never as "snake_case".
    return labels.get(value) or value.replace("_", " ").capitalize()


@register.filter
def employment(value: str) -> str:
    """`{{ job.employment_type|employment }}`: "Full-time" for "full_time"."""
    return _as_words(value or "", EMPLOYMENT_LABELS)


@register.filter
def workplace(job: Any) -> str:
    """`{{ job|workplace }}`: "Remote", "Hybrid", "On-site" or "" (unknown), in the words and by
    the rule of the jobs list's workplace filter."""
    value = effective_workplace(job.workplace_type, job.remote)
    return _as_words(value, WORKPLACE_LABELS) if value else ""


@register.filter
def thousands(value: int) -> str:
    """`{{ n|thousands }}`: 11,000, as every count is written (Django's intcomma needs the
    humanize app and follows the locale)."""
    return f"{value:,}"


# How a run item's reason names a job (ingestion.dedupe.job_label).
_JOB_REFERENCE_RE = re.compile(r"\bjob #(\d+)")


@register.filter
def linked_reason(reason: str) -> SafeString:
    """A run item's reason, escaped, with each job it names ("job #12") linked to that
    job's page (which shows it only to its owner)."""

    def link(match: re.Match[str]) -> str:
        url = reverse("ingestion:job", args=[int(match[1])])
        return f'<a href="{url}">job #{match[1]}</a>'

    return mark_safe(_JOB_REFERENCE_RE.sub(link, str(conditional_escape(reason))))  # noqa: S308

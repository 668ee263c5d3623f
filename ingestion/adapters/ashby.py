"""Ashby posting API: GET {base}/posting-api/job-board/{org}?includeCompensation=true.

One response holds the whole board ({"apiVersion": "1", "jobs": [...]}); it is parsed as it
arrives (ijson over "jobs.item"). Jobs with isListed false are hidden from the public board
and are not yielded.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import ijson
from django.conf import settings

from ingestion.adapters.base import Adapter, Posting, SourceFailed
from ingestion.adapters.greenhouse import iter_jobs
from ingestion.adapters.recognize import clean_board_identifier
from ingestion.fetching import FetchError
from ingestion.normalize import parse_datetime
from ingestion.textclean import clean_text

_WORKPLACE = {"onsite": "onsite", "remote": "remote", "hybrid": "hybrid"}
# compensation.summaryComponents[].interval ("1 YEAR") to Intake's salary periods.
_PERIODS = {"YEAR": "year", "MONTH": "month", "WEEK": "week", "DAY": "day", "HOUR": "hour"}


class AshbyAdapter(Adapter):
    kind = "ashby"

    @property
    def org(self) -> str:
        return self.source.identifier

    def list_postings(self) -> Iterator[Posting]:
        base = settings.INTAKE_ASHBY_URL.rstrip("/")
        url = f"{base}/posting-api/job-board/{quote(self.org, safe='')}"
        try:
            with self.fetcher.stream(url, params={"includeCompensation": "true"}) as response:
                for item, problem in iter_jobs(response.reader(), f"Ashby job board '{self.org}'"):
                    if problem:
                        yield Posting(external_id="", invalid_reasons=[f"job: {problem}"])
                    elif not isinstance(item, dict):
                        yield Posting(external_id="", invalid_reasons=["job: not a JSON object"])
                    elif item.get("isListed") is not False:
                        yield to_posting(item)
        except FetchError as exc:
            if exc.status == 404:
                raise SourceFailed(
                    f"Ashby job board '{self.org}' does not exist (404). Check the "
                    f"organization name: it is the part after jobs.ashbyhq.com/ in the "
                    f"company's job board URL."
                ) from exc
            raise SourceFailed(f"Ashby job board '{self.org}' could not be read: {exc}") from exc
        except (ijson.JSONError, ValueError) as exc:  # ValueError: JsonTooDeep, bad \u escapes
            raise SourceFailed(
                f"Ashby job board '{self.org}' answered with something that is not the posting "
                f"API's JSON ({clean_text(str(exc))})."
            ) from exc

    @classmethod
    def clean_identifier(cls, identifier: str) -> str:
        return clean_board_identifier(cls.kind, identifier)

    @classmethod
    def board_in_url(
        cls, host: str, segments: list[str], query: str
    ) -> tuple[str, dict[str, str]] | None:
        if host == "jobs.ashbyhq.com":
            # jobs.ashbyhq.com/acme[/<job id>[/application]]
            return (segments[0], {}) if segments else None
        # api.ashbyhq.com/posting-api/job-board/acme[?includeCompensation=true]
        if (
            host == "api.ashbyhq.com"
            and len(segments) >= 3
            and segments[:2] == ["posting-api", "job-board"]
        ):
            return segments[2], {}
        return None


def to_posting(job: dict[str, Any]) -> Posting:
    """Map one job of the posting API to a Posting."""
    reasons: list[str] = []
    external_id = _text(job.get("id"))
    if not external_id:
        reasons.append("id: missing")
    title = _text(job.get("title"))
    if not title:
        reasons.append("title: missing")

    # workplaceType is the newer field and tells hybrid apart; the older isRemote flag only
    # counts when a board does not send workplaceType.
    workplace_type = _WORKPLACE.get(_text(job.get("workplaceType")).lower(), "")
    remote: bool | None
    if workplace_type:
        remote = workplace_type == "remote"
    elif isinstance(job.get("isRemote"), bool):
        remote = job["isRemote"]
        workplace_type = "remote" if remote else ""
    else:
        remote = None

    posting = Posting(
        external_id=external_id,
        title=title,
        url=_text(job.get("jobUrl")) or _text(job.get("applyUrl")),
        location=_text(job.get("location")) or _address(job.get("address")),
        remote=remote,
        workplace_type=workplace_type,
        employment_type=_text(job.get("employmentType")),
        department=_text(job.get("department")) or _text(job.get("team")),
        description_html=_text(job.get("descriptionHtml")),
        posted_at=parse_datetime(job.get("publishedAt")),
        invalid_reasons=reasons,
    )
    _set_compensation(posting, job.get("compensation"))
    return posting


def _set_compensation(posting: Posting, compensation: Any) -> None:
    if not isinstance(compensation, dict):
        return
    components = compensation.get("summaryComponents")
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, dict):
            continue
        if _text(component.get("compensationType")).lower() != "salary":
            continue  # equity, bonus, commission
        low, high = _decimal(component.get("minValue")), _decimal(component.get("maxValue"))
        if low is None and high is None:
            continue
        posting.salary_min, posting.salary_max = low, high
        posting.salary_currency = _text(component.get("currencyCode")).upper()[:3]
        # "1 YEAR", "1 HOUR"; another count ("2 WEEK") has no period of ours.
        count, _, unit = _text(component.get("interval")).upper().partition(" ")
        posting.salary_period = _PERIODS.get(unit, "") if count == "1" else ""
        return
    posting.salary_text = _text(compensation.get("compensationTierSummary"))[:200]


def _address(address: Any) -> str:
    postal = address.get("postalAddress") if isinstance(address, dict) else None
    if not isinstance(postal, dict):
        return ""
    parts = (postal.get(key) for key in ("addressLocality", "addressRegion", "addressCountry"))
    return ", ".join(text for part in parts if (text := _text(part)))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None

"""Greenhouse job board API: GET {base}/v1/boards/{token}/jobs?content=true.

The whole board comes in one response (no pagination) — 100+ MB for a 50,000-job board — so
it is parsed as it arrives (ijson over "jobs.item") and never held whole.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, quote

import ijson
from django.conf import settings

from ingestion import safejson
from ingestion.adapters.base import Adapter, Posting, RawRecord, SourceFailed, posting_checked
from ingestion.adapters.recognize import clean_board_identifier
from ingestion.fetching import FetchError
from ingestion.normalize import parse_datetime
from ingestion.textclean import clean_text

# Hosts whose first path segment is the board token (and whose embed pages name it in ?for=).
_BOARD_HOSTS = {"boards.greenhouse.io", "job-boards.greenhouse.io"}
# Hosts of the job board API (api.greenhouse.io is its older name).
_API_HOSTS = {"boards-api.greenhouse.io", "api.greenhouse.io"}
# Custom fields ("metadata") a board may use for the employment type; names vary by company.
_EMPLOYMENT_TYPE_FIELD = re.compile(r"employment|job type|commitment|contract type", re.I)
# A pay range's title ("Annual base salary", "Hourly pay") is the only hint of its period.
_PERIOD_WORDS = (("hour", "hour"), ("annual", "year"), ("year", "year"), ("month", "month"))


class GreenhouseAdapter(Adapter):
    kind = "greenhouse"

    @property
    def token(self) -> str:
        return self.source.identifier

    def _board_url(self) -> str:
        base = settings.INTAKE_GREENHOUSE_URL.rstrip("/")
        return f"{base}/v1/boards/{quote(self.token, safe='')}"

    def list_postings(self) -> Iterator[Posting]:
        for job in self._jobs():
            yield to_posting(job) if isinstance(job, dict) else job

    def records(self, raw_hash: Callable[[str], str]) -> Iterator[Posting | RawRecord]:
        """Each job as a RawRecord mapped later, so that the listing can have other workers
        map it (ingestion.pipeline.mapping): parsing the board's stream is the listing's own
        work, mapping a job is not. No raw hash: a job is mapped and compared every time."""
        for job in self._jobs():
            if not isinstance(job, dict):
                yield posting_checked(job)
                continue
            content = job.get("content")
            yield RawRecord(
                external_id=_job_id(job),
                company="",
                raw_hash="",
                row=None,
                size=len(content) if isinstance(content, str) else 0,
                record=job,
                mapper=_listed_posting,
            )

    def _jobs(self) -> Iterator[dict[str, Any] | Posting]:
        """The board's jobs as parsed, an element that is no job as its invalid Posting."""
        url = f"{self._board_url()}/jobs"
        try:
            with self.fetcher.stream(url, params={"content": "true"}) as response:
                for item, problem in iter_jobs(
                    response.reader(), f"Greenhouse board '{self.token}'"
                ):
                    if problem:
                        yield Posting(external_id="", invalid_reasons=[f"job: {problem}"])
                    else:
                        yield item if isinstance(item, dict) else _not_an_object()
        except FetchError as exc:
            raise self._failed(exc) from exc
        except (ijson.JSONError, ValueError) as exc:  # ValueError: JsonTooDeep, bad \u escapes
            raise SourceFailed(
                f"Greenhouse board '{self.token}' answered with something that is not the "
                f"job board API's JSON ({clean_text(str(exc))})."
            ) from exc

    def fetch_detail(self, posting: Posting) -> Posting:
        """The job with its content (and pay ranges). A FetchError propagates: it is this
        posting's failure (404: removed since the listing), not the board's."""
        url = f"{self._board_url()}/jobs/{quote(posting.external_id, safe='')}"
        data = self.fetcher.get_json(url, params={"pay_transparency": "true"}, page=True)
        if not isinstance(data, dict):
            raise FetchError(f"{url} did not answer with a Greenhouse job.", url=url)
        detailed = to_posting(data)
        detailed.row = posting.row
        # Whatever the detail answered, asking again would not help.
        detailed.needs_detail = False
        return detailed

    def _failed(self, exc: FetchError) -> SourceFailed:
        if exc.status == 404:
            return SourceFailed(
                f"Greenhouse board '{self.token}' does not exist (404). Check the board token: "
                f"it is the part after boards.greenhouse.io/ in the company's job board URL."
            )
        return SourceFailed(f"Greenhouse board '{self.token}' could not be read: {exc}")

    @classmethod
    def clean_identifier(cls, identifier: str) -> str:
        return clean_board_identifier(cls.kind, identifier)

    @classmethod
    def board_in_url(
        cls, host: str, segments: list[str], query: str
    ) -> tuple[str, dict[str, str]] | None:
        first = segments[0] if segments else ""
        if host in _BOARD_HOSTS:
            if first.lower() == "embed":
                # boards.greenhouse.io/embed/job_board?for=acme (and job_app?for=acme&token=…)
                board = parse_qs(query).get("for", [""])[0]
                return (board, {}) if board else None
            return (first, {}) if first else None
        # boards-api.greenhouse.io/v1/boards/acme/jobs[?content=true]
        if host in _API_HOSTS and len(segments) >= 3 and segments[:2] == ["v1", "boards"]:
            return segments[2], {}
        return None


def iter_jobs(reader: Any, what: str) -> Iterator[tuple[Any, str]]:
    """(element, "") for each element of the top-level "jobs" array, parsed as it arrives
    (Greenhouse's and Ashby's boards share this shape); (None, why) for an element nested
    deeper than safejson.MAX_DEPTH. safejson.JsonTooDeep for a deeper document.

    No element at all is either an empty board or an answer of another shape ({} from a
    proxy, an error object): the first bytes, kept as they pass, tell which, so a broken
    answer is not taken for a board whose jobs all closed."""
    head = _Head(reader)
    empty = True
    for item in safejson.items(head, "jobs.item"):
        empty = False
        yield item
    if empty and not head.has_jobs_list():
        raise SourceFailed(f"{what} answered without a list of jobs.")


class _Head:
    """A binary reader that keeps the first `limit` bytes read through it."""

    def __init__(self, reader: Any, limit: int = 64 * 1024) -> None:
        self._reader = reader
        self._limit = limit
        self.head = b""
        self.complete = True

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size)
        if len(self.head) + len(data) <= self._limit:
            self.head += data
        else:
            self.complete = False
        return data

    def has_jobs_list(self) -> bool:
        if not self.complete:
            return False  # a large answer without a single job is not an empty board
        try:
            data = safejson.loads(self.head)
        except ValueError:
            return False
        return isinstance(data, dict) and isinstance(data.get("jobs"), list)


def _listed_posting(job: dict[str, Any], row: int | None) -> Posting:
    """A listed job as Adapter.postings() gives it (a module function: a RawRecord is pickled
    to be mapped on another worker)."""
    return posting_checked(to_posting(job))


def _job_id(job: dict[str, Any]) -> str:
    raw_id = job.get("id")
    return "" if raw_id is None or isinstance(raw_id, bool) else str(raw_id).strip()


def to_posting(job: dict[str, Any]) -> Posting:
    """Map one job of the job board API (listing or detail) to a Posting."""
    reasons: list[str] = []
    external_id = _job_id(job)
    if not external_id:
        reasons.append("id: missing")
    title = _text(job.get("title"))
    if not title:
        reasons.append("title: missing")

    location = _text(_get(job, "location", "name"))
    if not location:
        location = ", ".join(_names(job.get("offices")))
    remote: bool | None = None
    workplace_type = ""
    # Greenhouse has no remote flag; boards say it in the location ("Remote - US").
    if re.search(r"\bremote\b", location, re.I):
        remote, workplace_type = True, "remote"

    # first_published is when the job went up; updated_at moves with every edit.
    posted_at = parse_datetime(job.get("first_published")) or parse_datetime(job.get("updated_at"))
    content = job.get("content")
    posting = Posting(
        external_id=external_id,
        title=title,
        url=_text(job.get("absolute_url")),
        location=location,
        remote=remote,
        workplace_type=workplace_type,
        employment_type=_employment_type(job.get("metadata")),
        department=", ".join(_names(job.get("departments"))),
        # The API entity-escapes the HTML ("&lt;p&gt;"): undo that once. A second unescape
        # would turn text the company wrote as "&lt;" into markup.
        description_html=unescape_once(content) if isinstance(content, str) else "",
        posted_at=posted_at,
        needs_detail=content is None,
        invalid_reasons=reasons,
    )
    _set_pay(posting, job.get("pay_input_ranges"))
    return posting


def unescape_once(text: str) -> str:
    """html.unescape(text), faster for the usual content (html.unescape calls back into
    Python for every reference: two thirds of the time of listing a large board).

    When every "&" starts one of the references the transport escaping makes (&lt; &gt;
    &quot; &#39; &#x27; &amp;), plain replacements give the same result; anything else goes
    through html.unescape. No replacement makes or breaks another's reference (none puts an
    "&" or takes one away), so each is replaced in one pass, without counting them first, and
    whatever "&" is left afterwards must all be "&amp;": "&amp;" is replaced last, so that
    "&amp;lt;" becomes the text "&lt;" and not "<"."""
    if "&" not in text:
        return text
    done = text.replace("&lt;", "<").replace("&gt;", ">")
    if "&" not in done:
        return done
    if "&quot;" in done:
        done = done.replace("&quot;", '"')
    if "&#" in done:
        done = done.replace("&#39;", "'").replace("&#x27;", "'")
    left = done.count("&")
    if not left:
        return done
    # Each "&amp;" replaced is 4 characters fewer: all of what is left, or some other "&".
    unescaped = done.replace("&amp;", "&")
    if len(done) - len(unescaped) == 4 * left:
        return unescaped
    return html.unescape(text)


def _set_pay(posting: Posting, ranges: Any) -> None:
    """pay_input_ranges (detail with ?pay_transparency=true): one range per zone; the first
    is the board's primary one. Greenhouse gives no interval: the title may say it."""
    if not isinstance(ranges, list) or not ranges or not isinstance(ranges[0], dict):
        return
    pay = ranges[0]
    posting.salary_min = _cents(pay.get("min_cents"))
    posting.salary_max = _cents(pay.get("max_cents"))
    if posting.salary_min is None and posting.salary_max is None:
        return
    posting.salary_currency = _text(pay.get("currency_type")).upper()[:3]
    title = _text(pay.get("title")).lower()
    for word, period in _PERIOD_WORDS:
        if word in title:
            posting.salary_period = period
            break


def _not_an_object() -> Posting:
    return Posting(external_id="", invalid_reasons=["job: not a JSON object"])


def _employment_type(metadata: Any) -> str:
    if not isinstance(metadata, list):
        return ""
    for field in metadata:
        if not isinstance(field, dict) or not _EMPLOYMENT_TYPE_FIELD.search(
            _text(field.get("name"))
        ):
            continue
        value = field.get("value")
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value if v)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _names(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [name for item in items if isinstance(item, dict) and (name := _text(item.get("name")))]


def _get(data: dict[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _cents(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)) / 100
    except InvalidOperation:
        return None

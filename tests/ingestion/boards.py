"""Fixture builders for the job board APIs, in each API's public shape, and helpers that mount
a board on a FixtureServer. Used by the adapter tests, the pipeline tests and the benchmark.

    jobs = [greenhouse_job(1, "Backend Engineer"), greenhouse_job(2, "Designer")]
    mount_greenhouse(fixture_server, "acme", jobs)
    settings.INTAKE_GREENHOUSE_URL = fixture_server.base_url

    mount_lever(fixture_server, "acme", lever_postings(250))
    mount_ashby(fixture_server, "acme", [ashby_job(title="Designer", is_listed=False)])

Every builder is deterministic for the same arguments (ids and descriptions derive from a
seed), so a re-run sees the same board; change a field to make a posting "updated". Mounting
again replaces the board (a board that changed between runs). A mount given a callable instead
of a list calls it on every request and streams the answer, so a 50,000-job board is never
held whole by the test process either.
"""

from __future__ import annotations

import html
import json
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from tests.fixture_server import FixtureServer, Reply, Request

Jobs = Iterable[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]]

BASE_TIME = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)

# --- descriptions ----------------------------------------------------------------------------

_TEAMS = ["Engineering", "Product", "Design", "Data", "Sales", "Customer Success", "Finance"]
_CITIES = ["San Francisco, CA", "New York, NY", "London, UK", "Berlin, Germany", "Toronto, ON"]
_TITLES = [
    "Backend Engineer",
    "Frontend Engineer",
    "Data Scientist",
    "Product Designer",
    "Account Executive",
    "Site Reliability Engineer",
    "Product Manager",
    "Customer Success Manager",
    "Financial Analyst",
    "Machine Learning Engineer",
]
_LEVELS = ["", "Senior ", "Staff ", "Lead ", "Principal "]
_SENTENCES = [
    "You will work with a small team that owns its services from design to production.",
    "We ship several times a day and keep our main branch always deployable.",
    "Our customers rely on us to move millions of records every night, on time.",
    "You will pair with engineers, designers and support to understand real problems.",
    "We value clear writing, careful reviews and leaving the code better than we found it.",
    "The role reports to the head of the team and works across three time zones.",
    "We measure before we optimize and we write down what we learn.",
    "You will mentor others and be mentored; nobody here works alone.",
    "Expect to own a roadmap area within your first quarter.",
    "We are a remote-friendly company with offices for those who like them.",
]
_DUTIES = [
    "Design, build and operate APIs used by thousands of customers",
    "Improve the reliability & performance of our ingestion pipeline",
    "Write tests that catch regressions before our users do",
    "Review code and give kind, specific feedback",
    "Take part in an on-call rotation (one week in six)",
    "Work with product to turn vague problems into small shippable steps",
    "Document decisions so the next person understands why",
]
_REQUIREMENTS = [
    "3+ years building production web services",
    "Experience with Python, Go or a similar language",
    "Comfort with SQL and relational databases (we use PostgreSQL)",
    "Clear written communication in English",
    "Curiosity about how systems fail and how to make them not",
    "Bonus: experience with queues, caches <em>and</em> search engines",
]
_BENEFITS = [
    "Competitive salary and equity",
    "Health, dental and vision insurance",
    "Four weeks of paid vacation plus local holidays",
    "A yearly learning budget",
    "Parental leave of 16 weeks",
]


def job_title(seed: int) -> str:
    rng = random.Random(seed)
    return f"{rng.choice(_LEVELS)}{rng.choice(_TITLES)}"


def description_html(seed: int = 0, *, title: str = "", size: int = 0) -> str:
    """A realistic posting description (paragraphs, headings, lists, an entity, a link),
    the same for the same seed. `size` pads it with more paragraphs to about that many
    characters (a benchmark's 2 KB postings)."""
    rng = random.Random(seed)
    company = rng.choice(["Acme", "Globex", "Initech", "Umbrella", "Hooli"])
    role = title or job_title(seed)
    parts = [
        f"<p><strong>{html.escape(company)}</strong> is hiring a {html.escape(role)}. "
        f"{' '.join(rng.sample(_SENTENCES, 3))}</p>",
        "<h3>What you&#39;ll do</h3>",
        "<ul>" + "".join(f"<li>{html.escape(d)}</li>" for d in rng.sample(_DUTIES, 4)) + "</ul>",
        "<h3>What we look for</h3>",
        "<ul>" + "".join(f"<li>{r}</li>" for r in rng.sample(_REQUIREMENTS, 4)) + "</ul>",
        f"<p>{' '.join(rng.sample(_SENTENCES, 2))} Read more on "
        f'<a href="https://example.com/{company.lower()}/about">our blog</a>.</p>',
        "<h3>Benefits</h3>",
        "<ul>" + "".join(f"<li>{b}</li>" for b in rng.sample(_BENEFITS, 3)) + "</ul>",
    ]
    text = "\n".join(parts)
    while len(text) < size:
        text += f"\n<p>{' '.join(rng.sample(_SENTENCES, 3))}</p>"
    return text


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# --- Greenhouse ------------------------------------------------------------------------------


def greenhouse_job(
    id: int,
    title: str | None = None,
    *,
    board: str = "acme",
    location: str | None = None,
    content: str | None = "",
    first_published: datetime | str | None = None,
    updated_at: datetime | str | None = None,
    departments: list[str] | None = None,
    offices: list[str] | None = None,
    employment_type: str | None = None,
    pay: tuple[int, int, str] | None = None,
    pay_title: str = "Annual base salary",
    omit: Iterable[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """One job as GET /v1/boards/{token}/jobs?content=true lists it.

    `content` is the UNESCAPED HTML; it is entity-escaped here the way the API sends it
    ("" = a generated description; None = the key is left out, as without ?content=true).
    `pay` = (min, max, currency) in whole units → pay_input_ranges in cents. `extra` keys
    override or add fields; `omit` names keys to leave out (omit=["title"]: invalid)."""
    rng = random.Random(id)
    title = job_title(id) if title is None else title
    published = (
        first_published
        if first_published is not None
        else BASE_TIME - timedelta(days=rng.randint(1, 90))
    )
    updated = updated_at if updated_at is not None else BASE_TIME
    department = departments if departments is not None else [rng.choice(_TEAMS)]
    office = offices if offices is not None else [rng.choice(_CITIES)]
    job: dict[str, Any] = {
        "id": id,
        "internal_job_id": 4_000_000 + id,
        "title": title,
        "absolute_url": f"https://job-boards.greenhouse.io/{board}/jobs/{id}",
        "location": {"name": location if location is not None else office[0]},
        "updated_at": updated if isinstance(updated, str) else _iso(updated),
        "first_published": published if isinstance(published, str) else _iso(published),
        "requisition_id": f"REQ-{id}",
        "language": "en",
        "company_name": board.title(),
        "data_compliance": [
            {
                "type": "gdpr",
                "requires_consent": False,
                "requires_processing_consent": False,
                "requires_retention_consent": False,
                "retention_period": None,
            }
        ],
        "metadata": [
            {
                "id": 101,
                "name": "Employment Type",
                "value": employment_type or "Full-time",
                "value_type": "single_select",
            },
            {"id": 102, "name": "Remote eligible", "value": None, "value_type": "yes_no"},
        ],
        "departments": [
            {"id": 200 + i, "name": name, "child_ids": [], "parent_id": None}
            for i, name in enumerate(department)
        ],
        "offices": [
            {"id": 300 + i, "name": name, "location": name, "child_ids": [], "parent_id": None}
            for i, name in enumerate(office)
        ],
    }
    if content is not None:
        body = content or description_html(id, title=title or "")
        job["content"] = html.escape(body, quote=True)
    if pay is not None:
        low, high, currency = pay
        job["pay_input_ranges"] = [
            {
                "min_cents": low * 100,
                "max_cents": high * 100,
                "currency_type": currency,
                "title": pay_title,
                "blurb": "<p>Base pay varies by location.</p>",
            }
        ]
    return _finish(job, extra, omit)


def greenhouse_jobs(
    count: int, *, start: int = 1, board: str = "acme", size: int = 0
) -> Iterator[dict[str, Any]]:
    """`count` generated jobs with ids start…; descriptions padded to `size` characters."""
    for id in range(start, start + count):
        content = description_html(id, title=job_title(id), size=size) if size else ""
        yield greenhouse_job(id, board=board, content=content)


def edited_board() -> list[dict[str, Any]]:
    """Five jobs "Role 1 Engineer" … "Role 5 Engineer" as the board lists them later: 1 gone,
    2 edited, 7 new."""
    return [
        greenhouse_job(2, "Role 2 Engineer (edited)"),
        *[greenhouse_job(i, f"Role {i} Engineer") for i in (3, 4, 5)],
        greenhouse_job(7, "Role 7 Engineer"),
    ]


def mount_greenhouse(
    server: FixtureServer, token: str, jobs: Jobs, *, listing_content: bool = True
) -> None:
    """Serve a board at /v1/boards/{token}/jobs (content only with ?content=true, as the API
    does) and each job's detail at /v1/boards/{token}/jobs/{id}. `listing_content=False`
    leaves content out of the listing even when asked (the detail still has it)."""
    base = f"/v1/boards/{token}"
    jobs = _snapshot(jobs)

    def listing(request: Request) -> Reply:
        with_content = listing_content and request.arg("content").lower() == "true"
        items = (
            job if with_content else {k: v for k, v in job.items() if k != "content"}
            for job in _iterate(jobs)
        )
        return _streamed_object("jobs", items, meta=lambda n: {"meta": {"total": n}})

    server.route(f"{base}/jobs", handler=listing)
    if not callable(jobs):
        for job in jobs:
            server.route(f"{base}/jobs/{job['id']}", json=job)


# --- Lever -----------------------------------------------------------------------------------


def lever_posting(
    id: str | None = None,
    text: str | None = None,
    *,
    seed: int = 0,
    site: str = "acme",
    location: str | None = None,
    team: str | None = None,
    department: str | None = None,
    commitment: str = "Full-time",
    workplace_type: str = "onsite",
    created_at: datetime | int | None = None,
    description: str | None = None,
    lists: list[tuple[str, list[str]]] | None = None,
    additional: str | None = None,
    salary: tuple[int, int, str, str] | None = None,
    country: str = "US",
    omit: Iterable[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """One posting as GET /v0/postings/{site}?mode=json lists it.

    `created_at` is a datetime or epoch milliseconds; `lists` = [(heading, [item, …])];
    `salary` = (min, max, currency, interval) e.g. (90000, 120000, "USD", "per-year-salary").
    `extra` keys override or add fields; `omit` names keys to leave out."""
    rng = random.Random(seed)
    id = id or str(uuid.UUID(int=rng.getrandbits(128), version=4))
    text = job_title(seed) if text is None else text
    team = team or rng.choice(_TEAMS)
    location = location or rng.choice(_CITIES)
    created = created_at if created_at is not None else BASE_TIME - timedelta(days=seed % 60)
    created_ms = created if isinstance(created, int) else int(created.timestamp() * 1000)
    opening = (
        description
        if description is not None
        else (
            f"<div><b>{html.escape(text or 'This role')}</b> at {site.title()}.</div>"
            f"<div>{' '.join(rng.sample(_SENTENCES, 3))}</div>"
        )
    )
    blocks = (
        lists
        if lists is not None
        else [
            ("What you'll do", rng.sample(_DUTIES, 3)),
            ("What you need", rng.sample(_REQUIREMENTS, 3)),
        ]
    )
    closing = (
        additional
        if additional is not None
        else (f"<div>{' '.join(rng.sample(_SENTENCES, 2))}</div>")
    )
    posting: dict[str, Any] = {
        "id": id,
        "text": text,
        "hostedUrl": f"https://jobs.lever.co/{site}/{id}",
        "applyUrl": f"https://jobs.lever.co/{site}/{id}/apply",
        "categories": {
            "commitment": commitment,
            "department": department or team,
            "location": location,
            "team": team,
            "allLocations": [location],
        },
        "createdAt": created_ms,
        "workplaceType": workplace_type,
        "country": country,
        "description": opening,
        "descriptionPlain": _plain(opening),
        "lists": [
            {"text": heading, "content": "".join(f"<li>{item}</li>" for item in items)}
            for heading, items in blocks
        ],
        "additional": closing,
        "additionalPlain": _plain(closing),
    }
    if salary is not None:
        low, high, currency, interval = salary
        posting["salaryRange"] = {
            "min": low,
            "max": high,
            "currency": currency,
            "interval": interval,
        }
        posting["salaryDescription"] = "<div>Pay depends on experience and location.</div>"
        posting["salaryDescriptionPlain"] = "Pay depends on experience and location."
    return _finish(posting, extra, omit)


def lever_postings(
    count: int, *, site: str = "acme", start: int = 1, size: int = 0
) -> Iterator[dict[str, Any]]:
    """`count` generated postings (seeds start…); openings padded to `size` characters."""
    for seed in range(start, start + count):
        body = description_html(seed, title=job_title(seed), size=size) if size else None
        yield lever_posting(seed=seed, site=site, description=body)


def mount_lever(server: FixtureServer, site: str, postings: Jobs, *, prefix: str = "") -> None:
    """Serve a site at {prefix}/v0/postings/{site}, paged by ?skip= and ?limit= like the API
    (no limit: everything), as a JSON array; without ?mode=json it answers the HTML page.
    Use `prefix` to tell hosts apart on one server (e.g. "/eu" for INTAKE_LEVER_EU_URL)."""
    postings = _snapshot(postings)

    def handler(request: Request) -> Reply:
        if request.arg("mode") != "json":
            return Reply(
                200,
                b"<html><body>Jobs at " + site.encode() + b"</body></html>",
                {"Content-Type": "text/html; charset=utf-8"},
            )
        skip = int(request.arg("skip", "0") or 0)
        limit = int(request.arg("limit", "0") or 0)
        page: list[dict[str, Any]] = []
        for index, posting in enumerate(_iterate(postings)):
            if index < skip:
                continue
            if limit and len(page) >= limit:
                break
            page.append(posting)
        return Reply(200, json.dumps(page).encode(), {"Content-Type": "application/json"})

    server.route(f"{prefix}/v0/postings/{site}", handler=handler)


# --- Ashby -----------------------------------------------------------------------------------


def ashby_job(
    id: str | None = None,
    title: str | None = None,
    *,
    seed: int = 0,
    org: str = "acme",
    location: str | None = None,
    secondary_locations: list[str] | None = None,
    department: str | None = None,
    team: str | None = None,
    is_listed: bool = True,
    is_remote: bool = False,
    workplace_type: str | None = "OnSite",
    employment_type: str = "FullTime",
    description: str | None = None,
    published_at: datetime | str | None = None,
    compensation: tuple[int, int, str, str] | None = None,
    omit: Iterable[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """One job as GET /posting-api/job-board/{org}?includeCompensation=true lists it.

    `compensation` = (min, max, currency, interval) e.g. (120000, 150000, "USD", "1 YEAR");
    `workplace_type=None` leaves the field out (older boards: only isRemote). `extra` keys
    override or add fields; `omit` names keys to leave out."""
    rng = random.Random(seed)
    id = id or str(uuid.UUID(int=rng.getrandbits(128), version=4))
    title = job_title(seed) if title is None else title
    location = location or rng.choice(_CITIES)
    team = team or rng.choice(_TEAMS)
    published = (
        published_at if published_at is not None else BASE_TIME - timedelta(days=seed % 45, hours=3)
    )
    body = description if description is not None else description_html(seed, title=title or "")
    job: dict[str, Any] = {
        "id": id,
        "title": title,
        "department": department or team,
        "team": team,
        "employmentType": employment_type,
        "location": location,
        "shouldDisplayCompensationOnJobPostings": compensation is not None,
        "secondaryLocations": [
            {"location": place, "address": {"postalAddress": {"addressLocality": place}}}
            for place in (secondary_locations or [])
        ],
        "publishedAt": published if isinstance(published, str) else _iso(published),
        "isListed": is_listed,
        "isRemote": is_remote,
        "workplaceType": workplace_type,
        "address": {
            "postalAddress": {
                "addressLocality": location.split(",")[0],
                "addressRegion": location.split(",")[-1].strip(),
                "addressCountry": "United States",
            }
        },
        "jobUrl": f"https://jobs.ashbyhq.com/{org}/{id}",
        "applyUrl": f"https://jobs.ashbyhq.com/{org}/{id}/application",
        "descriptionHtml": body,
        "descriptionPlain": _plain(body),
    }
    if compensation is not None:
        low, high, currency, interval = compensation
        summary = f"{currency} {low:,} – {high:,}"
        job["compensation"] = {
            "compensationTierSummary": summary,
            "scrapeableCompensationSalarySummary": summary,
            "compensationTiers": [
                {
                    "id": f"tier-{id}",
                    "tierSummary": summary,
                    "title": "Base",
                    "components": [],
                    "additionalInformation": None,
                }
            ],
            "summaryComponents": [
                {
                    "compensationType": "Salary",
                    "interval": interval,
                    "currencyCode": currency,
                    "minValue": low,
                    "maxValue": high,
                },
                {
                    "compensationType": "EquityPercentage",
                    "interval": "NONE",
                    "currencyCode": None,
                    "minValue": 0.01,
                    "maxValue": 0.05,
                },
            ],
        }
    if workplace_type is None:
        del job["workplaceType"]
    return _finish(job, extra, omit)


def ashby_jobs(
    count: int, *, org: str = "acme", start: int = 1, size: int = 0
) -> Iterator[dict[str, Any]]:
    """`count` generated jobs (seeds start…); descriptions padded to `size` characters."""
    for seed in range(start, start + count):
        body = description_html(seed, title=job_title(seed), size=size) if size else None
        yield ashby_job(seed=seed, org=org, description=body)


def mount_ashby(server: FixtureServer, org: str, jobs: Jobs) -> None:
    """Serve a board at /posting-api/job-board/{org} ({"apiVersion": "1", "jobs": [...]});
    compensation only with ?includeCompensation=true, as the API does."""
    jobs = _snapshot(jobs)

    def handler(request: Request) -> Reply:
        with_pay = request.arg("includeCompensation").lower() == "true"
        items = (
            job if with_pay else {k: v for k, v in job.items() if k != "compensation"}
            for job in _iterate(jobs)
        )
        return _streamed_object("jobs", items, head={"apiVersion": "1"})

    server.route(f"/posting-api/job-board/{org}", handler=handler)


# --- helpers ---------------------------------------------------------------------------------


def _iterate(jobs: Jobs) -> Iterable[dict[str, Any]]:
    return jobs() if callable(jobs) else jobs


def _snapshot(jobs: Jobs) -> Jobs:
    # A generator would be used up by the first request: keep a list (or the callable).
    return jobs if callable(jobs) else list(jobs)


def _finish(data: dict[str, Any], extra: dict[str, Any], omit: Iterable[str]) -> dict[str, Any]:
    data.update(extra)
    for key in omit:
        data.pop(key, None)
    return data


def _streamed_object(
    key: str,
    items: Iterable[dict[str, Any]],
    *,
    head: dict[str, Any] | None = None,
    meta: Callable[[int], dict[str, Any]] | None = None,
) -> Reply:
    """{**head, key: [items…], **meta(count)} as a chunked body, written as it is built."""

    def chunks() -> Iterator[bytes]:
        buffer = ["{"]
        for name, value in (head or {}).items():
            buffer.append(f"{json.dumps(name)}: {json.dumps(value)}, ")
        buffer.append(f"{json.dumps(key)}: [")
        size, count = 0, 0
        for item in items:
            piece = ("," if count else "") + json.dumps(item)
            buffer.append(piece)
            size += len(piece)
            count += 1
            if size >= 64 * 1024:
                yield "".join(buffer).encode()
                buffer, size = [], 0
        buffer.append("]")
        for name, value in (meta(count) if meta else {}).items():
            buffer.append(f", {json.dumps(name)}: {json.dumps(value)}")
        buffer.append("}")
        yield "".join(buffer).encode()

    return Reply(200, chunks(), {"Content-Type": "application/json"})


def _plain(markup: str) -> str:
    return LexborHTMLParser(markup).text(separator=" ").strip() if markup else ""

"""Fixture builders for careers sites with schema.org JSON-LD and for uploaded files (CSV, JSON,
JSONL of postings; URL lists). Used by the adapter and upload tests, the pipeline tests and the
benchmark.

    posting = jsonld_posting(7, title="Backend Engineer")          # a complete JobPosting
    html = jsonld_posting_page(posting)                            # a page carrying it
    careers_url = mount_careers_site(fixture_server, [jsonld_posting(i) for i in range(1, 4)])
    urls = mount_posting_pages(fixture_server, [jsonld_posting(1), jsonld_posting(2)])

    data = postings_csv([posting_row(1), posting_row(2, title="")])  # bytes of a CSV upload
    path = generate_postings_file(50_000, "jsonl", path=tmp_path / "jobs.jsonl")

Everything is deterministic for the same arguments (descriptions derive from the posting's
number and seed), so a re-run sees the same postings; change a field to make one "updated".
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.fixture_server import FixtureServer

BASE_TIME = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
COMPANY = "Acme Robotics"

# --- descriptions ----------------------------------------------------------------------------

_TITLES = [
    "Backend Engineer", "Frontend Engineer", "Data Scientist", "Product Designer",
    "Account Executive", "Site Reliability Engineer", "Product Manager", "Support Engineer",
    "Financial Analyst", "Machine Learning Engineer", "Technical Writer", "Recruiter",
    "Security Engineer", "Mobile Engineer", "Data Engineer", "Solutions Architect",
]  # fmt: skip
_LEVELS = ["", "Senior ", "Staff ", "Lead ", "Junior ", "Principal "]
_TEAMS = ["Engineering", "Product", "Design", "Data", "Sales", "Support", "Finance", "People"]
_PLACES = [
    ("Berlin", "BE", "DE"), ("London", "England", "GB"), ("New York", "NY", "US"),
    ("San Francisco", "CA", "US"), ("Toronto", "ON", "CA"), ("Lisbon", "Lisbon", "PT"),
    ("Paris", "Île-de-France", "FR"), ("Amsterdam", "NH", "NL"), ("Austin", "TX", "US"),
]  # fmt: skip
_EMPLOYMENT = ["FULL_TIME", "FULL_TIME", "FULL_TIME", "PART_TIME", "CONTRACTOR", "INTERN"]
_SUBJECTS = [
    "our ingestion service", "the billing platform", "the mobile apps", "the search index",
    "the design system", "our data warehouse", "the onboarding flow", "the reporting API",
    "the scheduling engine", "our customer portal", "the fleet dashboard", "the route planner",
]  # fmt: skip
_TEMPLATES = [
    "You will own {s} from design to production and keep it fast as we grow.",
    "Together with the team you will untangle {s} and write down what you learn.",
    "Customers rely on {s} every night; you will make it boring and dependable.",
    "You will pair with designers and support engineers to improve {s}.",
    "We measure before we optimize: expect to profile {s} and remove what is slow.",
    "In your first months you will ship small changes to {s} several times a week.",
    "You will review pull requests for {s} with care and a sense of humour.",
    "Help us move {s} to a simpler architecture without stopping the world.",
    "You will mentor colleagues who are new to {s} and to our way of working.",
    "On call for {s} is shared fairly and rarely wakes anyone up.",
]
_SENTENCES = [t.format(s=s) for t in _TEMPLATES for s in _SUBJECTS]
_PERKS = [
    "Four weeks of paid holiday plus public holidays",
    "A learning budget of 1,500 € a year",
    "Flexible hours &amp; a home-office allowance",
    "Parental leave of 20 weeks",
    "Company-paid health insurance",
    "A yearly team offsite",
    "Stock options",
    "A new laptop of your choice",
]


def job_title(n: int) -> str:
    return f"{_LEVELS[n % len(_LEVELS)]}{_TITLES[(n * 7) % len(_TITLES)]}"


def _paragraph(k: int) -> str:
    rng = random.Random(k)
    return "<p>" + " ".join(rng.sample(_SENTENCES, 4)) + "</p>"


# Paragraphs a description picks from (built once; a posting's choice and order vary).
_PARAGRAPHS = [_paragraph(k) for k in range(97)]
_PERK_LISTS = [
    "<h3>What we offer</h3><ul>"
    + "".join(f"<li>{perk}</li>" for perk in random.Random(k).sample(_PERKS, 4))
    + "</ul>"
    for k in range(16)
]


def description_html(n: int = 0, *, seed: int = 0, size: int = 2000) -> str:
    """About `size` characters of realistic, varied HTML (headings, paragraphs, a list,
    entities) for posting `n`: postings share paragraphs but not their choice or order, so
    they are not near-duplicates. Cheap: 50,000 take about a second."""
    count = max(1, (size - 150) // 340)
    step = 1 + (n * 31 + seed) % 96  # coprime with 97: distinct paragraphs
    first = (n * 17 + seed * 7) % 97
    paragraphs = "".join(_PARAGRAPHS[(first + i * step) % 97] for i in range(count))
    return (
        f"<h2>About the role</h2><p>{job_title(n)} in our {_TEAMS[n % len(_TEAMS)]} team "
        f"(reference {n}).</p>{paragraphs}{_PERK_LISTS[(n + seed) % 16]}"
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- JSON-LD ----------------------------------------------------------------------------------


def jsonld_posting(
    n: int = 1,
    *,
    title: str | None = None,
    omit: Iterable[str] = (),
    telecommute: bool = False,
    identifier: Any = "default",
    **extra: Any,
) -> dict[str, Any]:
    """A complete JobPosting (every field Google requires, plus salary and identifier) for
    posting `n`. `omit` drops fields ("datePosted", "jobLocation"…); `telecommute=True` makes
    it a remote posting (jobLocationType TELECOMMUTE with applicantLocationRequirements, no
    jobLocation); `identifier=None` leaves the identifier out; `extra` adds or replaces keys."""
    city, region, country = _PLACES[n % len(_PLACES)]
    data: dict[str, Any] = {
        "@context": "https://schema.org/",
        "@type": "JobPosting",
        "title": title if title is not None else job_title(n),
        "description": description_html(n),
        "identifier": {"@type": "PropertyValue", "name": COMPANY, "value": f"AR-{n:05d}"},
        "datePosted": (BASE_TIME - timedelta(days=n % 40)).date().isoformat(),
        "validThrough": _iso(BASE_TIME + timedelta(days=60)),
        "employmentType": _EMPLOYMENT[n % len(_EMPLOYMENT)],
        "hiringOrganization": {
            "@type": "Organization",
            "name": COMPANY,
            "sameAs": "https://acme.example",
        },
        "jobLocation": {
            "@type": "Place",
            "address": {
                "@type": "PostalAddress",
                "streetAddress": f"{n} Main Street",
                "addressLocality": city,
                "addressRegion": region,
                "postalCode": "10115",
                "addressCountry": country,
            },
        },
        "baseSalary": {
            "@type": "MonetaryAmount",
            "currency": "EUR" if country != "US" else "USD",
            "value": {
                "@type": "QuantitativeValue",
                "minValue": 50000 + 1000 * (n % 30),
                "maxValue": 70000 + 1000 * (n % 30),
                "unitText": "YEAR",
            },
        },
    }
    if identifier is None:
        del data["identifier"]
    elif identifier != "default":
        data["identifier"] = identifier
    if telecommute:
        del data["jobLocation"]
        data["jobLocationType"] = "TELECOMMUTE"
        data["applicantLocationRequirements"] = [
            {"@type": "Country", "name": "Germany"},
            {"@type": "Country", "name": "Portugal"},
        ]
    for key in omit:
        data.pop(key, None)
    data.update(extra)
    return data


def jsonld_script(block: Any) -> str:
    """One `<script type="application/ld+json">` element: JSON for a dict or list, `block`
    as is for a string (to serve malformed JSON). `</` is escaped as sites do."""
    text = block if isinstance(block, str) else json.dumps(block, indent=1).replace("</", "<\\/")
    return f'<script type="application/ld+json">\n{text}\n</script>'


def jsonld_posting_page(
    *blocks: Any, title: str = "Open position", body: str = "", head: str = ""
) -> str:
    """An HTML page with one JSON-LD script block per argument (a JobPosting dict, a list, an
    `@graph` document, or a raw string for a broken block), plus a visible body."""
    scripts = "\n".join(jsonld_script(block) for block in blocks)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — {COMPANY}</title>
<link rel="stylesheet" href="/static/site.css">
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "Organization",
 "name": "{COMPANY}", "url": "https://acme.example"}}</script>
{head}
{scripts}
</head><body>
<header><nav><a href="/">Home</a> <a href="/careers">Careers</a> <a href="#apply">Apply</a></nav>
</header>
<main><h1>{title}</h1>{body or "<p>Read the role description below and apply.</p>"}
<a id="apply" href="mailto:jobs@acme.example">Apply by email</a></main>
<footer><a href="javascript:void(0)">Cookie settings</a></footer>
</body></html>"""


def careers_page(
    links: Iterable[str], *, postings: Sequence[dict[str, Any]] = (), title: str = "Careers"
) -> str:
    """A careers page linking to `links` (paths or URLs) among navigation, mailto:,
    javascript:, fragment, external and PDF links; with `postings`, it also carries those
    JobPostings itself (in one `@graph` block)."""
    items = "\n".join(
        f'<li><a class="job" href="{link}">Open role {i}</a></li>'
        for i, link in enumerate(links, 1)
    )
    head = ""
    if postings:
        graph = {"@context": "https://schema.org", "@graph": list(postings)}
        head = jsonld_script(graph)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — {COMPANY}</title>{head}</head>
<body>
<nav><a href="/">Home</a> <a href="/about">About us</a> <a href="#top">Top</a>
<a href="mailto:jobs@acme.example">Email us</a> <a href="javascript:openChat()">Chat</a>
<a href="https://twitter.example/acme">Twitter</a> <a href="/handbook.pdf">Handbook</a></nav>
<main><h1>{title}</h1><ul class="jobs">
{items}
</ul></main></body></html>"""


def mount_posting_pages(
    server: FixtureServer, postings: Iterable[dict[str, Any]], *, prefix: str = "/jobs"
) -> list[str]:
    """Serve each posting on its own page at `{prefix}/{n}` (n from 1); returns the URLs."""
    urls = []
    for n, posting in enumerate(postings, 1):
        path = f"{prefix}/{n}"
        server.route(path, body=jsonld_posting_page(posting, title=posting.get("title", "")))
        urls.append(server.url(path))
    return urls


def mount_careers_site(
    server: FixtureServer,
    postings: Iterable[dict[str, Any]],
    *,
    path: str = "/careers",
    prefix: str = "/jobs",
    inline: Sequence[dict[str, Any]] = (),
) -> str:
    """A careers site: one page per posting (mount_posting_pages), a careers page at `path`
    linking to them (and carrying the `inline` postings itself), an About page without
    JSON-LD; returns the careers page URL. Mounting again replaces the site."""
    urls = mount_posting_pages(server, postings, prefix=prefix)
    links = [url.removeprefix(server.base_url) for url in urls]
    server.route(path, body=careers_page(links, postings=inline))
    server.route("/about", body="<html><body><h1>About Acme</h1><p>Robots.</p></body></html>")
    server.route("/", body='<html><body><a href="/careers">Careers</a></body></html>')
    return server.url(path)


# --- uploaded files -----------------------------------------------------------------------------

FILE_COLUMNS = [
    "external_id", "title", "url", "location", "description", "company", "remote",
    "workplace_type", "employment_type", "department", "posted_at", "valid_through",
    "salary_min", "salary_max", "salary_currency",
]  # fmt: skip


def posting_row(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """One posting as a row of an uploaded file (the keys are FILE_COLUMNS); `overrides`
    replace or add fields (title="" makes the row invalid)."""
    city, region, country = _PLACES[n % len(_PLACES)]
    remote = n % 5 == 0
    row: dict[str, Any] = {
        "external_id": f"F-{n:06d}",
        "title": job_title(n),
        "url": f"https://careers.acme.example/jobs/{n}",
        "location": f"{city}, {country}",
        "description": description_html(n),
        # Empty: the job is the source's company's (an aggregator's export names one per row).
        "company": "",
        "remote": "yes" if remote else "no",
        "workplace_type": "remote" if remote else ("hybrid" if n % 3 == 0 else "onsite"),
        "employment_type": _EMPLOYMENT[n % len(_EMPLOYMENT)].replace("_", "-").lower(),
        "department": _TEAMS[n % len(_TEAMS)],
        "posted_at": _iso(BASE_TIME - timedelta(hours=n % 900)),
        "valid_through": (BASE_TIME + timedelta(days=60)).date().isoformat(),
        "salary_min": 50000 + 1000 * (n % 30),
        "salary_max": 70000 + 1000 * (n % 30),
        "salary_currency": "USD" if country == "US" else "EUR",
    }
    row.update(overrides)
    return row


def posting_rows(count: int, *, start: int = 1) -> Iterator[dict[str, Any]]:
    return (posting_row(n) for n in range(start, start + count))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def postings_csv(
    rows: Iterable[dict[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    bom: bool = False,
    newline: str = "\r\n",
) -> bytes:
    """A CSV upload: a header row (`columns`, default FILE_COLUMNS plus any extra keys of the
    first row) and one row per posting; CRLF line ends as spreadsheets write them."""
    rows = list(rows)
    if columns is None:
        columns = list(FILE_COLUMNS)
        for key in rows[0] if rows else ():
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))


def postings_json(rows: Iterable[Any], *, wrap: bool = False) -> bytes:
    """A JSON upload: an array of the rows, or {"jobs": [...]} with `wrap`."""
    data: Any = list(rows)
    if wrap:
        data = {"count": len(data), "jobs": data}
    return json.dumps(data, indent=1, default=_json_default).encode()


def postings_jsonl(rows: Iterable[Any]) -> bytes:
    """A JSONL upload: one row per line (a str row is written as is, to make a broken line)."""
    lines = [
        row if isinstance(row, str) else json.dumps(row, default=_json_default) for row in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def postings_file(rows: Iterable[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "csv":
        return postings_csv(rows)
    if fmt == "json":
        return postings_json(rows)
    if fmt == "jsonl":
        return postings_jsonl(rows)
    raise ValueError(fmt)


def generate_postings_file(
    n: int, fmt: str = "csv", *, path: Path | str | None = None, start: int = 1
) -> Path:
    """Write `n` realistic postings (~2 KB of varied HTML each) to `path` (a new temporary file
    when None; the caller deletes it) in csv | json | jsonl, streaming (50,000 postings, about
    110 MB, take a few seconds); returns the path."""
    if path is None:
        handle, name = tempfile.mkstemp(suffix=f".{fmt}", prefix="intake-postings-")
        os.close(handle)
        path = name
    target = Path(path)
    with target.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(FILE_COLUMNS)
            for row in posting_rows(n, start=start):
                writer.writerow([_cell(row[column]) for column in FILE_COLUMNS])
        elif fmt in ("json", "jsonl"):
            out.write("[\n" if fmt == "json" else "")
            separator = ",\n" if fmt == "json" else "\n"
            for i, row in enumerate(posting_rows(n, start=start)):
                if i and fmt == "json":
                    out.write(separator)
                out.write(json.dumps(row))
                if fmt == "jsonl":
                    out.write("\n")
            out.write("\n]\n" if fmt == "json" else "")
        else:
            raise ValueError(f"unknown format {fmt!r}")
    return target


def url_list_csv(urls: Iterable[str], *, header: bool = True) -> bytes:
    """A URL-list upload: one URL per row, under a `url` header unless `header=False`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["url"])
    for url in urls:
        writer.writerow([url])
    return out.getvalue().encode()


def url_list_json(urls: Iterable[str], *, objects: bool = False) -> bytes:
    """A URL-list upload as JSON: an array of strings, or of {"url": ...} with `objects`."""
    items: list[Any] = [{"url": url} for url in urls] if objects else list(urls)
    return json.dumps(items).encode()

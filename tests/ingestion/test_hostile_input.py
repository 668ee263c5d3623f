"""Hostile input against the real processes: each one gets a clear answer, and the peak resident
memory of the web process (uvicorn, as `manage.py start` runs it) and of the RQ work horse that
ingests it stays under RSS_BOUND_MB. The figures are printed and written to
artifacts/hostile-input-rss.txt; docs/operations.md records them.

Before these bounds: 200 KB of "[" grew the web process to 23 GB from the upload check; a 300 MB
upload was received and parsed before the size limit refused it; a 10 MB description cell made
a 600 MB work horse; a careers page linking 8 gzip bombs made a 2.2 GB one; a "\\u0000" failed
its whole source on PostgreSQL; one page of 8 MB of "<b>" took 540 MB to parse."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.urls import reverse

from ingestion import services
from ingestion.adapters.readers import ROW_MAX
from ingestion.models import Job, Source
from runs.models import IngestionRun, RunStatus
from tests.fixture_server import FixtureServer, Reply
from tests.ingestion.pages import (
    careers_page,
    jsonld_posting,
    mount_posting_pages,
    posting_row,
    postings_csv,
    postings_jsonl,
)
from tests.support import ROOT, PeakRSS, Proc, signed_in_client, start_asgi, start_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RSS_BOUND_MB = 300
MB = 1024 * 1024
CHECK = reverse("ingestion:source_check_upload")
NEW = reverse("ingestion:source_new")
TERMINAL = (RunStatus.FINISHED, RunStatus.ERROR, RunStatus.ABORTED)


def _deep_json() -> bytes:
    return b"[" * 200_000


def _deep_jsonl() -> bytes:
    good = postings_jsonl([posting_row(1), posting_row(2)])
    return good + (b"[" * 100_000 + b"\n") * 3 + postings_jsonl([posting_row(3)])


def _ten_mb_cell() -> bytes:
    rows = [posting_row(1), posting_row(2, description="word " * (2 * MB)), posting_row(3)]
    return postings_csv(rows)


def _longest_csv_row() -> bytes:
    """A CSV row just under uploads.ROW_MAX bytes, of one-byte characters (the csv module's
    buffer takes four bytes a character whatever they are): the most memory one row can take
    to parse."""
    rows = [posting_row(1), posting_row(2, description="x" * (ROW_MAX - 1000))]
    return postings_csv(rows)


def _nul_csv() -> bytes:
    rows = [posting_row(1, title="Chef\x00 de partie", description="Salt\x00\x07 pepper")]
    return postings_csv([*rows, posting_row(2)])


def _nul_jsonl() -> bytes:
    rows = [posting_row(1, title="Chef\x00 de partie"), posting_row(2, description="a\x00b")]
    return postings_jsonl(rows) + b'{"id": "9", "title": "raw\x00 NUL byte"}\n'


def _oversized(tmp_path: Path) -> Path:
    """A 300 MB CSV on disk (httpx streams it from there)."""
    path = tmp_path / "huge.csv"
    block = postings_csv([posting_row(n) for n in range(1, 200)])
    with path.open("wb") as out:
        while out.tell() < 300 * MB:
            out.write(block)
    return path


def _rows_at_the_cap(tmp_path: Path) -> Path:
    """About 90 MB: 200 postings, each with a description just under the length cap."""
    path = tmp_path / "capped.csv"
    words = " ".join(f"word{n}" for n in range(10_000))
    with path.open("wb") as out:
        for n in range(1, 201):
            description = (f"{n} {words} " * 10)[:450_000]
            rows = [posting_row(n, description=description)]
            out.write(postings_csv(rows) if n == 1 else postings_csv(rows).split(b"\r\n", 1)[1])
    return path


def _gzip_bomb(decompressed: int) -> bytes:
    """A gzip body of `decompressed` bytes of "<p>", built in pieces (never held whole)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    piece = b"<p>" * (MB // 3)
    parts = [compressor.compress(piece) for _ in range(decompressed // len(piece))]
    return b"".join(parts) + compressor.flush()


@pytest.fixture
def rss() -> Iterator[PeakRSS]:
    sampler = PeakRSS()
    yield sampler
    sampler.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[tuple[str, str, float, str]]]:
    """(process, input, peak RSS in MB, answer) rows, printed and kept as an artifact."""
    rows: list[tuple[str, str, float, str]] = []
    yield rows
    lines = [f"{'process':<6} {'input':<46} {'peak RSS MB':>11}  answer"]
    lines += [f"{p:<6} {i:<46} {mb:>11.0f}  {a}" for p, i, mb, a in rows]
    text = "\n".join(lines) + "\n"
    print(f"\n{text}")
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "hostile-input-rss.txt").write_text(text)


def _answer(response: httpx.Response) -> str:
    """What the page said, in a few words."""
    text = response.text
    for needle in (
        "nested deeper than",
        "is larger than",
        "have errors",
        "has errors",
        "are good",
        "is good",
        "cannot be used",
    ):
        if needle in text:
            return f"{response.status_code}: {needle}"
    return str(response.status_code)


def _run(user: Any, source: Source) -> IngestionRun:
    run = services.ingest_start(owner=user, source_ids=[source.pk])

    def ended() -> bool:
        run.refresh_from_db()
        return run.status in TERMINAL

    wait_for(ended, timeout=180, interval=0.2, what=f"the run of {source}")
    return run


def test_hostile_input_gets_clear_answers_within_bounded_memory(
    procs: list[Proc],
    tmp_path: Path,
    redis_client: Any,
    fixture_server: FixtureServer,
    user: Any,
    rss: PeakRSS,
    figures: list[tuple[str, str, float, str]],
    settings: Any,
) -> None:
    # The careers pages are on the fixture server (127.0.0.1): allowed here as in the worker,
    # or adding them would be refused.
    settings.INTAKE_ALLOW_PRIVATE_NETWORK = True
    web, base = start_asgi(tmp_path)
    procs.append(web)
    worker = start_worker(
        tmp_path,
        INTAKE_ALLOW_PRIVATE_NETWORK=1,
        INTAKE_GREENHOUSE_URL=fixture_server.base_url,
        INTAKE_FETCH_BACKOFF=0.01,
    )
    procs.append(worker)
    rss.watch("web", web.pid)
    rss.watch("horse", worker.pid, children_only=True)
    over: list[str] = []

    def record(process: str, what: str, answer: str) -> None:
        peak = rss.peak(process) / MB
        figures.append((process, what, peak, answer))
        if peak >= RSS_BOUND_MB:
            over.append(f"{process} {what}: {peak:.0f} MB")

    # --- the web process: the check as the file is chosen, and adding the source ---
    uploads = {
        "deep JSON (200 KB of '[')": ("deep.json", _deep_json()),
        "deep JSONL (3 lines of 100,000 '[')": ("deep.jsonl", _deep_jsonl()),
        "10 MB description cell (CSV)": ("cell.csv", _ten_mb_cell()),
        "a row of 12 MiB, the longest read (CSV)": ("longest.csv", _longest_csv_row()),
        "NUL bytes (CSV)": ("nul.csv", _nul_csv()),
        "NUL bytes (JSONL)": ("nul.jsonl", _nul_jsonl()),
    }
    with signed_in_client(base, user) as client:
        for what, (name, data) in uploads.items():
            rss.reset()
            checked = client.post(CHECK, files={"upload": (name, data)}, data={"kind": "file"})
            assert checked.status_code == 200, checked.text
            record("web", f"check: {what}", _answer(checked))

            rss.reset()
            form = {"kind": "file", "company": name, "enabled": "on", "save_anyway": "on"}
            added = client.post(NEW, files={"upload": (name, data)}, data=form)
            assert added.status_code in (200, 302), added.text
            record("web", f"add: {what}", "302: saved" if added.is_redirect else _answer(added))

        capped = _rows_at_the_cap(tmp_path)
        size = capped.stat().st_size / MB
        for door, url, form in (
            ("check", CHECK, {"kind": "file"}),
            ("add", NEW, {"kind": "file", "company": "capped.csv", "enabled": "on"}),
        ):
            rss.reset()
            with capped.open("rb") as body:
                sent = client.post(url, files={"upload": ("capped.csv", body)}, data=form)
            assert sent.status_code in (200, 302), sent.text
            answer = "302: saved" if sent.is_redirect else _answer(sent)
            record("web", f"{door}: 200 rows at the description cap ({size:.0f} MB)", answer)
        capped.unlink()

        huge = _oversized(tmp_path)
        for door, url, form in (
            ("check", CHECK, {"kind": "file"}),
            ("add", NEW, {"kind": "file", "company": "Huge", "enabled": "on"}),
        ):
            rss.reset()
            with huge.open("rb") as body:
                refused = client.post(url, files={"upload": ("huge.csv", body)}, data=form)
            assert refused.status_code == 413 and "is larger than" in refused.text
            record("web", f"{door}: 300 MB upload", _answer(refused))
        huge.unlink()

    # What the web saved (the deep JSON file was refused): ingested by a work horse.
    assert not Source.objects.filter(company="deep.json").exists()
    for source in Source.objects.filter(owner=user, kind="file").order_by("pk"):
        rss.reset()
        run = _run(user, source)
        assert run.status == RunStatus.FINISHED, run.error_message
        counts = f"{run.jobs_new} new, {run.jobs_failed} refused"
        record("horse", f"ingest: {source.company}", f"finished: {counts}")
    assert Job.objects.get(company="nul.jsonl", external_id="9").title == "raw NUL byte"
    assert Job.objects.filter(company="cell.csv").count() == 2
    assert Job.objects.filter(company="capped.csv").count() == 200

    # Sources the web would refuse, stored directly: the run refuses them the same way.
    deep = services.source_create(
        owner=user,
        kind="file",
        company="deep JSON, stored",
        upload=io.BytesIO(_deep_json()),
        upload_name="deep.json",
    )
    rss.reset()
    run = _run(user, deep)
    assert run.status == RunStatus.ERROR and "nested deeper than 512" in run.error_message
    record("horse", "ingest: deep JSON (200 KB of '[')", "error: nested deeper than 512 levels")

    fixture_server.route("/v1/boards/deep/jobs", body=b'{"jobs": [' + b"[" * 200_000)
    board = Source.objects.create(owner=user, company="Deep", kind="greenhouse", identifier="deep")
    rss.reset()
    run = _run(user, board)
    assert run.status == RunStatus.ERROR and "nested deeper than 512" in run.error_message
    record("horse", "ingest: Greenhouse board of 200 KB of '['", "error: nested deeper")

    # A careers page linking 8 gzip bombs (and one good posting page).
    bomb = _gzip_bomb(256 * MB)
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    links = [f"/bombs/{n}" for n in range(8)]
    for link in links:
        fixture_server.route(link, handler=lambda request: Reply(200, bomb, dict(headers)))
    links += [u.removeprefix(fixture_server.base_url) for u in mount_posting_pages(
        fixture_server, [jsonld_posting(1)]
    )]  # fmt: skip
    fixture_server.route("/careers", body=careers_page(links))
    site = services.source_create(owner=user, url=fixture_server.url("/careers"), company="Bombs")
    rss.reset()
    run = _run(user, site)
    assert run.status == RunStatus.ERROR and "INTAKE_FETCH_PAGE_MAX_BYTES" in run.error_message
    wire = len(bomb) * 8 / MB
    record("horse", f"ingest: careers page, 8 gzip bombs ({wire:.1f} MB sent)", "error: page cap")

    # A careers page linking 8 pages of 8 MB of tags, each under the page cap, and one
    # deep one: a DOM of one of them took 540 MB; nested blocks take CPU with the square.
    tags = b"<b>" * (8 * MB // 3 - 100)
    links = [f"/tags/{n}" for n in range(8)]
    for link in links:
        fixture_server.route(link, body=tags)
    fixture_server.route("/tags/deep", body=b"<div>" * 100_000)
    fixture_server.route("/tag-soup", body=careers_page([*links, "/tags/deep", "/jobs/1"]))
    soup = services.source_create(owner=user, url=fixture_server.url("/tag-soup"), company="Soup")
    rss.reset()
    run = _run(user, soup)
    assert run.status == RunStatus.ERROR and "HTML tags: not read" in run.error_message
    record("horse", "ingest: careers page, 8 pages of 8 MB of tags", "error: not parsed")

    assert not over, f"over {RSS_BOUND_MB} MB: {over}"
    assert json.dumps(figures)  # the rows are plain data for the artifact

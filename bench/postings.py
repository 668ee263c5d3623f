"""The generated sources the ingest benchmarks read: an uploaded CSV of postings and a
Greenhouse-shaped board served over HTTP by a separate process (so serving does not steal
the bench's or the workers' CPU), and the same postings read back as the adapters read them.

    python bench/postings.py --serve-board FILE --ready-file PATH   # the board server process
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Children, serve_until_stopped, start_server  # noqa: E402

BOARD_TOKEN = "benchboard"
FILE_COMPANY = "Acme Files"
BOARD_COMPANY = "Globex Board"


def write_postings_csv(count: int, path: Path) -> Path:
    """`count` postings (~2 KB of varied HTML each) as a CSV upload."""
    from tests.ingestion import pages

    if hasattr(pages, "generate_postings_file"):
        return pages.generate_postings_file(count, "csv", path=path)
    # Fallback for a tree without the file builders: the same columns, by hand.
    import csv

    from tests.ingestion.boards import description_html, job_title

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["external_id", "title", "url", "location", "description"])
        for n in range(1, count + 1):
            writer.writerow(
                [
                    f"F-{n:06d}",
                    job_title(n),
                    f"https://careers.acme.example/jobs/{n}",
                    "Berlin, DE",
                    description_html(n, size=2000),
                ]
            )
    return path


def write_board_json(count: int, path: Path) -> Path:
    """A Greenhouse board listing (GET /v1/boards/{token}/jobs?content=true) of `count` jobs,
    ~2 KB descriptions, rendered once to a file the board server streams: generating it on
    the fly would cost ~0.25 ms of CPU per job during the timed run."""
    from tests.ingestion.boards import _streamed_object, greenhouse_jobs

    reply = _streamed_object(
        "jobs",
        greenhouse_jobs(count, board=BOARD_TOKEN, size=2000),
        meta=lambda n: {"meta": {"total": n}},
    )
    with path.open("wb") as out:
        for chunk in reply.body:  # type: ignore[union-attr]
            out.write(chunk)
    return path


def serve_board(board_file: str, ready_file: str) -> None:
    """The board server process (`--serve-board`): a FixtureServer streaming the listing
    from its file, until SIGTERM."""
    from tests.fixture_server import FixtureServer, Reply, Request

    server = FixtureServer()

    def listing(request: Request) -> Reply:
        def chunks() -> Iterator[bytes]:
            with open(board_file, "rb") as handle:
                while chunk := handle.read(256 * 1024):
                    yield chunk

        return Reply(200, chunks(), {"Content-Type": "application/json"})

    server.route(f"/v1/boards/{BOARD_TOKEN}/jobs", handler=listing)
    serve_until_stopped(server, ready_file)


def start_board_server(children: Children, board_file: Path, work: Path) -> tuple[Any, str]:
    ready = work / f"board-{time.monotonic_ns()}.url"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-board", str(board_file)]
    return start_server(children, "board", [*argv, "--ready-file", str(ready)], ready)


def file_postings(source: Any, run: Any) -> list[tuple[Any, Any, str]]:
    """(source, posting, content hash) of every posting of an uploaded file's source, as its
    adapter reads them."""
    from ingestion import normalize
    from ingestion.adapters import get_adapter
    from ingestion.fetching import Fetcher

    with Fetcher(run_id=run.pk, store=False) as fetcher:
        return [
            (source, posting, normalize.content_hash(posting))
            for posting in get_adapter(source, fetcher).list_postings()
        ]


def load_postings(owner: Any, run: Any, work: Path) -> list[tuple[Any, Any, str]]:
    """(source, posting, content hash) of every posting of both sources, as the adapters
    read them (the listing, not the write, so none of this is timed)."""
    import ijson

    from ingestion import normalize
    from ingestion.adapters.greenhouse import to_posting
    from ingestion.models import Source

    rows = file_postings(Source.objects.get(owner=owner, kind="file"), run)
    board_source = Source.objects.get(owner=owner, kind="greenhouse")
    board_file = sorted(work.glob("board-*.json"), key=lambda p: p.stat().st_size)
    with board_file[-1].open("rb") as handle:
        for item in ijson.items(handle, "jobs.item"):
            posting = to_posting(item)
            rows.append((board_source, posting, normalize.content_hash(posting)))
    return rows


def mixed_postings(owner: Any, run: Any, work: Path) -> list[tuple[Any, Any, str]]:
    """load_postings with the two sources' rows interleaved, so every sample has both
    shapes."""
    rows = load_postings(owner, run, work)
    half = len(rows) // 2
    mixed = [r for pair in zip(rows[:half], rows[half:], strict=False) for r in pair]
    mixed += rows[2 * half :] if len(rows) % 2 else []
    return mixed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the benchmark's board server")
    parser.add_argument("--serve-board", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()
    serve_board(args.serve_board, args.ready_file)

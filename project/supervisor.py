"""The process supervisor of `manage.py start`: it runs the children (valkey, the web server,
the RQ workers, the cron scheduler, the event relay), passes their output on, restarts the ones
that die and stops them in order.

A child that exits is restarted, after a delay that doubles while it keeps dying
(RESTART_DELAY_*); only a child that dies CRASH_LOOP_DEATHS times within CRASH_LOOP_WINDOW
seconds stops everything (CrashLoop), with its last output lines. The children's output passes
through the supervisor, which keeps each child's last lines for that message.

On a stop request the children are stopped in reverse dependency order: the web server first
(no new work arrives), then the cron scheduler and the workers (RQ's warm shutdown lets a job
in hand finish), then the event relay (it publishes what they wrote last), and valkey last,
because everything above still talks to it while stopping.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from project.logjson import wrap_lines

# How long each stop phase waits for its children before SIGKILL.
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36

# Stop order (see the module docstring); valkey is stopped in a phase of its own.
APP_STOP_ORDER = ("web", "cron", "worker", "relay")
# Restart order when several children are due at once: Redis before what talks to it.
RESTART_ORDER = ("valkey", "web", "cron", "worker", "relay")

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
    role: str  # "valkey", "web", "worker", "cron" or "relay"
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

    def __init__(
        self,
        signals: StopSignals,
        say: Callable[[str], None],
        cwd: Path,
        *,
        json_logs: bool = False,
    ) -> None:
        self.children: list[Child] = []
        # LOG_FORMAT=json: every line passed on is a JSON object (project/logjson.py).
        self.json_logs = json_logs
        self.cwd = cwd
        self.signals = signals
        self.say = say
        # Whatever already ran under this process (call_command from a test) is not ours.
        self.foreign = set(psutil.Process().children(recursive=True))
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # logs appear as they happen
        self.selector = selectors.DefaultSelector()
        self.last_output_at = 0.0  # when a child's output was last passed on (monotonic)
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
            cwd=self.cwd,
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

    def _write(self, child: Child, data: bytes) -> None:
        self.last_output_at = time.monotonic()
        text = data.decode(errors="replace")
        child.tail.extend(line for line in text.splitlines() if line.strip())
        if self.json_logs:
            text = wrap_lines(text, logger=f"intake.{child.role}", child=child.name)
            data = text.encode()
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is not None:
            binary.write(data)
            binary.flush()
        else:  # a text-only stream (captured output)
            sys.stdout.write(text)
            sys.stdout.flush()

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

